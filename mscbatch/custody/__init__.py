"""Chain of custody, the bedside check with its two-person confirmation, and the infusion record (issue 7).

models    CustodyEvent (append-only, one row per hand-over or state change of a bag), TwoPersonCheck,
          Infusion (at most one per bag), InfusionReaction (append-only)
checks    the bedside check: every hard stop of DOMAIN.md section 8, in plain words
services  record_event (through the bag state machine), receive, dispatch, thaw, bedside_check,
          confirm_second_person, start_infusion, end_infusion, record_reaction
views     the ward scanning page; api: the JSON endpoints for handheld scanners
"""
