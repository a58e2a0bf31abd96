"""A weight marked entered in error (HL7 FHIR's "entered-in-error": the record was never true of the patient).

A weight typed wrong, 85 for 58 kg or another patient's, could only be outweighed by a right one typed after it:
it stayed among the weights a new one is checked against, and one recorded after a prescription kept the bedside's
WEIGHT CHANGED stop until then. Marked, the weight stays on the patient's page, struck through with who marked it,
when and why, and nothing reads it again (queries.weights_of, has_newer_weight). A weight an active prescription
was calculated with is not marked: the dose of its bags stands on it, so the prescriber cancels or stops the
prescription first, and prescribes again on a right weight."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.core.numbers import plain
from mscbatch.errors import Conflict, NotFound, ValidationFailed
from mscbatch.patients.models import Prescription, WeightError, WeightMeasurement
from mscbatch.patients.prescriptions import serialise_prescriptions
from mscbatch.patients.queries import get_patient, lock_patient
from mscbatch.patients.services import require_clinician
from mscbatch.site import local_and_utc

REASON_MAX = 500
#: the audit reason's first words (the reason typed follows)
ENTERED_IN_ERROR = "Weight marked entered in error"


def weight_words(weight: WeightMeasurement) -> str:
    """"The weight of 85 kg measured on 2026-12-06": a weight as the page, the refusals and the API name it."""
    return f"The weight of {plain(weight.weight_kg)} kg measured on {weight.measured_on}"


def mark_entered_in_error(session: Session, actor: Any, patient_id: int, weight_id: int, *,
                          reason: str) -> WeightError:
    """Mark one of the patient's weights entered in error, with why; one use case, nothing written when refused."""
    require_clinician(actor, "marks a weight entered in error")
    reason = " ".join((reason or "").split())
    if len(reason) < 5:
        raise ValidationFailed("Reason: say why this weight is wrong (at least 5 characters), e.g. \"typed 85 for "
                               "58 kg\" or \"another patient's weight\".", field="reason")
    if len(reason) > REASON_MAX:
        raise ValidationFailed(f"Reason: at most {REASON_MAX} characters ({len(reason)} given).", field="reason")
    with use_case(session, actor, f"{ENTERED_IN_ERROR}: {reason}"):
        patient = get_patient(session, patient_id)
        # the locks a prescription's signature takes, in its order: no prescription is signed on this weight meanwhile
        serialise_prescriptions(session, patient.protocol_id)
        patient = lock_patient(session, patient.id)
        weight = session.get(WeightMeasurement, weight_id)
        if weight is None or weight.patient_id != patient.id:
            raise NotFound(f"Patient {patient.code} has no weight with id {weight_id}.")
        what = weight_words(weight)
        marked = session.scalar(select(WeightError).where(WeightError.weight_id == weight.id))
        if marked is not None:
            raise Conflict(f"{what} is already marked entered in error ({local_and_utc(marked.marked_at)}: "
                           f"{marked.reason}). Nothing was changed.")
        standing = session.scalar(select(Prescription).where(
            Prescription.weight_id == weight.id, Prescription.status == "active").limit(1))
        if standing is not None:
            raise Conflict(f"{what} is the weight active prescription {standing.id} was calculated with: its bags' "
                           "dose stands on it. Cancel or stop that prescription first (or close its completed "
                           "course), then mark the weight and prescribe again on a right weight. Nothing was changed.",
                           field="reason")
        error = WeightError(weight_id=weight.id, reason=reason, marked_by_id=actor.id)
        session.add(error)
    return error
