"""Review 4 (PostgreSQL, READ COMMITTED): a use case that read a row before taking its lock wrote over a change
committed meanwhile, and its audit event named the stale old value (the trail then said A->B and A->C for one
field). Each reads the row again under the lock."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from mscbatch.audit.models import AuditEvent
from mscbatch.donors import services as donor_services
from mscbatch.donors.models import ScreeningResult
from tests.integration.patient_factories import user
from tests.integration.test_donors import screened_donor


def _db(app: Any) -> Any:
    return app.extensions["mscbatch.db"]


def test_two_corrections_of_one_screening_result_chain_their_old_values(app, users, monkeypatch):
    if _db(app).engine.dialect.name != "postgresql":
        pytest.skip("SQLite: BEGIN IMMEDIATE serialises writers from their first statement")
    with app.app_context(), _db(app).new_session() as s:
        donor_id = screened_donor(s, "adipose_at_don")
        row = s.scalar(select(ScreeningResult).where(ScreeningResult.donor_id == donor_id,
                                                     ScreeningResult.marker == "hbsag"))
        row_id, result, sample_date, first_ref = row.id, row.result, row.sample_date, row.lab_reference
    real_lock = donor_services.lock_donor
    calls: list[int] = []

    def lock_after_a_colleague(session: Any, wanted: int) -> Any:
        if not calls:
            calls.append(1)
            with _db(app).new_session() as other:
                donor_services.correct_result(other, user(other, "technician"), row_id, reason="re-read (1)",
                                              marker="hbsag", result=result, sample_date=sample_date,
                                              lab_reference="LAB-FIRST")
        return real_lock(session, wanted)

    monkeypatch.setattr(donor_services, "lock_donor", lock_after_a_colleague)
    with app.app_context(), _db(app).new_session() as s:
        donor_services.correct_result(s, user(s, "technician"), row_id, reason="re-read (2)", marker="hbsag",
                                      result=result, sample_date=sample_date, lab_reference="LAB-SECOND")
    with app.app_context(), _db(app).new_session() as s:
        events = s.execute(select(AuditEvent.old_value, AuditEvent.new_value).where(
            AuditEvent.entity_type == "donor_screening_result", AuditEvent.entity_id == str(row_id),
            AuditEvent.field == "lab_reference").order_by(AuditEvent.seq)).all()
    assert [tuple(e) for e in events] == [(first_ref, "LAB-FIRST"), ("LAB-FIRST", "LAB-SECOND")], events


def test_an_enrolment_signed_while_the_patient_is_withdrawn_does_not_undo_the_withdrawal(app, users, monkeypatch):
    """enrol() read the patient without its lock: a withdrawal committed meanwhile was overwritten by "enrolled"
    (a withdrawn patient could be prescribed again) and the trail's old value was "registered"."""
    from mscbatch.errors import Conflict
    from mscbatch.patients import enrolment, withdrawal
    from mscbatch.patients.models import Patient
    from tests.conftest import PASSWORD
    from tests.integration.patient_factories import SLE_OK, patient

    if _db(app).engine.dialect.name != "postgresql":
        pytest.skip("SQLite: BEGIN IMMEDIATE serialises writers from their first statement")
    with app.app_context(), _db(app).new_session() as s:
        row = patient(s, user(s, "clinician"), enrol=False)
        patient_id = row.id
        check_id = enrolment.check_enrolment(s, user(s, "clinician"), row.id, SLE_OK).id
    real_lock = enrolment.lock_patient

    def lock_after_a_withdrawal(session: Any, wanted: int) -> Any:
        with _db(app).new_session() as other:
            withdrawal.withdraw(other, user(other, "clinician"), PASSWORD, patient_id, reason="consent withdrawn")
        return real_lock(session, wanted)

    monkeypatch.setattr(enrolment, "lock_patient", lock_after_a_withdrawal)
    with app.app_context(), _db(app).new_session() as s, pytest.raises(Conflict, match="withdrawn"):
        enrolment.enrol(s, user(s, "clinician"), check_id, PASSWORD)
    with app.app_context(), _db(app).new_session() as s:
        assert s.scalar(select(Patient.status).where(Patient.id == patient_id)) == "withdrawn"


def test_a_double_submit_of_an_enrolment_signs_its_check_once(app, users, monkeypatch):
    from mscbatch.errors import Conflict
    from mscbatch.patients import enrolment
    from mscbatch.patients.models import EnrolmentCheck
    from mscbatch.signatures.models import Signature
    from tests.conftest import PASSWORD
    from tests.integration.patient_factories import SLE_OK, patient

    if _db(app).engine.dialect.name != "postgresql":
        pytest.skip("SQLite: BEGIN IMMEDIATE serialises writers from their first statement")
    with app.app_context(), _db(app).new_session() as s:
        row = patient(s, user(s, "clinician"), enrol=False)
        check_id = enrolment.check_enrolment(s, user(s, "clinician"), row.id, SLE_OK).id
    real_lock = enrolment.lock_patient
    first: list[Any] = []

    def lock_after_the_other_click(session: Any, wanted: int) -> Any:
        if not first:
            first.append(1)
            with _db(app).new_session() as other:
                enrolment.enrol(other, user(other, "clinician"), check_id, PASSWORD)
                first.append(other.scalar(select(EnrolmentCheck.locked_at).where(EnrolmentCheck.id == check_id)))
        return real_lock(session, wanted)

    monkeypatch.setattr(enrolment, "lock_patient", lock_after_the_other_click)
    with app.app_context(), _db(app).new_session() as s, pytest.raises(Conflict):
        enrolment.enrol(s, user(s, "clinician"), check_id, PASSWORD)
    with app.app_context(), _db(app).new_session() as s:
        signatures = s.scalars(select(Signature).where(Signature.entity_type == "patient_enrolment_check",
                                                       Signature.entity_id == str(check_id))).all()
        assert len(signatures) == 1
        assert s.scalar(select(EnrolmentCheck.locked_at).where(EnrolmentCheck.id == check_id)) == first[1]
