"""Enrolment is signed only on the patient's latest check, dated today, with values possible in their units
(review findings: an old eligible check could be signed after a newer one found an exclusion; a back-dated
check let a 76-year-old pass the age limit; platelets typed per uL read as a normal count)."""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select

from mscbatch.patients import services
from mscbatch.patients.models import EnrolmentCheck, Patient
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.patient_factories import SLE, SLE_OK, patient, user


def _check_id(client, pid: int) -> str:  # type: ignore[no-untyped-def]
    page = client.get(f"/patients/{pid}/enrolment").get_data(as_text=True)
    return page.split('name="check_id" type="hidden" value="')[1].split('"')[0]


def _latest_check(app, pid: int) -> int:  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    try:
        return session.scalar(select(func.max(EnrolmentCheck.id)).where(EnrolmentCheck.patient_id == pid))
    finally:
        session.close()


def _status(app, pid: int) -> str:  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    try:
        return session.get(Patient, pid).status
    finally:
        session.close()


def _checks(app, pid: int) -> int:  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    try:
        return session.scalar(select(func.count()).select_from(EnrolmentCheck).where(EnrolmentCheck.patient_id == pid))
    finally:
        session.close()


def test_an_eligible_check_cannot_be_signed_after_a_newer_check_found_an_exclusion(app, users, client_as):  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    pid = patient(session, user(session, "clinician"), enrol=False).id
    session.close()
    client = client_as("clinician")
    client.post(f"/patients/{pid}/enrolment", data=SLE_OK)
    eligible = _check_id(client, pid)
    later = client.post(f"/patients/{pid}/enrolment", data=dict(SLE_OK, platelets_g_per_l="20"), follow_redirects=True)
    assert 'id="check-status">not eligible' in later.get_data(as_text=True)
    answer = client.post(f"/patients/{pid}/enrol", data={"check_id": eligible, "password": PASSWORD})
    assert answer.status_code == 409
    assert "A newer check of this patient was recorded after this one (it says not eligible)" in answer.get_data(as_text=True)
    assert _status(app, pid) == "registered"


def test_a_back_dated_check_cannot_enrol_and_a_future_one_is_refused(app, users, client_as):  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    clinician = user(session, "clinician")
    pid = services.register_patient(session, clinician, services.PatientDetails(
        protocol_id=SLE, code="", initials="OP", date_of_birth=date(1950, 1, 1), sex="male", ward="Ward 3")).id
    session.close()
    client = client_as("clinician")
    today_check = client.post(f"/patients/{pid}/enrolment", data=SLE_OK, follow_redirects=True).get_data(as_text=True)
    assert 'id="check-status">not eligible' in today_check  # 76 years old: not < 70
    back_dated = client.post(f"/patients/{pid}/enrolment", data=dict(SLE_OK, on_date="2010-01-01"), follow_redirects=True)
    page = back_dated.get_data(as_text=True)
    assert 'id="check-status">eligible' in page  # 60 years old in 2010
    assert "This check is dated 2010-01-01: enrolment is signed on a check of the same day" in page
    assert "Sign the enrolment" not in page
    answer = client.post(f"/patients/{pid}/enrol", data={"check_id": _latest_check(app, pid), "password": PASSWORD})
    assert answer.status_code == 409
    assert "This check is dated 2010-01-01" in answer.get_data(as_text=True)
    assert _status(app, pid) == "registered"
    before = _checks(app, pid)
    future = client.post(f"/patients/{pid}/enrolment",
                         data=dict(SLE_OK, on_date=(site_today() + timedelta(days=1)).isoformat()))
    assert future.status_code == 422
    assert "The check date cannot be in the future." in future.get_data(as_text=True)
    assert _checks(app, pid) == before


def test_a_count_in_the_wrong_unit_is_refused_naming_the_criterion_and_nothing_is_written(app, users, client_as):  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    pid = patient(session, user(session, "clinician"), enrol=False).id
    session.close()
    client = client_as("clinician")
    for field, value, words in (("platelets_g_per_l", "25000", "25000 G/L is not a possible value in G/L (expected 0 to 2000)"),
                                ("haemoglobin_g_per_dl", "75", "75 g/dL is not a possible value in g/dL (expected 1 to 25)"),
                                ("neutrophils_g_per_l", "400", "400 G/L is not a possible value in G/L (expected 0 to 100)")):
        answer = client.post(f"/patients/{pid}/enrolment", data=dict(SLE_OK, **{field: value}))
        assert answer.status_code == 422, field
        assert words in answer.get_data(as_text=True), field
    assert _checks(app, pid) == 0
    valid = client.post(f"/patients/{pid}/enrolment", data=SLE_OK, follow_redirects=True)
    assert 'id="check-status">eligible' in valid.get_data(as_text=True)
    assert client.post(f"/patients/{pid}/enrol", data={"check_id": _check_id(client, pid),
                                                      "password": PASSWORD}).status_code == 302
    assert _status(app, pid) == "enrolled"


def test_a_check_of_another_patient_is_not_signed_on_this_patient_s_page(app, users, client_as):  # type: ignore[no-untyped-def]
    """The form posts the check's id: one of another patient, sent from this patient's page (a tampered or mixed-up
    form), signed that other patient's enrolment while the clinician believed they signed this one's."""
    session = app.extensions["mscbatch.db"].new_session()
    clinician = user(session, "clinician")
    here, other = patient(session, clinician, enrol=False).id, patient(session, clinician, enrol=False).id
    session.close()
    client = client_as("clinician")
    client.post(f"/patients/{other}/enrolment", data=SLE_OK)
    answer = client.post(f"/patients/{here}/enrol", data={"check_id": _check_id(client, other), "password": PASSWORD})
    assert answer.status_code == 404
    assert _status(app, other) == "registered" and _status(app, here) == "registered"
