"""Withdrawal of a patient from the trial: a clinician's e-signature with the reason (21 CFR 11.50), as enrolment.

The withdrawal is recorded and signed whatever the state of the patient's bags, because what protects the patient
from then on is the bedside check, which answers STOP for any patient who is not enrolled: it must never wait for a
bag to come back. It stops the patient's active prescription as a clinician's stop does
(mscbatch.patients.prescriptions.let_go): the bags given keep their record, the bags still in the unit go back into
stock, and a bag already on its way or on the ward is released from the patient where it is; the answer names
those bags so that the ward returns (or, thawed, discards) them. No prescription and no new enrolment can follow.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.errors import Conflict, ValidationFailed
from mscbatch.patients.models import WITHDRAWN, PatientWithdrawal, Prescription
from mscbatch.patients.prescriptions import let_go, serialise_prescriptions
from mscbatch.patients.queries import get_patient, lock_patient, prescriptions_of
from mscbatch.patients.services import require_clinician
from mscbatch.signatures.services import sign
from mscbatch.site import site_day, site_today

REASON_MAX = 2000


@dataclass
class Withdrawal:
    record: PatientWithdrawal
    stopped: list[int] = field(default_factory=list)  # the prescriptions stopped or cancelled
    on_the_ward: list[str] = field(default_factory=list)  # DINs released while out of the unit: to return/discard


def withdrawal_of(session: Session, patient_id: int) -> PatientWithdrawal | None:
    return session.scalar(select(PatientWithdrawal).where(PatientWithdrawal.patient_id == patient_id))


def withdraw(session: Session, signer: Any, password: str, patient_id: int, *, reason: str,
             withdrawn_on: date | None = None) -> Withdrawal:
    """Sign the withdrawal: the patient becomes "withdrawn" and every active prescription is stopped."""
    require_clinician(signer, "withdraws patients from the trial")
    reason = (reason or "").strip()
    if len(reason) < 5:
        raise ValidationFailed("Give the reason for the withdrawal (e.g. consent withdrawn by the patient).",
                               field="reason")
    if len(reason) > REASON_MAX:
        raise ValidationFailed(f"The reason has at most {REASON_MAX} characters.", field="reason")
    withdrawn_on = withdrawn_on or site_today()
    if withdrawn_on > site_today():
        raise ValidationFailed("The withdrawal date cannot be in the future.", field="withdrawn_on")
    with use_case(session, signer, f"{WITHDRAWN}: {reason}"):
        patient = get_patient(session, patient_id)
        # Locks in the order the other use cases take them, so that none waits on another in a circle (PostgreSQL):
        # the protocol's prescription lock (no prescription of this patient is being signed meanwhile), then the
        # prescriptions and their bags (as a cancel), then the patient's row (as an infusion start: bag, then patient)
        serialise_prescriptions(session, patient.protocol_id)
        if patient.status == "withdrawn":
            raise Conflict(f"Patient {patient.code} has already been withdrawn from the trial.")
        if withdrawn_on < site_day(patient.registered_at):
            raise ValidationFailed(f"The withdrawal date cannot be before the patient's registration "
                                   f"({site_day(patient.registered_at)}).", field="withdrawn_on")
        stopped, on_the_ward = [], []
        for prescription in prescriptions_of(session, patient.id):
            if prescription.status != "active":
                continue
            locked = session.get(Prescription, prescription.id, with_for_update=True, populate_existing=True)
            assert locked is not None
            if locked.status != "active":
                continue
            on_the_ward += let_go(session, signer, locked, f"{WITHDRAWN}: {reason}", withdrawal=True)
            stopped.append(locked.id)
        patient = lock_patient(session, patient_id)  # read afresh: withdrawn by someone else meanwhile?
        if patient.status == "withdrawn":
            raise Conflict(f"Patient {patient.code} has already been withdrawn from the trial.")
        result = Withdrawal(PatientWithdrawal(patient_id=patient.id, withdrawn_on=withdrawn_on, reason=reason,
                                              status_before=patient.status, withdrawn_by_id=signer.id),
                            stopped, on_the_ward)
        patient.status = "withdrawn"
        session.add(result.record)
        sign(session, signer, password, result.record, WITHDRAWN, required_role="clinician")
    return result
