"""Reading patients: protocols, lookups (by id, code, wristband), weights, familial donors, the escalation
state, and which patient a bag is allocated to (the bedside and label capabilities build on these)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session, aliased

from mscbatch.auth.models import User
from mscbatch.core.cohorts import (
    CohortState,
    EscalationDecision,
    Observation,
    await_infusions,
    escalation_state,
)
from mscbatch.core.dosing import dose_at_new_weight
from mscbatch.core.numbers import plain
from mscbatch.core.protocols import Protocol, check_products, load_protocols
from mscbatch.database import locked_row, utcnow
from mscbatch.donors.models import Donor
from mscbatch.errors import NotFound
from mscbatch.lots.models import Bag
from mscbatch.lots.queries import product_catalogue
from mscbatch.patients.endotoxin import known_load_problem
from mscbatch.patients.models import (
    Allocation,
    EnrolmentCheck,
    EscalationDecisionRecord,
    Patient,
    Prescription,
    WeightError,
    WeightMeasurement,
)
from mscbatch.signatures.models import Signature

PAGE_SIZE = 50


@cache
def protocols() -> dict[str, Protocol]:
    """config/protocols/*.toml, validated once, with their products checked against config/products.toml (the
    same trial: check_products)."""
    loaded = load_protocols()
    check_products(loaded, product_catalogue())
    return loaded


def protocol_name(protocol_id: str) -> str:
    """A protocol by the short name users see ("SLE-UC"), not its internal id ("protocol-sle-uc"): the patients list
    and the recall's notify list; the id only for a protocol no longer configured."""
    found = protocols().get(protocol_id)
    return found.short_name if found is not None else protocol_id


def protocol_of(patient: Patient) -> Protocol:
    try:
        return protocols()[patient.protocol_id]
    except KeyError:
        raise NotFound(f"Patient {patient.code} is in protocol {patient.protocol_id!r}, no longer configured.") from None


def get_patient(session: Session, patient_id: int) -> Patient:
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"No patient with id {patient_id}.")
    return patient


def lock_patient(session: Session, patient_id: int) -> Patient:
    """The patient's row, locked to the end of the transaction (PostgreSQL; SQLite's writers are serialised).
    What the bedside judges from the patient's records (the latest weight) is taken under this lock both by
    whoever writes them and by the infusion start: a weight recorded while a start is running either lands
    before the start reads it, or waits until the start has committed."""
    return locked_row(session, Patient, patient_id, "patient")


def patient_by_code(session: Session, code: str) -> Patient | None:
    return session.scalar(select(Patient).where(Patient.code == (code or "").strip().upper()))


def wristband_identity(wristband_id: str | None) -> str:
    """The one spelling of a wristband: no spaces (none inside either), capital letters. A band is read by a
    scanner or typed by a nurse, and the same band comes as "wb-100234" (caps lock, a scanner set to lower case) or
    "WB 100234" (printed in groups to be read aloud): two patients whose bands differ only so cannot be told apart
    at the bed, so they are one identity, held unique (models: uq_patient_wristband_identity). Other characters
    (dashes) are kept: they are printed on the band and read as such."""
    return "".join((wristband_id or "").split()).upper()


def wristband_as_registered(session: Session, identity: str) -> str | None:
    """How a band registered before wristbands had one spelling (migration 0017 kept it) is stored, when `identity`
    (wristband_identity) is its spelling, or None. Read only when the normalised spelling finds no one (a STOP)."""
    return session.scalar(select(Patient.wristband_id).where(
        func.upper(func.replace(Patient.wristband_id, " ", "")) == identity, Patient.wristband_id != identity).limit(1))


def patient_by_wristband(session: Session, wristband_id: str) -> Patient | None:
    """The patient wearing this wristband (bedside scan, a registration's check for a band already worn), whatever
    the case and spacing it is typed in, or None. The services store the normalised spelling, found by the indexed
    equality; a band registered before that rule is found under its own spelling."""
    identity = wristband_identity(wristband_id)
    if not identity:
        return None
    found = session.scalar(select(Patient).where(Patient.wristband_id == identity))
    if found is None:
        earlier = wristband_as_registered(session, identity)
        found = None if earlier is None else session.scalar(select(Patient).where(Patient.wristband_id == earlier))
    return found


def list_patients(session: Session, *, protocol_id: str = "", search: str = "") -> list[Patient]:
    query = select(Patient).order_by(Patient.id.desc()).limit(PAGE_SIZE)
    if protocol_id:
        query = query.where(Patient.protocol_id == protocol_id)
    if search:
        query = query.where(Patient.code.contains(search.strip().upper()))
    return list(session.scalars(query))


def not_in_error(weight: Any) -> Any:
    """A weight (WeightMeasurement or an alias of it) not marked entered in error: the only weights anything reads."""
    return ~select(WeightError.id).where(WeightError.weight_id == weight.id).exists()


def weights_of(session: Session, patient_id: int) -> list[WeightMeasurement]:
    """The weights in use, newest first (by date measured, then by entry): those entered in error left out."""
    return list(session.scalars(select(WeightMeasurement).where(WeightMeasurement.patient_id == patient_id,
                                                                not_in_error(WeightMeasurement))
                                .order_by(WeightMeasurement.measured_on.desc(), WeightMeasurement.id.desc())))


@dataclass(frozen=True)
class RecordedWeight:
    """A weight as the patient's page and the API list it: with its mark of entered in error, if any."""
    weight: WeightMeasurement
    error: WeightError | None
    marked_by: str | None  # the full name of who marked it

    @property
    def id(self) -> int:
        return self.weight.id


def weight_history(session: Session, patient_id: int) -> list[RecordedWeight]:
    """Every weight recorded, newest first as weights_of, each with its mark of entered in error (None: in use)."""
    return [RecordedWeight(weight, error, name) for weight, error, name in session.execute(
        select(WeightMeasurement, WeightError, User.full_name)
        .outerjoin(WeightError, WeightError.weight_id == WeightMeasurement.id)
        .outerjoin(User, User.id == WeightError.marked_by_id)
        .where(WeightMeasurement.patient_id == patient_id)
        .order_by(WeightMeasurement.measured_on.desc(), WeightMeasurement.id.desc()))]


def latest_weight(session: Session, patient_id: int) -> WeightMeasurement | None:
    weights = weights_of(session, patient_id)
    return weights[0] if weights else None


#: among several familial donors registered for one patient (a sibling found ineligible, then a parent), the one
#: whose cells the patient receives: an approved donor first, then the first registered
_APPROVED_FIRST = (case((Donor.status == "approved", 0), else_=1), Donor.id)


def familial_donor_of(session: Session, patient: Patient) -> Donor | None:
    """The patient's familial donor: linked explicitly, or the familial donor registered for this patient code (an
    approved one before one that is not: the first registered, found ineligible, used to hide the approved second)."""
    if patient.familial_donor_id is not None:
        return session.get(Donor, patient.familial_donor_id)
    return session.scalar(select(Donor).where(Donor.donor_type == "familial", Donor.recipient_code == patient.code)
                          .order_by(*_APPROVED_FIRST))


def is_directed(patient: Patient) -> bool:
    """The patient's protocol gives directed products (SSc-BM: only the familial donor's cells). A protocol no
    longer configured gives none."""
    protocol = protocols().get(patient.protocol_id)
    return protocol is not None and protocol.directed


def directed_donor_of(session: Session, patient: Patient) -> Donor | None:
    """The familial donor whose cells ONLY this patient receives: directed protocol, then familial donor; None for
    other protocols or when no donor is linked or names the patient's code."""
    return familial_donor_of(session, patient) if is_directed(patient) else None


def directed_donors_of(session: Session, patients: list[Patient]) -> dict[int, Donor]:
    """directed_donor_of for a list of patients, in one query: patient id -> donor (patients without one left out)."""
    directed = [p for p in patients if is_directed(p)]
    linked = {p.familial_donor_id for p in directed if p.familial_donor_id is not None}
    codes = {p.code for p in directed if p.familial_donor_id is None}
    if not linked and not codes:
        return {}
    by_id: dict[int, Donor] = {}
    by_code: dict[str, Donor] = {}
    for donor in session.scalars(select(Donor).where(or_(
            Donor.id.in_(linked), and_(Donor.donor_type == "familial", Donor.recipient_code.in_(codes))))
            .order_by(*_APPROVED_FIRST)):
        by_id[donor.id] = donor
        if donor.donor_type == "familial" and donor.recipient_code in codes:
            by_code.setdefault(donor.recipient_code, donor)  # approved first, then the first registered: as above
    found = {p.id: by_id.get(p.familial_donor_id) if p.familial_donor_id is not None else by_code.get(p.code)
             for p in directed}
    return {patient_id: donor for patient_id, donor in found.items() if donor is not None}


def has_signed_prescription(session: Session, patient: Patient) -> bool:
    """The patient holds a place in the protocol's escalation plan: a signed prescription, not cancelled (what
    dosed_levels counts)."""
    return session.scalar(select(Prescription.id).where(
        Prescription.patient_id == patient.id, Prescription.protocol_id == patient.protocol_id,
        Prescription.status != "cancelled", Prescription.locked_at.is_not(None)).limit(1)) is not None


def enrolment_checks_of(session: Session, patient_id: int) -> list[EnrolmentCheck]:
    return list(session.scalars(select(EnrolmentCheck).where(EnrolmentCheck.patient_id == patient_id)
                                .order_by(EnrolmentCheck.id.desc())))


def prescriptions_of(session: Session, patient_id: int) -> list[Prescription]:
    return list(session.scalars(select(Prescription).where(Prescription.patient_id == patient_id)
                                .order_by(Prescription.id.desc())))


def get_prescription(session: Session, prescription_id: int) -> Prescription:
    prescription = session.get(Prescription, prescription_id)
    if prescription is None:
        raise NotFound(f"No prescription with id {prescription_id}.")
    return prescription


def allocations_of(session: Session, prescription_id: int) -> list[Allocation]:
    return list(session.scalars(select(Allocation).where(Allocation.prescription_id == prescription_id)
                                .order_by(Allocation.id)))


@dataclass(frozen=True)
class BagAllocation:
    patient: Patient
    prescription: Prescription
    allocation: Allocation


def _signed_active_allocation(bag_id: Any, *, active_only: bool = True) -> list[Any]:
    """The one definition of "this bag is reserved by a signed, active prescription" (bag_id: a value or a
    correlated column); `active_only=False`: signed, whatever the prescription's status since."""
    conditions = [Allocation.active_bag_id == bag_id, Prescription.id == Allocation.prescription_id,
                  Prescription.locked_at.is_not(None)]
    return [*conditions, Prescription.status == "active"] if active_only else conditions


def _bag_allocation(session: Session, bag_id: int, *, active_only: bool) -> BagAllocation | None:
    row = session.execute(
        select(Allocation, Prescription, Patient).join(Patient, Patient.id == Allocation.patient_id)
        .where(*_signed_active_allocation(bag_id, active_only=active_only))).first()
    return None if row is None else BagAllocation(patient=row[2], prescription=row[1], allocation=row[0])


def allocation_of_bag(session: Session, bag_id: int) -> BagAllocation | None:
    """Which patient this bag is reserved for by a signed, active prescription (bedside / labels), or None."""
    return _bag_allocation(session, bag_id, active_only=True)


def allocation_given(session: Session, bag_id: int) -> BagAllocation | None:
    """The signed allocation a bag is (to be) given under, whatever the prescription's status since: an infused bag
    keeps its allocation when the course is stopped afterwards (prescriptions.let_go), and its infusion is still
    judged against the volume prescribed from it."""
    return _bag_allocation(session, bag_id, active_only=False)


def allocated_patient_id(bag_id: Any) -> Any:
    """Correlated scalar subquery: the id of the patient the bag is reserved for, as allocation_of_bag says
    (the bedside check reads it in its one statement)."""
    return select(Allocation.patient_id).where(*_signed_active_allocation(bag_id)).limit(1).scalar_subquery()


def allocated_volume_ml(bag_id: Any, *, active_only: bool = True) -> Any:
    """Correlated scalar subquery: the volume (mL) the signed prescription draws from the bag (less than the bag
    holds for a partial dose); `active_only=False`: whatever the prescription's status since (an infused bag keeps
    its allocation when its course is stopped)."""
    return (select(Allocation.volume_ml).where(*_signed_active_allocation(bag_id, active_only=active_only)).limit(1)
            .scalar_subquery())


def prescribed_weight_on(bag_id: Any) -> Any:
    """Correlated scalar subquery: the day the weight the signed prescription was calculated with was measured
    (the bedside check judges its age against the protocol's weight_valid_days on the day of infusion)."""
    return (select(Prescription.weight_measured_on).where(*_signed_active_allocation(bag_id)).limit(1)
            .scalar_subquery())


def has_newer_weight(bag_id: Any) -> Any:
    """Correlated EXISTS: the patient the bag is reserved for has a weight newer (by date measured, then entry, as
    weights_of orders them) than the one the signed prescription was calculated with. The bedside check reads it in
    its one statement, and weight_since_prescription for the words only when it is true. A newer weight marked
    entered in error counts here (the bedside's statement and its plan stay as they are, for a rare case) and
    weight_since, which reads the weights in use only, then finds no change."""
    newer = aliased(WeightMeasurement)
    return select(newer.id).where(
        *_signed_active_allocation(bag_id), newer.patient_id == Prescription.patient_id,
        or_(newer.measured_on > Prescription.weight_measured_on,
            and_(newer.measured_on == Prescription.weight_measured_on, newer.id > Prescription.weight_id))).exists()


@dataclass(frozen=True)
class WeightSincePrescription:
    """A weight recorded after the one a signed prescription used, and what of the prescription no longer holds."""
    prescribed_kg: Decimal
    prescribed_on: date
    latest_kg: Decimal
    latest_on: date
    problems: tuple[str, ...]  # empty: the dose, DMSO and endotoxin still hold at the newer weight

    @property
    def weights_words(self) -> str:
        """Both weights with the days they were measured (ISO, as the patient's page lists them), the one source of
        the bedside check's words (custody.checks.judge: its WEIGHT CHANGED and its note of a newer weight): "prescribed
        for 62.5 kg (weighed 2026-12-04); the patient now weighs 75 kg (weighed 2026-12-05)"."""
        return (f"prescribed for {plain(self.prescribed_kg)} kg (weighed {self.prescribed_on.isoformat()}); the "
                f"patient now weighs {plain(self.latest_kg)} kg (weighed {self.latest_on.isoformat()})")

    @property
    def changed_words(self) -> str:
        """The bedside check's WEIGHT CHANGED, without what to do (each step that refuses the bag says that in its
        own words: custody.checks.judge, custody.handover's dispatch and thaw)."""
        return f"WEIGHT CHANGED since the prescription: {self.weights_words}. At the new weight {'; '.join(self.problems)}."

    @property
    def no_longer_fits(self) -> tuple[str, str]:
        """(headline, the rest): the warning of a prescription its bags no longer fit, said in these words by the
        patient's page, the prescription's page and the dose sheet (NO_LONGER_FITS)."""
        return NO_LONGER_FITS, (
            f"It was calculated for {plain(self.prescribed_kg)} kg (weighed {self.prescribed_on.isoformat()}); the "
            f"patient now weighs {plain(self.latest_kg)} kg (weighed {self.latest_on.isoformat()}). At the new weight "
            f"{'; '.join(self.problems)}. The bedside check answers STOP for its bags not yet given, and they are "
            "neither sent to the ward nor thawed: cancel the prescription (bags already sent to the ward are returned "
            "first) and prescribe again for the new weight.")


NO_LONGER_FITS = "The active prescription no longer fits the patient's weight."


def weight_since_prescription(session: Session, bag_id: int) -> WeightSincePrescription | None:
    """The newest weight of the patient the bag is reserved for, judged against the signed prescription (None when
    the prescription's weight is still the newest)."""
    prescription = session.scalar(select(Prescription).where(*_signed_active_allocation(bag_id)).limit(1))
    return None if prescription is None else weight_since(session, prescription)


def weight_since(session: Session, prescription: Prescription) -> WeightSincePrescription | None:
    """The patient's newest weight judged against this prescription, or None while its own weight is the newest."""
    latest = latest_weight(session, prescription.patient_id)
    if latest is None or latest.id == prescription.weight_id:
        return None
    try:
        problems = tuple(dose_at_new_weight(prescription.calculation, latest.weight_kg))
        # a bag without an endotoxin result: the others' load, judged at the signature, is judged again here
        unknown_load = known_load_problem(prescription.calculation, latest.weight_kg)
        problems += (unknown_load,) if unknown_load is not None else ()
    except (KeyError, ValueError, ArithmeticError):  # a calculation this code cannot read: stop, do not guess
        problems = ("the prescription's calculation cannot be checked against the new weight",)
    return WeightSincePrescription(
        prescribed_kg=prescription.weight_kg, prescribed_on=prescription.weight_measured_on,
        latest_kg=latest.weight_kg, latest_on=latest.measured_on, problems=problems)


def weight_change_of(session: Session, prescription: Prescription) -> WeightSincePrescription | None:
    """A newer weight judged against a signed prescription still active with bags left to give (once every bag is
    given, a later weight concerns the next prescription, not this one), or None: what the patient's page, the
    prescription's page and the dose sheet warn of."""
    if prescription.status != "active" or prescription.locked_at is None:
        return None
    if not bags_left_to_give(session, prescription.id):
        return None
    return weight_since(session, prescription)


def bags_left_to_give(session: Session, prescription_id: int) -> int:
    """The prescription's bags not yet infused (nor discarded): what a newer weight still concerns."""
    return session.scalar(select(func.count()).select_from(Allocation).join(Bag, Bag.id == Allocation.bag_id).where(
        Allocation.prescription_id == prescription_id, Allocation.active_bag_id.is_not(None),
        Bag.status.not_in(("infused", "discarded")))) or 0


def signatures_for(session: Session, entity_type: str, entity_ids: list[int]) -> dict[int, list[Signature]]:
    out: dict[int, list[Signature]] = {}
    if not entity_ids:
        return out
    for signature in session.scalars(select(Signature).where(
            Signature.entity_type == entity_type, Signature.entity_id.in_([str(i) for i in entity_ids]))
            .order_by(Signature.signed_at)):
        out.setdefault(int(signature.entity_id), []).append(signature)
    return out


def dosed_levels(session: Session, protocol_id: str, *, excluding_patient_id: int | None = None) -> list[Decimal]:
    """One level per patient already prescribed (first signed, not cancelled, prescription), in order: a signed
    prescription takes the patient's place in the plan (so a cohort is never over-prescribed); the decision for the
    next cohort waits for the infusions themselves (infused_levels)."""
    first = (select(Prescription.patient_id, func.min(Prescription.id).label("first_id"))
             .where(Prescription.protocol_id == protocol_id, Prescription.status != "cancelled",
                    Prescription.locked_at.is_not(None))
             .group_by(Prescription.patient_id).subquery())
    rows = session.execute(select(Prescription.patient_id, Prescription.dose_level_cells_per_kg)
                           .join(first, first.c.first_id == Prescription.id).order_by(Prescription.id))
    return [Decimal(level) for patient_id, level in rows if patient_id != excluding_patient_id]


def first_infusions(session: Session, protocol_id: str) -> list[tuple[Decimal, datetime]]:
    """(level, start) of each patient whose infusion has started (their signed prescription's level, the start of
    their first infusion), in the order of those starts."""
    from mscbatch.custody.models import Infusion  # custody reads patients: imported when called

    rows = session.execute(
        select(Prescription.patient_id, Prescription.dose_level_cells_per_kg, Infusion.started_at)
        .join(Allocation, Allocation.prescription_id == Prescription.id)
        .join(Infusion, (Infusion.bag_id == Allocation.bag_id) & (Infusion.patient_id == Allocation.patient_id))
        .where(Prescription.protocol_id == protocol_id, Prescription.locked_at.is_not(None))
        .order_by(Infusion.started_at, Infusion.id))
    first: dict[int, tuple[Decimal, datetime]] = {}
    for patient_id, level, started in rows:
        first.setdefault(patient_id, (Decimal(level), started))
    return list(first.values())


def infused_levels(session: Session, protocol_id: str) -> list[Decimal]:
    """One level per patient whose infusion has started (their signed prescription's level), in the order of their
    first infusion (the cohort page's "infused" counts)."""
    return [level for level, _started in first_infusions(session, protocol_id)]


def observation(session: Session, protocol: Protocol, *, now: datetime | None = None) -> tuple[list[Decimal], Observation]:
    """What an escalation decision, or the first prescription of a next stage, can weigh: the levels of the patients
    whose first infusion is at least the protocol's observation_days old (SLE-UC: 10 days, seed 001), in order of
    first infusion, and the Observation naming the patients infused but still within those days."""
    now = now or utcnow()
    days = protocol.escalation.observation_days
    period = Observation(days)
    observed, waiting = [], []
    for level, started in first_infusions(session, protocol.id):
        (observed if period.counted_at(started) <= now else waiting).append((level, started))
    return [level for level, _s in observed], Observation(days, tuple(waiting))


def decisions_of(session: Session, protocol_id: str) -> list[EscalationDecisionRecord]:
    return list(session.scalars(select(EscalationDecisionRecord).where(
        EscalationDecisionRecord.protocol_id == protocol_id, EscalationDecisionRecord.locked_at.is_not(None))
        .order_by(EscalationDecisionRecord.id)))


def _recorded_decisions(session: Session, protocol_id: str) -> list[EscalationDecision]:
    return [EscalationDecision(d.stage_id, Decimal(d.chosen_cells_per_kg), d.toxicity_review,
                               str(d.decided_by_id), d.decided_on) for d in decisions_of(session, protocol_id)]


def cohort_plans(session: Session, protocol: Protocol, *,
                 excluding_patient_id: int | None = None) -> tuple[CohortState, CohortState]:
    """(cohort_state, the plan counted from infusions started) from one reading of the decisions and the infusions.
    The cohort state is held until the previous stage's patients have been infused and observed for the
    protocol's observation_days (core.cohorts.await_infusions)."""
    decisions = _recorded_decisions(session, protocol.id)
    prescribed = escalation_state(
        protocol, dosed_levels(session, protocol.id, excluding_patient_id=excluding_patient_id), decisions)
    observed, period = observation(session, protocol)
    infused = escalation_state(protocol, [level for level, _s in first_infusions(session, protocol.id)], decisions)
    return await_infusions(prescribed, escalation_state(protocol, observed, decisions), period), infused


def cohort_state(session: Session, protocol: Protocol, *, excluding_patient_id: int | None = None) -> CohortState:
    """The plan counted from signed prescriptions, held while the previous stage's patients are not all infused
    and observed (core.cohorts.await_infusions: SSc-BM's 3 x10^6/kg waits for the 10 infusions at 1 x10^6/kg)."""
    return cohort_plans(session, protocol, excluding_patient_id=excluding_patient_id)[0]


def infused_state(session: Session, protocol: Protocol, *,
                  now: datetime | None = None) -> tuple[CohortState, Observation]:
    """The plan counted from the patients infused and observed for the protocol's observation_days, not from
    prescriptions, with the Observation of those still within it: what an escalation decision can weigh
    (core.cohorts.check_cohort_infused). `now`: as it stood at that moment (a decision dated on an earlier day)."""
    observed, period = observation(session, protocol, now=now)
    return escalation_state(protocol, observed, _recorded_decisions(session, protocol.id)), period


def age_on(patient: Patient, on: date) -> int:
    from mscbatch.core.enrolment import completed_years

    return completed_years(patient.date_of_birth, on)


#: a lot state that ends a bag's use, in capitals on the prescription page and the dose sheet (custody ENDED_LOTS)
LOT_ENDED_WORDS = {"recalled": "LOT RECALLED", "rejected": "LOT REJECTED", "expired": "LOT EXPIRED"}
#: the lot's current state while it is conditionally released (a test pending), on the page and the sheet
CONDITIONAL_WORDS = "conditionally released"


def lot_recall_numbers(session: Session, lot: Any) -> list[str]:
    """"R-2", ... : the recalls in force (active or completed) that cover the lot (recall.queries.recalls_of_lot);
    the others that did (ended as invalid) when none is in force."""
    # recall reads patients: imported when called
    from mscbatch.recall.queries import IN_FORCE, recalls_of_lot

    recalls = recalls_of_lot(session, lot)
    in_force = [r for r in recalls if r.status in IN_FORCE]
    return [f"R-{r.id}" for r in (in_force or recalls)]


def lot_state_words(session: Session, lot: Any) -> str:
    """The lot's CURRENT state as the prescription page and the dose sheet say it beside a bag: "LOT RECALLED
    (R-2)", "LOT REJECTED", "LOT EXPIRED", "conditionally released" only while the lot still is, else nothing. The
    allocation's conditional_release flag is the state when the bag was allocated, never shown as the state now."""
    if lot is None:
        return ""
    if lot.status in LOT_ENDED_WORDS:
        numbers = lot_recall_numbers(session, lot) if lot.status == "recalled" else []
        return LOT_ENDED_WORDS[lot.status] + (f" ({', '.join(numbers)})" if numbers else "")
    return CONDITIONAL_WORDS if lot.status == "conditional_release" else ""


@dataclass(frozen=True)
class RecallReachingPatient:
    """A recall in force (active or completed) whose lot reached a bag given or sent to the patient."""

    recall_id: int
    recall_status: str
    recall_ended_at: datetime | None
    din: str  # as the label prints it, with K
    lot_number: str
    infused_at: datetime | None  # when its infusion started (bag_status "infused"); else sent, not infused
    bag_status: str
    told: bool  # a notice to the patient's clinician is recorded for this recall

    @property
    def words(self) -> str:
        from mscbatch.site import local_and_utc, site_day

        head = f"RECALL R-{self.recall_id}"
        if self.recall_status == "completed" and self.recall_ended_at is not None:
            head += f" (completed {site_day(self.recall_ended_at):%Y-%m-%d})"
        if self.bag_status == "infused":
            what = f"infused {local_and_utc(self.infused_at)}: follow the patient up"
        else:
            what = (f"sent to the ward for this patient, not infused ({self.bag_status.replace('_', ' ')}): never "
                    "give it; the ward returns it to the unit (a thawed bag is discarded)")
        told = ("the clinician is recorded as told" if self.told
                else "the clinician is NOT yet recorded as told")
        return f"{head}: bag {self.din} of lot {self.lot_number}, {what} ({told})."


def recalls_reaching(session: Session, patient_id: int) -> list[RecallReachingPatient]:
    """Every recall in force (active, or completed) that reached a bag given or sent to the patient (infused, or
    left the unit for them: recall.traceability's received), one line per recall and bag, newest recall first."""
    # recall reads patients: imported when called
    from mscbatch.core.identifiers import din_shown
    from mscbatch.recall.queries import IN_FORCE, recalls_of_lot
    from mscbatch.recall.report import notices_of
    from mscbatch.recall.traceability import backward_from_patient

    out: list[RecallReachingPatient] = []
    told: dict[int, bool] = {}
    for entry in backward_from_patient(session, patient_id).entries:
        if not entry.recipient.received:
            continue
        for recall in recalls_of_lot(session, entry.lot):
            if recall.status not in IN_FORCE:
                continue
            if recall.id not in told:
                told[recall.id] = patient_id in notices_of(session, recall.id)
            out.append(RecallReachingPatient(recall.id, recall.status, recall.ended_at, din_shown(entry.bag),
                                             entry.lot.lot_number, entry.recipient.infused_at, entry.bag.status,
                                             told[recall.id]))
    return sorted(out, key=lambda r: (-r.recall_id, r.din))
