"""Dose cohorts: the investigators' escalation decision, recorded and signed (DOMAIN.md section 6).

SLE-UC: after the first 5 patients at 2 x10^6/kg the investigators choose 1 or 4 x10^6/kg for the next 5,
citing the toxicity (CTCAE) review. The core (mscbatch.core.cohorts) says whether a decision is due and which
levels it may choose; this service records it with the clinician's e-signature, which locks it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.core.cohorts import (
    EscalationDecision,
    EscalationError,
    check_cohort_infused,
    check_decision_due,
    validate_decision,
)
from mscbatch.core.dosing import cells_given, per_kg_words
from mscbatch.core.protocols import format_cells_per_kg
from mscbatch.errors import Conflict, NotFound, ValidationFailed
from mscbatch.patients.models import (
    ESCALATION_DECIDED,
    Allocation,
    EscalationDecisionRecord,
    Patient,
    Prescription,
)
from mscbatch.patients.prescriptions import serialise_prescriptions
from mscbatch.patients.queries import cohort_state, infused_state, protocols
from mscbatch.patients.services import require_clinician
from mscbatch.signatures.services import sign
from mscbatch.site import site_config, site_today


def _end_of_day(day: date) -> datetime:
    """The first instant after the site's calendar day `day` (UTC)."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=site_config().tz).astimezone(UTC)


def record_decision(session: Session, signer: Any, password: str, *, protocol_id: str, stage_id: str,
                    chosen_cells_per_kg: Any, toxicity_review: str,
                    decided_on: date | None = None) -> EscalationDecisionRecord:
    require_clinician(signer, "records escalation decisions")
    protocol = protocols().get(protocol_id)
    if protocol is None:
        raise NotFound(f"No protocol {protocol_id!r}.")
    try:
        level = Decimal(str(chosen_cells_per_kg))
    except InvalidOperation:
        raise ValidationFailed("Choose the dose level.", field="chosen_cells_per_kg") from None
    decided_on = decided_on or site_today()
    if decided_on > site_today():
        raise ValidationFailed("The decision date cannot be in the future.", field="decided_on")
    decision = EscalationDecision(stage_id, level, (toxicity_review or "").strip(), signer.username, decided_on)
    with use_case(session, signer, ESCALATION_DECIDED):
        # the protocol's prescription lock (PostgreSQL; SQLite serialises writers): two clinicians signing the decision
        # at once both found none recorded, and the second hit the unique index (a server error); the second now waits
        # and is told the decision is no longer due, as a prescription signed meanwhile is counted
        serialise_prescriptions(session, protocol.id)
        try:
            validate_decision(protocol, decision)
            check_decision_due(cohort_state(session, protocol), decision)
        except EscalationError as error:
            field = "toxicity_review" if "toxicity" in str(error) else "chosen_cells_per_kg"
            raise Conflict(str(error)[0].upper() + str(error)[1:] + ".", field=field) from None
        try:  # the previous cohort's toxicity is known only once its patients were infused and observed
            observed, period = infused_state(session, protocol)
            check_cohort_infused(observed, decision, period)
        except EscalationError as error:
            raise Conflict(str(error)[0].upper() + str(error)[1:] + ".") from None
        if decided_on < site_today():  # dated on an earlier day: the cohort must have been observed by that day's end
            try:
                then, period_then = infused_state(session, protocol, now=_end_of_day(decided_on))
                check_cohort_infused(then, decision, period_then)
            except EscalationError as error:
                raise Conflict(f"The decision cannot be dated {decided_on}: by the end of that day {error}. Date it "
                               "on the day it was taken, once the cohort had been observed.",
                               field="decided_on") from None
        row = EscalationDecisionRecord(
            protocol_id=protocol.id, protocol_version=protocol.version, stage_id=stage_id,
            chosen_cells_per_kg=int(level), toxicity_review=decision.toxicity_review, decided_on=decided_on,
            decided_by_id=signer.id)
        session.add(row)
        sign(session, signer, password, row, ESCALATION_DECIDED, required_role="clinician")
    return row


def decision_wait(session: Session, protocol: Any, state: Any) -> str | None:
    """Why the decision the plan waits for cannot be signed yet (the previous cohort not all infused and observed
    for the protocol's observation_days), with when it becomes possible; None when it can be signed now or none is
    due. The cohort page says it above the decision form."""
    if not state.decision_needed or state.current_stage_id is None:
        return None
    observed, period = infused_state(session, protocol)
    probe = EscalationDecision(state.current_stage_id, Decimal(0), "-", "-", site_today())
    try:
        check_cohort_infused(observed, probe, period)
    except EscalationError as error:
        return str(error)[0].upper() + str(error)[1:] + "."
    return None


@dataclass(frozen=True)
class ReceivedDose:
    """An infused patient of the cohort plan: the level they count at (their first infused prescription's) and
    what they actually received under the protocol, all courses together, per kg."""

    patient_id: int
    patient_code: str
    level_cells_per_kg: Decimal
    received_cells_per_kg: Decimal
    tolerance_percent: Decimal

    @property
    def differs(self) -> bool:
        """More than the protocol's tolerance away from the level counted."""
        band = self.level_cells_per_kg * self.tolerance_percent / 100
        return abs(self.received_cells_per_kg - self.level_cells_per_kg) > band

    @property
    def words(self) -> str:
        received = per_kg_words(self.received_cells_per_kg)
        if not self.differs:
            return f"received {received}"
        percent = ((self.received_cells_per_kg - self.level_cells_per_kg) * 100
                   / self.level_cells_per_kg).quantize(Decimal("1"))
        return (f"received {received}: {'ABOVE' if percent > 0 else 'BELOW'} its level "
                f"{format_cells_per_kg(self.level_cells_per_kg)} by {abs(percent)} % (tolerance "
                f"+/- {self.tolerance_percent.normalize():f} %)")


def received_doses(session: Session, protocol: Any) -> list[ReceivedDose]:
    """Each infused patient of the protocol, in the order of their first infusion, with the dose actually received
    (as inventory.already_infused counts it: every bag infused under the protocol's signed prescriptions, at the
    volume recorded at its end, under the allocation it was given under), read for every patient at once."""
    from mscbatch.custody.models import Infusion  # custody reads patients: imported when called
    from mscbatch.lots.models import Bag
    from mscbatch.patients.inventory import AlreadyInfused, InfusedBag

    rows = session.execute(
        select(Infusion, Allocation, Prescription, Bag.din, Bag.check_character, Patient.code)
        .join(Allocation, (Allocation.bag_id == Infusion.bag_id) & (Allocation.patient_id == Infusion.patient_id))
        .join(Prescription, Prescription.id == Allocation.prescription_id)
        .join(Bag, Bag.id == Infusion.bag_id)
        .join(Patient, Patient.id == Infusion.patient_id)
        .where(Prescription.protocol_id == protocol.id, Prescription.locked_at.is_not(None))
        .order_by(Infusion.started_at, Infusion.id, Allocation.id.desc()))
    chosen: dict[int, tuple[Any, Allocation, Prescription, str, str, str]] = {}
    for infusion, allocation, prescription, din, k, code in rows:
        held = chosen.get(infusion.id)
        # the allocation the bag was given under: the one still holding it (an infused bag keeps it), else the latest
        if held is None or (allocation.active and not held[1].active):
            chosen[infusion.id] = (infusion, allocation, prescription, din, k, code)
    bags: dict[int, list[InfusedBag]] = {}
    first: dict[int, tuple[str, Decimal]] = {}  # patient id -> code, the level of their first infused prescription
    for infusion, allocation, prescription, din, k, code in chosen.values():  # in order of start
        first.setdefault(infusion.patient_id, (code, Decimal(prescription.dose_level_cells_per_kg)))
        infused = None if infusion.volume_infused_ml is None else Decimal(infusion.volume_infused_ml)
        drawn = cells_given(Decimal(allocation.cells), Decimal(allocation.volume_ml), infused)
        bags.setdefault(infusion.patient_id, []).append(InfusedBag(
            bag_id=infusion.bag_id, din=din, check_character=k, prescription_id=prescription.id,
            started_at=infusion.started_at, cells=drawn.to_integral_value(ROUND_FLOOR), volume_infused_ml=infused,
            weight_kg=Decimal(prescription.weight_kg)))
    return [ReceivedDose(patient_id, code, level,
                         AlreadyInfused(protocol.short_name, tuple(bags[patient_id])).cells_per_kg,
                         protocol.dosing.tolerance_percent) for patient_id, (code, level) in first.items()]
