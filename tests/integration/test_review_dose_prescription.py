"""Safety review of the prescription (dose, prescription, recall and custody review): what the clinician signs
must be what the clinician saw."""
from __future__ import annotations

import re

from sqlalchemy import select

from mscbatch.patients import services
from mscbatch.patients.models import Prescription
from mscbatch.site import site_today
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import donor, lot_with_bags, patient, user


def hidden_fields(page: str) -> dict[str, str]:
    return dict(re.findall(r'<input[^>]*?name="([^"]+)"[^>]*?type="hidden"[^>]*?value="([^"]*)"', page))


def _patient_and_bags(app):  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    tech, clin = user(session, "technician"), user(session, "clinician")
    lot_with_bags(session, tech, donor(session, tech))
    pid = patient(session, clin).id  # 62.5 kg: three 50 x10^6 bags, 12.5 mL drawn from the last one
    session.close()
    return pid


def _new_weight(app, pid: int, kg: str) -> None:  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    services.record_weight(session, user(session, "clinician"), pid, weight_kg=kg, measured_on=site_today(),
                           weight_confirmed=True)  # 70 kg after 62.5 kg: 12 % more, checked by the colleague
    session.close()


def test_a_weight_recorded_between_the_calculation_and_the_signature_refuses_the_prescription(app, users, client_as):
    """The dose page showed 62.5 kg and 12.5 mL from the last bag; a colleague then records 70 kg. The same three
    bags still fit, so signing used to prescribe 70 kg and 15 mL that the signer never saw."""
    pid = _patient_and_bags(app)
    client = client_as("clinician")
    page = client.get(f"/patients/{pid}/dose").get_data(as_text=True)
    assert "62.5 kg" in page
    _new_weight(app, pid, "70")
    response = client.post(f"/patients/{pid}/prescriptions", data={**hidden_fields(page), "password": PASSWORD})
    body = response.get_data(as_text=True)
    assert response.status_code == 409, body
    assert "weight changed since the calculation" in body and "62.5 kg" in body and "70 kg" in body
    session = app.extensions["mscbatch.db"].new_session()
    assert session.scalar(select(Prescription)) is None
    session.close()
    again = client.get(f"/patients/{pid}/dose").get_data(as_text=True)  # recalculated: signed at the weight shown
    ok = client.post(f"/patients/{pid}/prescriptions", data={**hidden_fields(again), "password": PASSWORD})
    assert ok.status_code == 302, ok.get_data(as_text=True)


def test_the_api_refuses_a_prescription_whose_dry_run_weight_is_no_longer_the_latest(app, users):
    pid = _patient_and_bags(app)
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    dry = app.test_client().post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers, json={}).get_json()
    seen = {"weight_id": dry["weight_id"], "bag_ids": [int(d["bag_id"]) for d in dry["calculation"]["draws"]],
            "dose_level_cells_per_kg": dry["calculation"]["dose_level_cells_per_kg"]}
    _new_weight(app, pid, "70")
    response = app.test_client().post(f"/api/v1/patients/{pid}/prescriptions", headers=headers,
                                      json={**seen, "password": PASSWORD})
    assert response.status_code == 409, response.get_json()
    assert "weight changed since the calculation" in response.get_json()["detail"]


def test_a_damaged_bag_list_beyond_the_database_integers_is_refused_in_words(app, users, client_as):
    pid = _patient_and_bags(app)
    response = client_as("clinician").post(f"/patients/{pid}/prescriptions", data={
        "level": "2000000", "bag_ids": "99999999999999999999", "weight_id": "1", "planned_on": "",
        "password": PASSWORD})
    assert response.status_code == 422
    assert "The bag list is damaged: calculate again." in response.get_data(as_text=True)
