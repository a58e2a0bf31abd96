"""Dose cohorts: the investigators' escalation decision, recorded and signed (DOMAIN.md section 6).

SLE-UC: after the first 5 patients at 2 x10^6/kg the investigators choose 1 or 4 x10^6/kg for the next 5,
citing the toxicity (CTCAE) review. The core (mscbatch.core.cohorts) says whether a decision is due and which
levels it may choose; this service records it with the clinician's e-signature, which locks it.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.core.cohorts import (
    EscalationDecision,
    EscalationError,
    check_cohort_infused,
    check_decision_due,
    validate_decision,
)
from mscbatch.errors import Conflict, NotFound, ValidationFailed
from mscbatch.patients.models import ESCALATION_DECIDED, EscalationDecisionRecord
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
