"""A ward step the bag's state does not allow, in a nurse's words: where the bag is and what to do, never the state
machine's names ("bag X is dispatched; it cannot go to thawed"). services.record_event says these for every
(state, step) pair a ward user can reach (receive, thaw, return, discard, start the infusion, and the bedside check's
confirmation, recorded only on a bag received or thawed); any other refused
move keeps the state machine's generic sentence. Pure: no database.
"""
from __future__ import annotations

from mscbatch.custody.models import DEATH_GRADE

#: the ward's steps, as the bag state they move to -> the refusal's first sentence
STEPS = {"received": "Bag {din} cannot be received on the ward.", "thawed": "Bag {din} cannot be thawed.",
         "returned": "Bag {din} cannot be returned to the unit.", "discarded": "Bag {din} cannot be discarded.",
         "infused": "The infusion of bag {din} cannot be started."}
#: the ward's records that move no state (services.STATELESS_FROM) -> the refusal's first sentence: the confirmation
#: of a bedside check, refused when the bag was infused or discarded by someone else between the check and it
RECORDS = {"bedside_verified": "The bedside check of bag {din} cannot be confirmed."}

_SENT_NOT_RECEIVED = "Its arrival on the ward has not been recorded: receive it first (Receive on the ward)"
_AT_UNIT = ("It is still at the cell therapy unit: the unit has not recorded sending it. Ask the unit to send it "
            "(dispatch) before anything is done with it on the ward.")
_RETURNED = ("It was returned to the cell therapy unit, which decides what becomes of it. Nothing more is recorded "
             "for it on the ward: call the unit.")

#: what is said when the bag is in this state, whatever ward step was tried (unless _PAIRS says more)
_WHERE = {
    "stored": _AT_UNIT,
    "allocated": _AT_UNIT,
    "on_hold": "It is ON HOLD at the cell therapy unit. Call the unit.",
    # the state holds a running infusion as well as one given and ended: said true of both (these words are pure)
    "infused": "Its infusion was already started: it is being infused now or was already given (see its infusion "
               "record). Never give a bag twice.",
    "discarded": "It was DISCARDED. Nothing more can be recorded for it.",
    "returned": _RETURNED,
}

#: (state, step) -> the words; checked before _WHERE
_PAIRS = {
    ("stored", "received"): "The unit has not recorded sending this bag: it is still at the cell therapy unit. Ask "
                            "the unit to record its dispatch, then receive it.",
    ("allocated", "received"): "The unit has not recorded sending this bag: it is still at the cell therapy unit, "
                               "set aside for a patient. Ask the unit to record its dispatch, then receive it.",
    ("returned", "received"): "It was returned to the cell therapy unit. The unit must send it again (dispatch) "
                              "before the ward can receive it.",
    ("received", "received"): "Its arrival on the ward is already recorded. Nothing to do: thaw it when the "
                              "patient is ready.",
    ("thawed", "received"): "It was already received and THAWED on the ward.",
    ("dispatched", "thawed"): f"{_SENT_NOT_RECEIVED}, then thaw it.",
    ("thawed", "thawed"): "It is ALREADY THAWED. Give it within its time after thawing, or discard it (Discard, "
                          "with the reason).",
    ("thawed", "returned"): "A thawed bag cannot go back to the unit: it can never be used again. If it will not be "
                            "given, discard it on the ward page (Discard, with the reason) and tell the prescriber.",
    # QA trying to destroy a recalled bag in the unit (or a nurse scanning it): "ask the unit to send it" was wrong
    # advice; the reservation is let go by its prescriber first (never silently, mid-course), then QA discards it
    ("allocated", "discarded"): "It is in the cell therapy unit, reserved for a patient by a signed prescription: "
                                "a reserved bag is not discarded, or that patient's course would break without anyone "
                                "knowing. The prescriber first cancels (or stops) that course on the patient's page, "
                                "which puts the bag back in stock; then QA discards it.",
    ("dispatched", "discarded"): f"{_SENT_NOT_RECEIVED}, then discard it with the reason, or return it unopened to "
                                 "the unit (Return, with the reason).",
    ("dispatched", "infused"): f"{_SENT_NOT_RECEIVED}, thaw it, then check it at the bedside.",
    ("received", "infused"): "Thaw the bag first (Thaw, on the ward page), then check it at the bedside again.",
    ("dispatched", "bedside_verified"): f"{_SENT_NOT_RECEIVED}, then check it at the bedside again.",
}


def ward_refusal(din: str, current: str, target: str) -> str | None:
    """The words for a ward step `target` (or a ward record: RECORDS) refused on a bag in state `current`, or None
    (the generic words)."""
    first = STEPS.get(target) or RECORDS.get(target)
    why = _PAIRS.get((current, target)) or _WHERE.get(current)
    if first is None or why is None:
        return None
    return f"{first.format(din=din)} {why}"


#: the words of a running infusion with a reaction of grade 3 or higher, on its page and in the confirmation
REACTION_STOP = "STOP THE INFUSION NOW and call the clinician"


def reaction_flag(grade: int) -> str:
    """The ward list's and the ward banner's flag of a running infusion with a reaction of grade 3 or higher."""
    if grade >= DEATH_GRADE:
        return f"Grade {grade} reaction (death): end the infusion"
    return f"Grade {grade} reaction: stop the infusion"


def reaction_stop_words(grade: int) -> list[str]:
    """What the infusion page says, in large words under REACTION_STOP, while a reaction of grade 3 or higher stands
    on a running infusion (CTCAE: interrupt the infusion)."""
    if grade >= DEATH_GRADE:
        return [f"A grade {grade} reaction (death) was recorded. The infusion must be ended: stop the pump, keep the "
                "bag and the line, and record the volume given (End infusion, below)."]
    return [f"A grade {grade} reaction was recorded. Stop the pump now (CTCAE: grade 3 or higher means interrupting "
            "the infusion), keep the bag and the line, and call the clinician.",
            "If the clinician decides not to restart it, record the volume given (End infusion, below)."]


def minutes_left_words(minutes: int) -> str:
    """The bedside page's time left before the post-thaw limit, in whole minutes counted down ("12 minutes left").
    js/thaw-countdown.js says the same words as it counts down on a page left open."""
    if minutes < 1:
        return "less than 1 minute left"
    return f"{minutes} minute{'s' if minutes != 1 else ''} left"


def provisional_thaw_limit_words(minutes: int) -> str:
    """What the nurse pages say beside a post-thaw limit config/products.toml marks `to_confirm` (a demo value the
    unit has still to set from its stability study). It names the limit it is about and whose job it is, and never
    says "confirm": beside the check's CONFIRMED / NOT YET CONFIRMED, "a site value still to confirm" read at 3 a.m.
    as the check itself still pending. The limit applies meanwhile: the bedside and the start judge by it."""
    return f"post-thaw limit of {minutes} minutes: the unit's provisional setting, until its stability study sets it"
