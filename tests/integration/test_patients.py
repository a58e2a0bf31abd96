"""Patients and enrolment through the pages (issue 6, both databases)."""
from __future__ import annotations

from sqlalchemy import select

from mscbatch.patients.models import Patient
from tests.conftest import PASSWORD
from tests.integration.patient_factories import SLE_OK, SSC, SSC_OK, patient, user


def _register(client, protocol: str = "protocol-sle-uc", code: str = ""):  # type: ignore[no-untyped-def]
    return client.post("/patients/new", data={"protocol_id": protocol, "code": code, "initials": "jd",
                                              "date_of_birth": "1980-05-01", "sex": "male", "ward": "Ward 7"})


def test_a_clinician_registers_a_patient_with_a_generated_pseudonymised_code(app, users, client_as):
    response = _register(client_as("clinician"))
    assert response.status_code == 302
    session = app.extensions["mscbatch.db"].new_session()
    row = session.scalar(select(Patient))
    assert row.code == "SLE-UC-001" and row.initials == "JD" and row.wristband_id == "WB-SLE-UC-001"
    session.close()
    assert _register(client_as("nurse")).status_code == 403


def test_sle_patient_with_selena_sledai_5_is_not_eligible(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    pid = patient(session, user(session, "clinician"), enrol=False).id
    session.close()
    client = client_as("clinician")
    response = client.post(f"/patients/{pid}/enrolment", data=dict(SLE_OK, selena_sledai_points="5"),
                           follow_redirects=True)
    html = response.get_data(as_text=True)
    assert 'id="check-status">not eligible' in html and "Sign the enrolment" not in html


def test_platelets_40_are_fine_for_sle_but_exclude_from_ssc(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    clin = user(session, "clinician")
    sle, ssc = patient(session, clin, enrol=False).id, patient(session, clin, protocol_id=SSC, enrol=False).id
    session.close()
    client = client_as("clinician")
    sle_html = client.post(f"/patients/{sle}/enrolment", data=SLE_OK, follow_redirects=True).get_data(as_text=True)
    assert 'id="check-status">eligible' in sle_html
    ssc_html = client.post(f"/patients/{ssc}/enrolment", data=dict(SSC_OK, platelets_g_per_l="40"),
                           follow_redirects=True).get_data(as_text=True)
    assert 'id="check-status">not eligible' in ssc_html and "platelets &lt; 50 G/L" in ssc_html


def test_enrolment_is_a_clinician_signature_that_locks_the_check(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    pid = patient(session, user(session, "clinician"), enrol=False).id
    session.close()
    client = client_as("clinician")
    client.post(f"/patients/{pid}/enrolment", data=SLE_OK)
    page = client.get(f"/patients/{pid}/enrolment").get_data(as_text=True)
    check_id = page.split('name="check_id" type="hidden" value="')[1].split('"')[0]
    wrong = client.post(f"/patients/{pid}/enrol", data={"check_id": check_id, "password": "nope"})
    assert wrong.status_code == 401
    ok = client.post(f"/patients/{pid}/enrol", data={"check_id": check_id, "password": PASSWORD})
    assert ok.status_code == 302
    session = app.extensions["mscbatch.db"].new_session()
    row = session.get(Patient, pid)
    assert row.status == "enrolled"
    session.close()
    assert "Patient enrolled in the trial" in client.get(f"/patients/{pid}").get_data(as_text=True)


def test_the_patient_api_registers_and_records_weights(app, users):
    from tests.conftest import api_token_for

    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    client = app.test_client()
    created = client.post("/api/v1/patients", headers=headers, json={
        "protocol_id": "protocol-ssc-bm", "initials": "RT", "date_of_birth": "1972-03-02", "sex": "male",
        "ward": "W4", "code": "SSC-BM-007"})
    assert created.status_code == 201, created.get_json()
    pid = created.get_json()["id"]
    weight = client.post(f"/api/v1/patients/{pid}/weights", headers=headers,
                         json={"weight_kg": "81", "measured_on": "2020-01-01"})
    assert weight.status_code == 201
    assert client.get(f"/api/v1/patients/{pid}/weights", headers=headers).get_json()[0]["weight_kg"] == "81.00"
