"""Review 15 of trial patients: a wristband pasted with an invisible character (a zero-width space, a byte-order
mark) was registered as a second identity for a band that reads, prints and is typed at the bed exactly as another
patient's "WB-1234": two patients then shared one wristband as far as anyone could see."""
from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import func, select

from mscbatch.patients import services
from mscbatch.patients.models import Patient
from tests.conftest import api_token_for
from tests.integration.patient_factories import user

SLE = "protocol-sle-uc"


def _first(db_session) -> None:  # type: ignore[no-untyped-def]
    services.register_patient(db_session, user(db_session, "clinician"), services.PatientDetails(
        protocol_id=SLE, initials="AB", date_of_birth=date(1980, 1, 1), sex="female", ward="Ward 3",
        wristband_id="WB-1234"))
    db_session.commit()


@pytest.mark.parametrize("band", ["WB-1234\u200b", "\ufeffWB-1234", "WB-\u20601234", "WB-12\u00ad34"])
def test_a_band_with_an_invisible_character_is_refused_on_the_page(app, users, db_session, client_as, band):
    _first(db_session)
    posted = client_as("clinician").post("/patients/new", data={
        "protocol_id": SLE, "initials": "CD", "date_of_birth": "1981-01-01", "sex": "female", "ward": "Ward 3",
        "wristband_id": band})
    body = posted.get_data(as_text=True)
    assert posted.status_code == 422, body[:500]
    assert "The wristband identifier holds an invisible character" in body
    assert db_session.scalar(select(func.count(Patient.id))) == 1
    db_session.rollback()


def test_a_band_with_an_invisible_character_is_refused_by_the_api_naming_the_field(app, users, db_session):
    _first(db_session)
    api = app.test_client()
    answer = api.post("/api/v1/patients", headers={"Authorization": f"Bearer {api_token_for(app, 'clinician')}"},
                      json={"protocol_id": SLE, "initials": "CD", "date_of_birth": "1981-01-01", "sex": "female",
                            "ward": "Ward 3", "wristband_id": "WB-1234\u200b"})
    assert answer.status_code == 422, answer.get_json()
    assert "wristband_id" in json.dumps(answer.get_json())
    assert db_session.scalar(select(func.count(Patient.id))) == 1
    db_session.rollback()
    # a band that differs only in spacing and capitals is still the same band, refused naming who wears it
    again = api.post("/api/v1/patients", headers={"Authorization": f"Bearer {api_token_for(app, 'clinician')}"},
                     json={"protocol_id": SLE, "initials": "CD", "date_of_birth": "1981-01-01", "sex": "female",
                           "ward": "Ward 3", "wristband_id": "wb - 1234"})
    assert again.status_code == 409 and "already worn by patient" in json.dumps(again.get_json())
