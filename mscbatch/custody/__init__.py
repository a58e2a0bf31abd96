"""Chain of custody, the bedside check with its two-person confirmation, and the infusion record (issue 7).

models          CustodyEvent (append-only, one row per hand-over or state change of a bag), TwoPersonCheck,
                Infusion (at most one per bag), InfusionReaction (append-only)
checks          the bedside check: every hard stop of DOMAIN.md section 8, in plain words
services        record_event (through the bag state machine) and lock_bag, shared by the use cases below
handover        dispatch, receive, thaw, return_bag, discard
bedside         bedside_check, confirm_second_person, latest_confirmed_check, later_stop
infusions       start_infusion (and its refusals), end_infusion, record_reaction
views           the ward scanning page and the custody blueprint; bedside_views (check, confirm, start) and
                infusion_views (the infusion's page, end, reactions) add their routes to it; api: the JSON
                endpoints for handheld scanners
"""
