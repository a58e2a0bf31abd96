"""Starting a lot and moving it through its states: one function per use case, each one audited transaction.

Rules enforced here (DOMAIN.md sections 1, 3, 4, 9):
- only a technician records manufacturing;
- a lot comes from ONE donor collection, through the donor gate: an ineligible donor gives no lot; a donor
  whose eligibility is pending gives a lot flagged "release impossible until approved";
- the product comes from config/products.toml and must match the donor's tissue (and a familial donor's
  product must be directed: "for use by intended recipient only");
- the lot number is allocated by the system in the site format (config/site.toml), never typed;
- one collection, one lot unless said otherwise: a second lot of a donor with the same collection date and time
  (Back and "Start lot" again, a double click) is refused naming the lot already started, unless the technician
  says it is deliberately another lot from that collection (the audit trail records it so); a cord donor's
  lots all carry the one day the cord was collected (at the birth), under the donor's row lock;
- the collection site is printed on every bag label: refused at entry when the label could not print it
  (mscbatch.labels.field_problem, the renderer's own rule: its fonts, its box);
- every state change goes through apply_lot_transition (core.states.LOT: sequence and authority checks);
- a lot goes to quarantine (the end of manufacturing) only when its record names a reagent lot of every type its
  product requires (config/products.toml `required_reagent_types`) and a DMSO lot when its bags hold DMSO
  (lots.reagent_rules.missing_reagent_types, DOMAIN.md section 4: recalls happen by reagent lot too).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.core.bounds import FIRST_DAY, plausible_instant
from mscbatch.core.identifiers import din_shown
from mscbatch.core.states import LOT, SYSTEM, TransitionRefused
from mscbatch.database import locked_row, utcnow
from mscbatch.donors.decisions import donor_gate, donor_gate_reasons
from mscbatch.donors.queries import lock_donor
from mscbatch.donors.validation import whose_birth
from mscbatch.errors import Conflict, PermissionDenied, ValidationFailed
from mscbatch.labels import field_problem
from mscbatch.lots.din_allocation import allocate_lot_sequence
from mscbatch.lots.models import (
    PENDING_FLAG,
    TISSUE_UNITS,
    Deviation,
    Lot,
    ProcessStep,
    ReagentLot,
    ReagentUse,
)
from mscbatch.lots.problems import Problems
from mscbatch.lots.queries import bags_of, get_lot, product_catalogue, product_of
from mscbatch.lots.reagent_rules import missing_reagent_types, missing_reagents_words
from mscbatch.recall.queries import recall_in_force_of, recall_words
from mscbatch.site import local_and_utc, site_config

ENTRY_ROLE = "technician"
RELEASE_TARGETS = ("released", "conditional_release")
#: dispositions QA signs electronically (21 CFR 11.50; issue 5 calls apply_lot_transition inside its signing
#: use case): transition_lot, the unsigned use case, refuses them.
SIGNED_TARGETS = frozenset({"released", "conditional_release", "rejected", "recalled"})


def lock_lot(session: Session, lot_id: int) -> Lot:
    """The lot row, locked for the rest of the transaction and read afresh (never a stale status).

    Every use case that decides on a lot's status, or writes what its release signature weighs (results,
    attachments, deviations), takes this lock first: on PostgreSQL (READ COMMITTED) a release and a result
    entered at the same moment then run one after the other, so the signature sees the result or the result
    sees the released lot and is refused. On SQLite BEGIN IMMEDIATE serialises writers already."""
    return locked_row(session, Lot, lot_id, "lot")


def require_technician(actor: Any) -> None:
    if actor is None or not actor.has_role(ENTRY_ROLE):
        raise PermissionDenied("Only a lab technician records manufacturing.")


def require_in_process(lot: Lot, what: str) -> None:
    """Manufacturing data can only be added while the lot is in process (operational sequence check)."""
    if lot.status != "in_process":
        raise Conflict(f"Lot {lot.lot_number} is {lot.status.replace('_', ' ')}: {what} can no longer be recorded.")


def decimal_of(value: Any, field: str, label: str) -> Decimal:
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, AttributeError):
        raise ValidationFailed(f"{label}: give a number.", field=field) from None
    if not number.is_finite():
        raise ValidationFailed(f"{label}: give a number.", field=field)
    return number


def at_most_decimals(number: Decimal, places: int, field: str, label: str, example: str) -> Decimal:
    """The number when it has at most `places` decimals (trailing zeros aside), as its Numeric(..., places) column
    keeps it, returned at that scale (the audit trail then records what the column holds). More are refused naming
    the field: stored, they were rounded silently, and differently (20.005 mL became 20.00 on SQLite, 20.01 on
    PostgreSQL; 0.004 g of tissue 0.00; a tank typed -149.96 °C was kept as -150.0 and took bags that need -150 °C;
    a viability of 95.555 % was kept as 95.56), as the volume infused is refused (custody.infusions).
    Call it on a bounded, finite number: quantize() cannot hold more than 28 digits."""
    quantum = Decimal(1).scaleb(-places)
    if number != number.quantize(quantum):
        raise ValidationFailed(f"{label} at most {places} decimal{'' if places == 1 else 's'} (e.g. {example}).",
                               field=field)
    return number.quantize(quantum)


@dataclass(frozen=True)
class LotDetails:
    """The collection a lot is started from. `collection_at` must be time-zone aware."""

    donor_id: int
    product_id: str
    collection_at: datetime
    collection_site: str
    tissue_amount: Decimal | str
    tissue_unit: str
    #: the technician says this is deliberately another lot from a collection that already has one
    same_collection_as_existing: bool = False


class SameCollection(Conflict):
    """A lot of the donor already has this collection date and time: `existing` is its lot number."""

    def __init__(self, message: str, existing: str) -> None:
        super().__init__(message, field="collection_at")
        self.existing = existing


def check_lot_details(details: LotDetails) -> tuple[Any, Decimal, str]:
    """The collection as typed (product, time, site, amount, unit), every problem at once; nothing is read from the
    database, so the new-lot page also runs it on a form refused for its own reasons."""
    problems = Problems()
    product = problems.check(lambda: _product(details.product_id))
    problems.check(lambda: _check_collection_at(details.collection_at))
    site = problems.check(lambda: _collection_site(details.collection_site))
    amount = problems.check(lambda: _tissue_amount(details.tissue_amount))
    if details.tissue_unit not in TISSUE_UNITS:
        problems.add(ValidationFailed("Tissue unit: g or mL.", field="tissue_unit"))
    problems.raise_any()
    assert amount is not None and site is not None
    return product, amount, site


def _product(product_id: str) -> Any:
    try:
        return product_catalogue().get(product_id)
    except KeyError:
        raise ValidationFailed("Choose a product of config/products.toml.", field="product_id") from None


def _check_collection_at(collection_at: datetime | None) -> None:
    if collection_at is None or collection_at.tzinfo is None:
        raise ValidationFailed("Give the collection date and time.", field="collection_at")
    if collection_at > utcnow():
        raise ValidationFailed("The collection cannot be in the future.", field="collection_at")
    if not plausible_instant(collection_at):
        raise ValidationFailed(f"The collection cannot be before {FIRST_DAY}.", field="collection_at")


def _collection_site(typed: str | None) -> str:
    site = (typed or "").strip()
    if not site or len(site) > 120:
        raise ValidationFailed("Give the collection site (at most 120 characters).", field="collection_site")
    unprintable = field_problem("collection_facility", site)  # the bag label prints it: the label's own rule
    if unprintable:
        raise ValidationFailed(f"Collection site: {site!r} {unprintable}. Every bag label prints the collection "
                               "site.", field="collection_site")
    return site


def _tissue_amount(typed: Decimal | str) -> Decimal:
    amount = decimal_of(typed, "tissue_amount", "Tissue amount")
    if amount <= 0:
        raise ValidationFailed("The tissue amount must be greater than 0.", field="tissue_amount")
    if amount >= Decimal("100000000"):  # the column holds 8 digits before the point; no tissue weighs 100 t
        raise ValidationFailed("Tissue amount: far too much for a tissue collection; give it in g or mL, less "
                               "than 100 000 000.", field="tissue_amount")
    return at_most_decimals(amount, 2, "tissue_amount", "Tissue amount:", "21.55")  # 0.004 g was stored as 0.00


def create_lot(session: Session, actor: Any, details: LotDetails) -> Lot:
    """Start a lot from a donor's collection (the donor gate decides whether and how)."""
    require_technician(actor)
    product, amount, site_name = check_lot_details(details)
    site = site_config()
    with use_case(session, actor):
        # locked first, as a donor recall and QA's decisions lock it: on PostgreSQL (READ COMMITTED) a lot started
        # while the recall (or an "ineligible" decision) was being signed saw neither and escaped it
        donor = lock_donor(session, details.donor_id)
        collected_on = details.collection_at.astimezone(site.tz).date()
        # a collection day before the donor's birth or consent is a date typed wrong, said on the date's field
        # before the eligibility engine reads it as a consent that does not cover the donation (an exclusion)
        problem = collection_day_problem(donor, collected_on)
        if problem:
            raise ValidationFailed(problem, field="collection_at")
        # raises Conflict for an ineligible donor: no lot at all; judged at the day the tissue was collected
        gate = donor_gate(session, donor.id, collected_on)
        recall = recall_in_force_of(session, "donor", donor.id)
        if recall is not None:
            raise Conflict(f"Donor {donor.code} is under {recall_words(recall)}. No lot can be started from this "
                           "donor while the recall is in force.", field="donor_id")
        if donor.tissue_source != product.tissue_source:
            raise ValidationFailed(f"{product.name} ({product.product_class}) is made from "
                                   f"{product.tissue_source.replace('_', ' ')}; donor {donor.code} gives "
                                   f"{donor.tissue_source.replace('_', ' ')}.", field="product_id")
        if donor.donor_type == "familial" and not product.is_directed:
            raise ValidationFailed(f"Donor {donor.code} is a familial donor for {donor.recipient_code}: choose a "
                                   "directed product (for use by intended recipient only).", field="product_id")
        # under the donor's lock: two "Start lot" at once run one after the other, the second sees the first's lot
        earlier = list(session.scalars(select(Lot).where(Lot.donor_id == donor.id).order_by(Lot.id)))
        same = _one_collection_rules(donor, earlier, details, collected_on, site.tz)
        if same is not None:  # the technician said so: the audit event of the new lot records it
            session.info["audit_reason"] = (f"Another lot from the same collection as {same.lot_number} (donor "
                                            f"{donor.code}, collected {local_and_utc(same.collection_at)}), "
                                            "confirmed by the technician.")
        year = details.collection_at.astimezone(site.tz).year
        lot_number = site.format_lot_number(year, allocate_lot_sequence(session, year))
        lot = Lot(lot_number=lot_number, product_id=product.id, product_name=product.name,
                  product_class=product.product_class, donor_id=donor.id, donor_gate=gate, status="in_process",
                  collection_at=details.collection_at, collection_site=site_name, tissue_amount=amount,
                  tissue_unit=details.tissue_unit, site_config_version=site.version,
                  site_config_sha256=site.sha256, products_version=product_catalogue().version,
                  products_sha256=product_catalogue().sha256, created_by_id=actor.id)
        session.add(lot)
    lot.__dict__["known_gate_now"] = gate  # Lot.gate_now: judged just now, at the lot's collection day
    return lot


def _one_collection_rules(donor: Any, earlier: list[Lot], details: LotDetails, collected_on: date,
                          tz: Any) -> Lot | None:
    """Refuse a lot that repeats a collection (or, for a cord, gives it a second day); return the existing lot of
    the same collection when the technician said it is deliberately another lot from it."""
    if donor.tissue_source == "umbilical_cord":
        other_day = next((lot for lot in earlier if lot.collection_at.astimezone(tz).date() != collected_on), None)
        if other_day is not None:
            raise Conflict(f"Collection date: a cord is collected once: {donor.code} was collected on "
                           f"{other_day.collection_at.astimezone(tz).date()} (lot {other_day.lot_number}), not "
                           f"{collected_on}. Check the date typed.", field="collection_at")
    # a cord's one collection is its day (typing 07:01 for 07:00 is no other cord); else the collection's date-time
    cord = donor.tissue_source == "umbilical_cord"
    same = next((lot for lot in earlier if (lot.collection_at.astimezone(tz).date() == collected_on if cord
                                            else lot.collection_at == details.collection_at)), None)
    if same is None:
        return None
    if not details.same_collection_as_existing:
        raise SameCollection(f"Collection date and time: donor {donor.code} already has lot {same.lot_number} from "
                             f"the collection of {local_and_utc(same.collection_at)}. One collection gives one lot: "
                             "if this is deliberately another lot from the same collection, say so (\"Another lot from "
                             f"the same collection as {same.lot_number}\"); otherwise open {same.lot_number}.",
                             same.lot_number)
    return same


def collection_day_problem(donor: Any, collected_on: date) -> str | None:
    """What is wrong with a lot's collection day for this donor, naming the field and the rule, or None.

    A collection is refused when it is dated before the date of birth recorded for the donor (for a cord donor,
    the mother's) or before the donor's signed consent: tissue is procured only once consent is given (EU
    2004/23/EC Art. 13). Such a day is nearly always a date typed wrong (1901-01-01 for 2026-12-01): said so on
    the collection date, not as the eligibility engine's "consent dated after the collection" (which reads as a
    donor excluded for good). A consent dated after a real collection stays the engine's judgement through the
    donor's own record (the consent date is corrected there)."""
    if donor.date_of_birth is not None and collected_on < donor.date_of_birth:
        return (f"Collection date: {collected_on} is before {whose_birth(donor.tissue_source)} "
                f"({donor.date_of_birth}) recorded for donor {donor.code}. Check the date typed.")
    if donor.consent_date is not None and collected_on < donor.consent_date:
        return (f"Collection date: {collected_on} is before the donor's signed consent ({donor.consent_date}); "
                f"tissue is collected only after consent. Check the date typed (donor {donor.code}).")
    return None


def collection_day(lot: Lot) -> date:
    """The site day the lot's tissue was collected: the day the donor gate judges the lot at."""
    return lot.collection_at.astimezone(site_config().tz).date()


def current_gate(session: Session, lot: Lot) -> str:
    """The donor gate now ("approved", "pending" or "ineligible"): QA may approve the donor after the lot
    was started, or new information may reopen it."""
    try:
        return donor_gate(session, lot.donor_id, collection_day(lot))
    except Conflict:
        return "ineligible"


def gate_and_reasons(session: Session, lot: Lot) -> tuple[str, list[str]]:
    """current_gate and why it does not say "approved" (donors.decisions.donor_gate_reasons), from one judgement
    of the donor; Lot.gate_now keeps the gate for the rest of the request."""
    gate, reasons = donor_gate_reasons(session, lot.donor_id, collection_day(lot))
    lot.__dict__["known_gate_now"] = gate
    return gate, reasons


def _roles_of(actor: Any) -> set[str]:
    return {SYSTEM} if actor is None else set(actor.role_names)


def apply_lot_transition(session: Session, actor: Any, lot: Lot, target: str) -> Lot:
    """Move a lot to `target` INSIDE the caller's use case (the release signing of issue 5 calls this after
    sign(), in the same transaction). The one place where lot states change:
    - sequence and authority from core.states.LOT (actor None = the system, e.g. expiry);
    - quarantine only after cryopreservation (there is nothing to release before the bags exist), and only when
      the record names the reagent lots the product requires (missing_reagents_of), and only when every bag in the
      unit's custody has a storage position (unplaced_bags_words: a bag in no position cannot be found or recalled);
    - release (or conditional release) only when the donor gate says "approved" NOW (DOMAIN.md section 3);
    - "expired" only once the lot's expiry has passed: before it, "expired" would be a way of taking a lot out of
      use without the signed rejection or recall (and their reasons) that GMP asks for.
    """
    subject = f"lot {lot.lot_number}"
    try:
        LOT.check(lot.status, target, _roles_of(actor), subject=subject)
    except TransitionRefused as refusal:
        message = str(refusal)[0].upper() + str(refusal)[1:] + "."
        if refusal.kind == "authority":
            raise PermissionDenied(message) from None
        raise Conflict(message) from None
    if target == "quarantine":
        bags = bags_of(session, lot.id)
        if not bags:
            raise Conflict(f"Lot {lot.lot_number} is not cryopreserved yet: record the harvest and the bags before "
                           "sending it to quarantine.")
        missing = missing_reagents_of(session, lot, bags)
        if missing:
            raise Conflict(missing_reagents_words(lot.lot_number, missing, "quarantine"), field="target")
        unexplained = expired_uses_unexplained(session, lot)
        if unexplained:
            raise Conflict(f"Lot {lot.lot_number} cannot go to quarantine: " + "; ".join(unexplained) + ". QA judges "
                           "the deviation at release.", field="target")
        unplaced = unplaced_bags_words(bags)
        if unplaced:
            raise Conflict(f"Lot {lot.lot_number} cannot go to quarantine: {unplaced}. Place each bag in a box "
                           "position (the lot page, Bags) first: a bag in no position is in no tank that anyone "
                           "can find, check or recall.", field="target")
    if target == "expired" and not expiry_passed(lot):
        raise Conflict(_not_expired_words(lot), field="target")
    if target in RELEASE_TARGETS:
        # at the lot's own collection day, as the release page judges it (current_gate): at the donor's planned
        # collection, samples that do not cover this donation would read "approved"; Conflict if now ineligible
        gate = donor_gate(session, lot.donor_id, collection_day(lot))
        if gate != "approved":
            raise Conflict(f"Lot {lot.lot_number}: {PENDING_FLAG}")
    lot.status = target
    lot.status_changed_at = utcnow()
    lot.status_changed_by_id = None if actor is None else actor.id
    return lot


#: a bag in these states is in the unit's custody and must have a storage position (a discarded bag has none)
UNPLACED_BLOCKING_STATES = ("stored", "on_hold", "allocated", "returned")


def unplaced_bags_words(bags: Any) -> str:
    """The lot's bags still in the unit's custody with no storage position, in words ("bags 1 of 4 (DIN ...) and 3 of
    4 (DIN ...) are not placed in storage"); "" when every one is placed. The quarantine gate refuses the lot then."""
    waiting = [bag for bag in bags if bag.box_id is None and bag.status in UNPLACED_BLOCKING_STATES]
    if not waiting:
        return ""
    named = [f"{bag.bag_number} of {bag.bag_count} ({din_shown(bag)})" for bag in waiting]
    listed = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
    return f"bag{'' if len(named) == 1 else 's'} {listed} {'is' if len(named) == 1 else 'are'} not placed in storage"


def recorded_reagent_types(session: Session, lot_id: int) -> set[str]:
    """The reagent types of the reagent lots linked to a lot (reagent_use -> reagent_lot)."""
    return set(session.scalars(select(ReagentLot.reagent_type).join(ReagentUse, ReagentUse.reagent_lot_id ==
                                                                    ReagentLot.id).where(ReagentUse.lot_id == lot_id)))


def missing_reagents_of(session: Session, lot: Lot, bags: Any = None) -> list[str]:
    """What lot's record still lacks (lots.reagent_rules.missing_reagent_types on the lot's product, recorded
    reagent types and bags), in plain words; empty when complete. `bags`: the lot's bags when already read."""
    return missing_reagent_types(product_of(lot), recorded_reagent_types(session, lot.id),
                                 bags_of(session, lot.id) if bags is None else bags)


def expired_uses_unexplained(session: Session, lot: Lot) -> list[str]:
    """The reagent uses of the lot's record whose reagent lot had expired by its day of use with no deviation
    recorded against the step of the use (for the harvest and cryopreservation: the last passage, as a harvest
    short of its count asks), in plain words. A new use of an expired reagent is refused (reagents.link_reagent),
    but a correction records the lot really used even expired (reagent_corrections) and only warns the technician
    once: without this the lot went to quarantine and release with the expired reagent unexplained."""
    steps = list(session.scalars(select(ProcessStep).where(ProcessStep.lot_id == lot.id)))
    passages = sorted((s for s in steps if s.kind == "passage"), key=lambda s: s.passage_number or 0)
    explained = set(session.scalars(select(Deviation.step_id).where(Deviation.lot_id == lot.id)))
    labels = {s.id: s.label for s in steps}
    found = []
    for use, reagent in session.execute(select(ReagentUse, ReagentLot).join(
            ReagentLot, ReagentLot.id == ReagentUse.reagent_lot_id).where(
            ReagentUse.lot_id == lot.id, ReagentLot.expiry_date < ReagentUse.used_on).order_by(ReagentUse.id)):
        step_id = use.step_id or (passages[-1].id if passages else None)
        if step_id in explained:
            continue
        against = labels.get(step_id or 0, "a step of the lot")
        found.append(f"{reagent.name}, {reagent.supplier} lot {reagent.lot_number}, had expired on "
                     f"{reagent.expiry_date}, before its use for {use.stage} on {use.used_on}: record a deviation "
                     f"against {'the isolation' if against == 'Isolation' else against} saying why (lot page, "
                     "Deviations)")
    return found


def expiry_passed(lot: Lot) -> bool:
    """The lot's expiry (frozen_at + shelf life, set at cryopreservation) is now or in the past."""
    return lot.expires_at is not None and lot.expires_at <= utcnow()


def _not_expired_words(lot: Lot) -> str:
    if lot.expires_at is None:
        return f"Lot {lot.lot_number} has no expiry date yet: it cannot be marked expired."
    return (f"Lot {lot.lot_number} expires on {local_and_utc(lot.expires_at)}: it cannot be "
            "marked expired before then. To stop its use now, QA recalls it (or rejects it) with an electronic "
            "signature and a reason.")


def transition_lot(session: Session, actor: Any, lot_id: int, target: str, reason: str) -> Lot:
    """A state change as its own use case (e.g. a technician sends a lot to quarantine); the reason is
    written on the audit event of the change."""
    if not (reason or "").strip():
        raise ValidationFailed("Give a reason for the state change: it goes into the audit trail.", field="reason")
    if target in SIGNED_TARGETS:
        if not LOT.roles_for(target) & _roles_of(actor):  # a role that never may: told so (403), not what it needs
            raise PermissionDenied(f"Only {' or '.join(sorted(LOT.roles_for(target))).upper()} may move a lot to "
                                   f"{target.replace('_', ' ')}, with an electronic signature.", field="target")
        raise Conflict(f"Moving a lot to {target.replace('_', ' ')} needs QA's electronic signature (release "
                       "capability); it cannot be done as a plain state change.", field="target")
    with use_case(session, actor, reason):
        apply_lot_transition(session, actor, lock_lot(session, lot_id), target)
    return get_lot(session, lot_id)
