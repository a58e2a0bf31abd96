"""A weight marked entered in error (HL7 FHIR's "entered-in-error": the record was never true of the patient).

A weight typed wrong, 85 for 58 kg or another patient's, could only be outweighed by a right one typed after it:
it stayed among the weights a new one is checked against, and one recorded after a prescription kept the bedside's
WEIGHT CHANGED stop until then. Marked (signed by a clinician, with why: the mark can lift that stop), the weight
stays on the patient's page, struck through with who marked it, when and why, and nothing reads it again
(queries.weights_of). A weight a prescription stands on is not marked: an active one's bags are dosed on it (the
prescriber cancels it first, and prescribes again on a right weight), and a stopped one's bags were given on it,
their dose per kg recorded on that weight: the error is then reported as the protocol asks, never hidden here."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.core.numbers import plain
from mscbatch.errors import Conflict, NotFound, ValidationFailed
from mscbatch.patients.models import Allocation, Prescription, WeightError, WeightMeasurement
from mscbatch.patients.prescriptions import serialise_prescriptions
from mscbatch.patients.queries import get_patient, lock_patient
from mscbatch.patients.services import require_clinician
from mscbatch.signatures.services import sign
from mscbatch.site import local_and_utc

REASON_MAX = 500
#: the signature's meaning, and the audit reason's first words (the reason typed follows)
ENTERED_IN_ERROR = "Weight marked entered in error"


def _given(session: Session, prescription: Prescription) -> bool:
    """A bag of the prescription was infused (started): its dose per kg is recorded on the prescription's weight."""
    from mscbatch.custody.models import Infusion  # custody reads patients: imported when called

    return session.scalar(select(Infusion.id).join(Allocation, Allocation.bag_id == Infusion.bag_id).where(
        Allocation.prescription_id == prescription.id, Infusion.patient_id == prescription.patient_id).limit(1)
    ) is not None


def weight_words(weight: WeightMeasurement) -> str:
    """"The weight of 85 kg measured on 2026-12-06": a weight as the page, the refusals and the API name it."""
    return f"The weight of {plain(weight.weight_kg)} kg measured on {weight.measured_on}"


def mark_entered_in_error(session: Session, actor: Any, patient_id: int, weight_id: int, *,
                          reason: str, password: str) -> WeightError:
    """Mark one of the patient's weights entered in error, with why, signed with the clinician's password; one use
    case, nothing written when refused (a wrong password is counted and audited by the signature, as anywhere)."""
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
            Prescription.weight_id == weight.id, Prescription.status.in_(("active", "stopped")))
            .order_by(Prescription.id).limit(1))
        if standing is not None and standing.status == "active" and not _given(session, standing):
            raise Conflict(f"{what} is the weight active prescription {standing.id} was calculated with: its bags' "
                           "dose stands on it. Cancel that prescription first (bags already on the ward are "
                           "returned), then mark the weight and prescribe again on a right weight. Nothing was "
                           "changed.", field="weight_id")
        if standing is not None:
            raise Conflict(f"{what} is the weight prescription {standing.id} was calculated with, and bags of it were "
                           "given: their dose per kg is recorded on this weight. It cannot be marked: record the right "
                           "weight, and report the error as the protocol asks (the dose given per kg differs). "
                           "Nothing was changed.", field="weight_id")
        error = WeightError(patient_id=patient.id, weight_id=weight.id, reason=reason, marked_by_id=actor.id)
        session.add(error)
        sign(session, actor, password, error, ENTERED_IN_ERROR, required_role="clinician")
    return error
