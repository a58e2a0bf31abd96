"""Dose cohorts: the investigators' escalation decision, recorded and signed (DOMAIN.md section 6).

SLE-UC: after the first 5 patients at 2 x10^6/kg the investigators choose 1 or 4 x10^6/kg for the next 5,
citing the toxicity (CTCAE) review. The core (mscbatch.core.cohorts) says whether a decision is due and which
levels it may choose; this service records it with the clinician's e-signature, which locks it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
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
from mscbatch.core.dosing import per_kg_words
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
    (inventory.already_infused: every bag infused under the protocol, at the volume recorded at its end)."""
    from mscbatch.custody.models import Infusion  # custody reads patients: imported when called
    from mscbatch.patients.inventory import already_infused

    rows = session.execute(
        select(Prescription.patient_id, Prescription.dose_level_cells_per_kg)
        .join(Allocation, Allocation.prescription_id == Prescription.id)
        .join(Infusion, (Infusion.bag_id == Allocation.bag_id) & (Infusion.patient_id == Allocation.patient_id))
        .where(Prescription.protocol_id == protocol.id, Prescription.locked_at.is_not(None))
        .order_by(Infusion.started_at, Infusion.id))
    first: dict[int, Decimal] = {}
    for patient_id, level in rows:
        first.setdefault(patient_id, Decimal(level))
    out = []
    for patient_id, level in first.items():
        patient = session.get(Patient, patient_id)
        assert patient is not None
        given = already_infused(session, patient, protocol)
        out.append(ReceivedDose(patient.id, patient.code, level, given.cells_per_kg,
                                protocol.dosing.tolerance_percent))
    return out
