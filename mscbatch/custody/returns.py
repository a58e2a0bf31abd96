"""QA's assessment of a bag returned to the unit: back into stock, or discarded (DOMAIN.md 8; EU GMP Part I 5.65).

A bag comes back from the ward frozen (its infusion postponed, its prescription stopped, the patient withdrawn);
the bag state machine allows QA alone to move it on from "returned". A returned product goes back into stock only
when its quality is without doubt satisfactory, so the restock asks for what shows it: the warmest temperature the
shipper's logger recorded (no warmer than the product's storage limit), the bag, overwrap and label seen intact,
and the time it spent out of the unit (from its dispatch, shown). Either decision is one signed ReturnAssessment
and the bag's custody event ("stored" or "discarded") in one transaction.

A bag still reserved by an active prescription is not restocked: the course counts it as lost, and the bedside
check stops the course's other bags when what is left no longer gives the prescribed dose
(checks.course_has_lost_bag). Released from the course, it would vanish from that count. The prescriber stops or
cancels the course first (which lets the returned bag go: prescriptions.GONE_FROM_STOCK).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.api.plain_numbers import is_plain_number
from mscbatch.audit.context import use_case
from mscbatch.core.identifiers import din_shown
from mscbatch.core.site_config import effective_storage_limit_c
from mscbatch.custody.handover import unfit_to_leave
from mscbatch.custody.models import RETURN_DECISIONS, CustodyEvent, ReturnAssessment
from mscbatch.custody.services import lock_bag, record_event, require_authority
from mscbatch.errors import Conflict, ValidationFailed
from mscbatch.lots.models import Bag, Lot, StorageLocation
from mscbatch.lots.queries import container_temperature, position_label, product_of
from mscbatch.lots.services import at_most_decimals
from mscbatch.patients.models import Allocation
from mscbatch.signatures.services import sign
from mscbatch.site import site_config

RESTOCK_MEANING = "Returned bag assessed: back into stock"
DISCARD_MEANING = "Returned bag assessed: discarded"
MIN_RATIONALE = 10
RATIONALE_MAX = 2000
#: the temperatures a shipper's logger can read (°C): a value outside them is a typing slip, not a reading
LOGGER_LOW_C, LOGGER_HIGH_C = Decimal(-200), Decimal(40)
#: the decision -> the custody event it records
EVENT_OF = {"restock": "stored", "discard": "discarded"}


@dataclass(frozen=True)
class ReturnedBag:
    """A bag waiting for QA's assessment, with what the assessment weighs."""

    bag: Bag
    lot: Lot
    returned: CustodyEvent  # the return being assessed
    returned_by: str
    dispatched: CustodyEvent | None  # the dispatch it came back from
    minutes_out: int | None
    storage_limit_c: Decimal
    kept_position: str  # where it goes back to ("" when it had none)
    reserved: bool  # still held by an active prescription: not restocked until the prescriber lets it go
    unfit: str | None  # what bars it from stock whatever its trip (on hold by a recall, expired...): said up front


def _minutes(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds() // 60))


def _return_and_dispatch(session: Session, bag_id: int) -> tuple[CustodyEvent | None, CustodyEvent | None]:
    """The bag's latest return and the dispatch before it."""
    returned = session.scalar(select(CustodyEvent).where(CustodyEvent.bag_id == bag_id, CustodyEvent.kind == "returned")
                              .order_by(CustodyEvent.id.desc()).limit(1))
    if returned is None:
        return None, None
    dispatched = session.scalar(select(CustodyEvent).where(
        CustodyEvent.bag_id == bag_id, CustodyEvent.kind == "dispatched", CustodyEvent.id < returned.id)
        .order_by(CustodyEvent.id.desc()).limit(1))
    return returned, dispatched


def _reserved(session: Session, bag_id: int) -> bool:
    return session.scalar(select(Allocation.id).where(Allocation.active_bag_id == bag_id).limit(1)) is not None


def kept_position(session: Session, bag: Bag) -> str:
    box = session.get(StorageLocation, bag.box_id) if bag.box_id is not None else None
    # "Box A2, position A4": the box's name and the slot's label side by side read as two boxes
    return f"{box.name}, position {position_label(box, bag.position)}" if box is not None else ""


def returned_bag(session: Session, bag: Bag) -> ReturnedBag | None:
    """The bag's latest return with what its assessment weighs, or None when the bag is not waiting for one."""
    if bag.status != "returned":
        return None
    returned, dispatched = _return_and_dispatch(session, bag.id)
    if returned is None:
        return None
    from mscbatch.auth.models import User

    lot = session.get(Lot, bag.lot_id)
    who = session.get(User, returned.actor_id)
    return ReturnedBag(
        bag=bag, lot=lot, returned=returned, returned_by=who.full_name if who else "?", dispatched=dispatched,
        minutes_out=_minutes(dispatched.occurred_at, returned.occurred_at) if dispatched else None,
        storage_limit_c=effective_storage_limit_c(site_config(), product_of(lot)),
        kept_position=kept_position(session, bag), reserved=_reserved(session, bag.id),
        unfit=unfit_to_leave(session, bag))


def returned_bags(session: Session) -> list[ReturnedBag]:
    """Every bag waiting for QA's assessment, the longest waiting first."""
    bags = session.scalars(select(Bag).where(Bag.status == "returned").order_by(Bag.id))
    rows = [row for bag in bags if (row := returned_bag(session, bag)) is not None]
    return sorted(rows, key=lambda row: row.returned.occurred_at)


def _temperature(value: Any) -> Decimal:
    typed = ("" if value is None else str(value)).strip().replace("−", "-")
    try:
        if not isinstance(value, Decimal) and not is_plain_number(typed, signed=True):  # "1_0" is 10 to Decimal()
            raise ValueError(typed)
        number = value if isinstance(value, Decimal) else Decimal(typed)
    except (InvalidOperation, ValueError):
        number = None
    if not typed:
        raise ValidationFailed("Warmest logger temperature: give the warmest temperature the shipper's logger "
                               "recorded, in °C (e.g. -165.5).", field="logger_max_c")
    if number is None or not number.is_finite():  # what was typed is said back: the field shows it was not empty
        raise ValidationFailed("Warmest logger temperature: give the warmest temperature the shipper's logger "
                               f"recorded as a number in °C (e.g. -165.5); “{typed[:20]}” is not a number.",
                               field="logger_max_c")
    if not LOGGER_LOW_C <= number <= LOGGER_HIGH_C:
        raise ValidationFailed(f"Warmest logger temperature: {typed} °C is outside what a shipper's logger records; "
                               f"give a temperature from {LOGGER_LOW_C} to {LOGGER_HIGH_C} °C.", field="logger_max_c")
    return at_most_decimals(number, 1, "logger_max_c", "Warmest logger temperature:", "-165.5")


def assess_return(session: Session, signer: Any, bag_id: int, *, decision: str, rationale: str, password: str,
                  logger_max_c: Any = None, intact: bool = False) -> ReturnAssessment:
    """QA's signed decision on the bag's latest return (see the module's docstring)."""
    rationale = (rationale or "").strip()
    if decision not in RETURN_DECISIONS:
        raise ValidationFailed("Decision: choose back into stock or discard.", field="decision")
    temperature = None
    if decision == "restock":
        temperature = _temperature(logger_max_c)
        if not intact:
            raise ValidationFailed("Bag, overwrap and label seen intact: tick it to put the bag back into stock. A bag "
                                   "not seen intact is discarded.", field="intact")
    elif logger_max_c not in (None, ""):
        temperature = _temperature(logger_max_c)  # recorded when given, checked as for a restock
    if len(rationale) < MIN_RATIONALE or len(rationale) > RATIONALE_MAX:
        raise ValidationFailed(f"Rationale: say what you checked and why, in {MIN_RATIONALE} to {RATIONALE_MAX} "
                               "characters.", field="rationale")
    kind = EVENT_OF[decision]
    with use_case(session, signer, rationale):
        bag = lock_bag(session, bag_id)
        require_authority(signer, bag, kind)  # QA alone moves a bag on from "returned"
        found = returned_bag(session, bag)
        if found is None:
            raise Conflict(f"Bag {din_shown(bag)} is {bag.status.replace('_', ' ')}, not returned: there is no return "
                           "to assess. Nothing was signed.")
        if found.returned.actor_id == signer.id:
            raise Conflict(f"You recorded the return of bag {din_shown(bag)} yourself: another QA person assesses it "
                           "(segregation of duties). Nothing was signed.")
        if decision == "restock":
            _refuse_restock(session, found, temperature)
        assessment = ReturnAssessment(
            bag_id=bag.id, return_event_id=found.returned.id, decision=decision, logger_max_c=temperature,
            intact=bool(intact), minutes_out=found.minutes_out, rationale=rationale, assessed_by_id=signer.id)
        session.add(assessment)
        session.flush()
        sign(session, signer, password, assessment, RESTOCK_MEANING if decision == "restock" else DISCARD_MEANING,
             required_role="qa")
        details = {"return_assessment_id": assessment.id, "returned_event_id": found.returned.id}
        record_event(session, signer, bag, kind, location=found.kept_position if decision == "restock" else "",
                     details=details, reason=f"Return assessed by QA: {rationale}")
    return assessment


def _refuse_restock(session: Session, found: ReturnedBag, temperature: Decimal | None) -> None:
    din = din_shown(found.bag)
    if found.reserved:
        raise Conflict(f"Bag {din} is still reserved by an active prescription, which counts it as lost (the bedside "
                       "check stops the course's other bags when they no longer give the dose). The prescriber stops "
                       "or cancels that course first; then assess the return. Nothing was signed.")
    if temperature is not None and temperature > found.storage_limit_c:
        raise Conflict(f"Warmest logger temperature: {temperature} °C is warmer than the {found.storage_limit_c} °C "
                       f"{found.lot.product_name} must be kept at: bag {din} cannot go back into stock. Discard it. "
                       "Nothing was signed.", field="logger_max_c")
    if found.unfit:
        raise Conflict(f"Bag {din} cannot go back into stock: {found.unfit} Discard it. Nothing was signed.")
    box = session.get(StorageLocation, found.bag.box_id) if found.bag.box_id is not None else None
    # the position it kept was cold enough when the bag was placed; the limit may have been made colder since
    # (site.toml, products.toml), and the bag goes back into it without a technician's placement check
    box_c = container_temperature(session, box) if box is not None else None
    if box is not None and (box_c is None or box_c > found.storage_limit_c):
        raise Conflict(f"Bag {din} cannot go back into {found.kept_position}: that box is stored at "
                       f"{box_c if box_c is not None else 'an unknown'} °C, and {found.lot.product_name} must be "
                       f"kept at {found.storage_limit_c} °C or colder. A technician first moves the bag to a box cold "
                       "enough (the lot's Bags and storage); then assess the return. Nothing was signed.")


@dataclass(frozen=True)
class AssessedReturn:
    """One return of a bag to the unit with QA's signed assessment of it, as the lot's page shows it: a bag back
    in stock after a trip to the ward carries its story (how warm it got, who judged it fit, and that they signed)."""

    bag: Bag
    returned: CustodyEvent
    assessment: ReturnAssessment
    signatures: list[Any]  # the assessment's signatures (printed name, time, meaning: 21 CFR 11.50)
    assessed_by: str


def assessed_returns(session: Session, bag_ids: list[int]) -> list[AssessedReturn]:
    """The signed assessments of the bags' returns, in the order they were assessed."""
    if not bag_ids:
        return []
    from mscbatch.auth.models import User
    from mscbatch.patients.queries import signatures_for

    rows = list(session.execute(select(ReturnAssessment, CustodyEvent, Bag)
                                .join(CustodyEvent, CustodyEvent.id == ReturnAssessment.return_event_id)
                                .join(Bag, Bag.id == ReturnAssessment.bag_id)
                                .where(ReturnAssessment.bag_id.in_(bag_ids)).order_by(ReturnAssessment.id)))
    signed = signatures_for(session, ReturnAssessment.__tablename__, [a.id for a, _e, _b in rows])
    names = {u.id: u.full_name for u in session.scalars(select(User).where(
        User.id.in_({a.assessed_by_id for a, _e, _b in rows})))}
    return [AssessedReturn(bag, event, assessment, signed.get(assessment.id, []),
                           names.get(assessment.assessed_by_id, "?")) for assessment, event, bag in rows]
