"""The bag's hand-overs between the unit and the ward: dispatch, receive, thaw, return and discard. One use
case each, one transaction, audited; each records its custody event through services.record_event."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.core.identifiers import din_shown
from mscbatch.custody.checks import (
    course_over_of_bag,
    course_over_words,
    course_short_of_bag,
    course_short_words,
    donor_problem,
    lot_unusable,
)
from mscbatch.custody.models import CustodyEvent
from mscbatch.custody.services import _text, check_step, lock_bag, record_event, require_authority
from mscbatch.database import utcnow
from mscbatch.donors.clearance import clearance_of
from mscbatch.donors.models import Donor
from mscbatch.errors import Conflict, ValidationFailed
from mscbatch.labelling.services import dispatch_label_problem
from mscbatch.lots.models import Bag, Lot
from mscbatch.patients.queries import WeightSincePrescription, allocation_of_bag, weight_since_prescription
from mscbatch.recall.queries import bag_hold
from mscbatch.release.queries import bag_release
from mscbatch.site import local_and_utc


def _simple(session: Session, actor: Any, bag_id: int, kind: str, *, location: str, scan: str,
            details: dict[str, Any] | None = None, reason: str = "", no_reason: str = "") -> CustodyEvent:
    """`no_reason`: the words refusing an empty reason, said after the role is checked (a role that may never do
    this is told so, not asked for a reason)."""
    with use_case(session, actor, reason or None):
        bag = lock_bag(session, bag_id)
        require_authority(actor, bag, kind)
        check_step(actor, bag, kind)  # a bag this step cannot take is said first, not after a reason was typed
        if no_reason and not (reason or "").strip():
            raise ValidationFailed(no_reason, field="reason")
        event = record_event(session, actor, bag, kind, location=location, scan=scan, details=details, reason=reason)
    return event


#: the bags a dispatch cannot take, by where they are (the state machine allows a dispatch from "allocated" only)
NOT_DISPATCHABLE = {
    "returned": "it came back from the ward and waits for QA's assessment (Returned bags), which puts it back in "
                "stock or discards it; only then can a prescription reserve it again",
    "dispatched": "it has been dispatched already and is on its way to the ward",
    "received": "it is on the ward already (received there)",
    "thawed": "it is on the ward already, thawed",
    "infused": "it has been infused",
    "discarded": "it was discarded",
}


def dispatch(session: Session, actor: Any, bag_id: int, *, courier: str, shipper: str, temperature_logger_id: str,
             location: str = "", scan: str = "") -> CustodyEvent:
    """The bag leaves the unit for the ward: courier, shipper and the temperature logger travelling with it."""
    details = {"courier": _text(courier, 120), "shipper": _text(shipper, 120),
               "temperature_logger_id": _text(temperature_logger_id, 60)}
    reason = (f"Dispatched to the ward{_from(location)} by courier {details['courier']} (shipper "
              f"{details['shipper']}, temperature logger {details['temperature_logger_id']})")
    with use_case(session, actor, reason):  # the reason of every audit event of the step
        bag = lock_bag(session, bag_id)
        # who may dispatch at all, before the bag is judged or the courier asked for: a nurse is told that only a
        # technician dispatches, not to give a courier as if she then could
        require_authority(actor, bag, "dispatched")
        missing = [name for name, value in details.items() if not value]
        if missing:
            said = {name: f"Give the {name.replace('_', ' ')}." for name in missing}
            raise ValidationFailed(" ".join(said.values()), errors={name: [words] for name, words in said.items()})
        unfit = unfit_to_leave(session, bag)
        if unfit:
            raise Conflict(f"Bag {din_shown(bag)} cannot leave the unit: {unfit}")
        elsewhere = NOT_DISPATCHABLE.get(bag.status)
        if elsewhere:  # said by where the bag is: a returned bag is also "not allocated", which sent QA nowhere
            raise Conflict(f"Bag {din_shown(bag)} cannot be dispatched: {elsewhere}. Nothing was recorded.")
        if allocation_of_bag(session, bag.id) is None:
            raise Conflict(f"Bag {din_shown(bag)} is not allocated to a patient by a signed prescription.")
        # only a bag still in the unit: one already sent is told so by the state machine, in its own words
        stop = prescription_stop(session, bag.id) if bag.status == "allocated" else None
        if stop is not None:  # sent, it would only be stopped at the bedside; kept, a new prescription can use it
            raise Conflict(f"Bag {din_shown(bag)} cannot leave the unit: {stop.words} Keep it in storage and tell the "
                           f"prescriber, who must {stop.prescriber_must}. Nothing was recorded.")
        label = dispatch_label_problem(session, bag)  # the label the bag wears is what the ward will read
        if label:
            raise Conflict(f"Bag {din_shown(bag)} cannot leave the unit: {label}.")
        event = record_event(session, actor, bag, "dispatched", location=location, scan=scan, details=details)
    return event


def _from(location: str) -> str:
    place = _text(location, 120)
    return f" from {place}" if place else ""


def _on(location: str) -> str:
    """Where a ward step was done, for its audit reason ("on the ward" when no location was given)."""
    place = _text(location, 120)
    return f"on {place}" if place else "on the ward (no location given)"


def _dispatcher_id(session: Session, bag_id: int) -> int | None:
    """Who recorded the bag's latest dispatch (the giver of the hand-over now under way), or None."""
    return session.scalar(select(CustodyEvent.actor_id).where(CustodyEvent.bag_id == bag_id,
                                                              CustodyEvent.kind == "dispatched")
                          .order_by(CustodyEvent.id.desc()).limit(1))


def receive(session: Session, actor: Any, bag_id: int, *, location: str = "", scan: str = "") -> CustodyEvent:
    """The ward takes the bag over from the courier. A hand-over has two people: whoever dispatched the bag (one
    account may hold technician and nurse) cannot also record its receipt."""
    with use_case(session, actor, f"Received {_on(location)}"):
        bag = lock_bag(session, bag_id)
        require_authority(actor, bag, "received")
        if bag.status == "dispatched" and _dispatcher_id(session, bag.id) == actor.id:
            raise Conflict(f"Refused: you dispatched bag {din_shown(bag)} yourself; its receipt on the ward is "
                           "recorded by someone else (the nurse who takes it over from the courier).")
        event = record_event(session, actor, bag, "received", location=location, scan=scan)
    return event


def thaw(session: Session, actor: Any, bag_id: int, *, location: str = "", scan: str = "") -> CustodyEvent:
    """Thawing starts the post-thaw clock (the limit comes from the product, config/products.toml). A bag that has
    become unfit since it left the unit (expired, its lot recalled or failed late, its donor reopened, on hold) is
    not thawed: the bedside check would stop it anyway, and a thawed bag can never be used again, nor be kept for
    the inquiry as it was. Nor is a bag whose course can no longer give the prescribed dose (another bag of it lost:
    the bedside check's course_short STOP), nor one whose prescription a weight recorded since no longer fits (its
    weight_changed STOP), nor one that would take its course above the prescription's upper limit after what its
    other bags gave (its course_over STOP): the prescription must be changed first, and a frozen bag can wait for it
    (prescription_stop, which the dispatch says too)."""
    with use_case(session, actor, f"Thawed {_on(location)}"):
        bag = lock_bag(session, bag_id)
        require_authority(actor, bag, "thawed")
        unfit = unfit_to_leave(session, bag)
        if unfit:
            raise Conflict(f"DO NOT THAW bag {din_shown(bag)}: {unfit} Keep it frozen and call the cell therapy unit.")
        if bag.status in ("dispatched", "received") and allocation_of_bag(session, bag.id) is None:
            # its prescription was stopped (the patient withdrawn from the trial): frozen, the unit can assess it
            # and put it back in stock for another patient; thawed, it is lost
            raise Conflict(f"DO NOT THAW bag {din_shown(bag)}: this bag is no longer prescribed for anyone (its "
                           "prescription was stopped or cancelled, or the patient withdrawn from the trial). Keep it "
                           "frozen and return it to the cell therapy unit (Return, on the ward page, with the reason).")
        # still frozen (a bag thawed already is told so by the state machine, not to keep it frozen)
        stop = prescription_stop(session, bag.id) if bag.status in ("dispatched", "received") else None
        if stop is not None:  # the bedside check's STOP, said before the bag is lost to it
            raise Conflict(f"DO NOT THAW bag {din_shown(bag)}: {stop.words} Keep it frozen and call the prescriber: "
                           f"{stop.prescriber_first} first. To let the prescriber {stop.prescriber_verb} it, return "
                           "this bag to the cell therapy unit (Return, on the ward page, with the reason). Nothing was "
                           "recorded.")
        event = record_event(session, actor, bag, "thawed", location=location, scan=scan)
    return event


@dataclass(frozen=True)
class PrescriptionStop:
    """A STOP the bedside check would say of the bag because of its prescription, said by the dispatch and the thaw
    before the bag leaves the unit or is lost to thawing: the check's finding, its words, and what the prescriber
    must do first (the bag waits, kept in storage or frozen)."""
    finding: str  # the bedside check's code: course_short, weight_changed, course_over
    words: str  # the bedside check's own words of it
    prescriber_must: str  # "stop this course and prescribe again"
    prescriber_first: str  # "this course must be stopped and prescribed again"
    prescriber_verb: str  # "stop"


_STOP_COURSE = ("stop this course and prescribe again", "this course must be stopped and prescribed again", "stop")
#: the bedside check's STOPs about the bag's prescription, in its order: (finding, its words for the bag or None,
#: what the prescriber must do); shared by the dispatch and the thaw
PRESCRIPTION_STOPS: tuple[tuple[str, Callable[[Session, int], str | None], tuple[str, str, str]], ...] = (
    ("course_short", lambda session, bag_id: _words_of(course_short_of_bag(session, bag_id), course_short_words),
     _STOP_COURSE),
    ("weight_changed", lambda session, bag_id: _words_of(weight_changed_of_bag(session, bag_id),
                                                         lambda change: change.changed_words),
     ("cancel this prescription and prescribe again for the new weight",
      "this prescription must be cancelled and prescribed again for the new weight", "cancel")),
    ("course_over", lambda session, bag_id: _words_of(course_over_of_bag(session, bag_id), course_over_words),
     ("stop this course and prescribe again if the patient needs more",
      "this course must be stopped (and prescribed again if the patient needs more)", "stop")),
)


def _words_of(found: Any, words: Callable[[Any], str | None]) -> str | None:
    return None if found is None else words(found)


def prescription_stop(session: Session, bag_id: int) -> PrescriptionStop | None:
    """The first of the bedside check's STOPs about the bag's prescription (PRESCRIPTION_STOPS), or None: another bag
    of its course lost and the rest short of the band (course_short), a weight recorded since at which the dose is
    outside it (weight_changed), the course's other bags already given so much that this one would take the patient
    above its upper limit (course_over). Read one after the other, only as far as the first found."""
    for finding, words_for, (must, first, verb) in PRESCRIPTION_STOPS:
        words = words_for(session, bag_id)
        if words is not None:
            return PrescriptionStop(finding, words, must, first, verb)
    return None


def weight_changed_of_bag(session: Session, bag_id: int) -> WeightSincePrescription | None:
    """A weight recorded since the bag's signed prescription at which its bags give a dose outside it (the bedside
    check's weight_changed STOP: custody.checks, patients.queries.weight_since_prescription), or None: a newer weight
    at which the dose still holds is only a note at the bedside, and leaves the bag to be sent and thawed."""
    change = weight_since_prescription(session, bag_id)
    return change if change is not None and change.problems else None


def unfit_to_leave(session: Session, bag: Bag) -> str | None:
    """What makes the bag unfit to be sent or thawed now, in words, or None: the product checks of the bedside
    (mscbatch.custody.checks.judge) that do not depend on the patient."""
    if bag.expires_at <= utcnow():
        return f"it expired on {local_and_utc(bag.expires_at)}."
    state = bag_release(session, bag.id)
    lot = session.get(Lot, bag.lot_id)
    unusable = lot_unusable(lot.lot_number, lot.status, state) if lot is not None else None
    if unusable:  # the bedside check's words (checks.judge)
        return unusable.message
    donor = session.execute(select(Donor.id, Donor.code, Donor.status).join(Lot, Lot.donor_id == Donor.id)
                            .where(Lot.id == bag.lot_id)).first()
    problem = donor_problem(donor.code, clearance_of(session, donor.id, donor.status)) if donor else None
    if problem:
        return problem
    hold = bag_hold(session, bag.id)
    if hold:
        return f"it is on hold ({hold})."
    return None


def return_bag(session: Session, actor: Any, bag_id: int, *, reason: str, location: str = "",
               scan: str = "") -> CustodyEvent:
    return _simple(session, actor, bag_id, "returned", location=location, scan=scan, reason=reason,
                   no_reason="Say why the bag is returned.")


#: a bag back from the ward is discarded only by QA's signed assessment of its return (custody.returns): one record
#: per return, with the segregation it asks for, whichever way the bag goes
RETURNED_TO_ASSESS = ("Bag {din} came back from the ward: QA decides on it with a signed assessment of the return "
                      "(Returned bags: back into stock, or discard). Nothing was recorded.")


def discard(session: Session, actor: Any, bag_id: int, *, reason: str, location: str = "",
            scan: str = "") -> CustodyEvent:
    with use_case(session, actor, reason or None):
        bag = lock_bag(session, bag_id)
        require_authority(actor, bag, "discarded")
        if bag.status == "returned":
            raise Conflict(RETURNED_TO_ASSESS.format(din=din_shown(bag)))
        if not (reason or "").strip():
            raise ValidationFailed("Say why the bag is discarded.", field="reason")
        event = record_event(session, actor, bag, "discarded", location=location, scan=scan, reason=reason)
    return event
