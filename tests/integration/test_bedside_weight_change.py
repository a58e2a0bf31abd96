"""A weight recorded after the prescription (DOMAIN.md 6 and 8: the dose in cells/kg must stay inside the
prescription's band; "dose outside the prescription" is a hard stop at the bedside). The prescription of the
factory is 62.5 kg at 2 x10^6/kg (125 x10^6 cells, band +/- 10 %): at 55 kg the same bags give 2.27 x10^6/kg."""
from __future__ import annotations

from datetime import timedelta
from html import unescape
from typing import Any

from sqlalchemy import func, select, text

from mscbatch.audit.context import use_case
from mscbatch.custody.models import Infusion
from mscbatch.lots.models import Bag
from mscbatch.site import site_today
from tests.conftest import PASSWORD, api_token_for
from tests.integration.test_custody_support import ward_bag


def _weigh(clinician: Any, patient_id: int, kg: str, days_ago: int = 0) -> None:
    """The clinician records a weight on the patient's page (today's, or one measured days ago), ticking "I have
    checked this weight": 55 kg after 62.5 kg is more than 10 % (patients.services.weight_jump)."""
    answer = clinician.post(f"/patients/{patient_id}/weights", data={
        "weight_kg": kg, "measured_on": (site_today() - timedelta(days=days_ago)).isoformat(),
        "weight_confirmed": "y"})
    assert answer.status_code == 302, answer.get_data(as_text=True)


def _scan(app: Any, ward: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}
    answer = app.test_client().post("/api/v1/custody/scan-verify", headers=headers,
                                    json={"wristband": ward.wristband, "bag": ward.token})
    assert answer.status_code == 200
    return answer.get_json()


def test_a_weight_that_takes_the_dose_out_of_its_band_stops_the_bedside_check(app, users, client_as):
    ward = ward_bag(app)
    assert _scan(app, ward)["result"] == "MATCHES"
    _weigh(client_as("clinician"), ward.patient_id, "55")

    answer = _scan(app, ward)
    assert answer["result"] == "STOP" and [f["code"] for f in answer["failures"]] == ["weight_changed"]
    words = answer["failures"][0]["message"]
    assert "WEIGHT CHANGED since the prescription: prescribed for 62.5 kg" in words
    assert "now weighs 55 kg" in words and "2.27 x10^6/kg instead of 2 x10^6/kg (allowed: +/- 10 %)" in words
    assert "Ask the prescriber to prescribe again" in words

    page = client_as("nurse").post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token},
                                   follow_redirects=True)
    html = page.get_data(as_text=True)
    assert [r.status_code for r in page.history] == [303] and page.status_code == 200 and ">STOP<" in html and "WEIGHT CHANGED" in html and "Second person" not in html


def test_a_newer_weight_inside_the_band_matches_with_a_note(app, users, client_as):
    ward = ward_bag(app)
    _weigh(client_as("clinician"), ward.patient_id, "60")  # 125 / 60 = 2.08 x10^6/kg
    answer = _scan(app, ward)
    assert answer["result"] == "MATCHES", answer["failures"]
    assert any("newer weight" in note and "now weighs 60 kg" in note and "still within" in note
               for note in answer["notes"]), answer["notes"]


def test_a_weight_recorded_between_the_check_and_the_infusion_start_refuses_the_start(app, users, client_as):
    ward = ward_bag(app)
    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}
    client = app.test_client()
    check = _scan(app, ward)
    assert check["result"] == "MATCHES"
    confirmed = client.post(f"/api/v1/custody/checks/{check['check_id']}/confirm", headers=headers,
                            json={"username": "nurse2", "password": PASSWORD, "checker_password": PASSWORD})
    assert confirmed.status_code == 200, confirmed.get_data(as_text=True)
    _weigh(client_as("clinician"), ward.patient_id, "80")  # 1.56 x10^6/kg

    started = client.post("/api/v1/custody/infusions", headers=headers,
                          json={"bag_id": ward.bag_id, "wristband": ward.wristband, "bag": ward.token})
    assert started.status_code == 409 and "WEIGHT CHANGED" in started.get_data(as_text=True)
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.scalar(select(func.count()).select_from(Infusion)) == 0


def test_the_patient_page_tells_the_clinician_before_the_ward_does(app, users, client_as):
    ward = ward_bag(app)
    clinician = client_as("clinician")
    assert 'id="weight-change"' not in clinician.get(f"/patients/{ward.patient_id}").get_data(as_text=True)
    _weigh(clinician, ward.patient_id, "60")
    html = clinician.get(f"/patients/{ward.patient_id}").get_data(as_text=True)
    assert 'id="weight-change"' in html and "still within its limits" in html
    _weigh(clinician, ward.patient_id, "55")
    # unescaped: the words come from one place (WeightSincePrescription.no_longer_fits), their ' escaped as &#39;
    html = unescape(clinician.get(f"/patients/{ward.patient_id}").get_data(as_text=True))
    assert "The active prescription no longer fits the patient's weight." in html
    assert "now weighs 55 kg" in html and "2.27 x10^6/kg instead of 2 x10^6/kg" in html
    assert "cancel the prescription (bags already sent to the ward are returned first)" in html


def test_a_weight_of_the_same_day_entered_later_counts_and_an_older_one_does_not(app, users, client_as):
    """Newest as the dose calculation orders weights: by date measured, then by entry."""
    ward = ward_bag(app)  # the prescription's weight was measured yesterday
    clinician = client_as("clinician")
    _weigh(clinician, ward.patient_id, "50", days_ago=3)  # an older measurement typed in late: not the newest
    assert _scan(app, ward)["result"] == "MATCHES"
    _weigh(clinician, ward.patient_id, "55", days_ago=1)  # the same day as the prescription's, entered after it
    answer = _scan(app, ward)
    assert answer["result"] == "STOP" and [f["code"] for f in answer["failures"]] == ["weight_changed"]


def test_a_weight_recorded_between_the_check_and_its_confirmation_refuses_the_confirmation(app, users, client_as):
    ward = ward_bag(app)
    check = _scan(app, ward)
    assert check["result"] == "MATCHES"
    _weigh(client_as("clinician"), ward.patient_id, "55")
    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}
    confirmed = app.test_client().post(
        f"/api/v1/custody/checks/{check['check_id']}/confirm", headers=headers,
        json={"username": "nurse2", "password": PASSWORD, "checker_password": PASSWORD})
    assert confirmed.status_code == 409 and "WEIGHT CHANGED" in confirmed.get_data(as_text=True)


def test_once_every_bag_of_the_prescription_is_given_a_later_weight_raises_no_alarm(app, users, client_as):
    ward = ward_bag(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        with use_case(session, None, "test: the whole prescription was infused"):
            for bag_id in [ward.bag_id, *ward.other_bag_ids]:
                session.get(Bag, bag_id).status = "infused"
    clinician = client_as("clinician")
    _weigh(clinician, ward.patient_id, "55")
    assert 'id="weight-change"' not in clinician.get(f"/patients/{ward.patient_id}").get_data(as_text=True)


def test_a_calculation_that_cannot_be_read_stops_instead_of_failing(app, users, client_as):
    ward = ward_bag(app)
    with app.extensions["mscbatch.db"].engine.begin() as connection:  # behind the application: a damaged record
        connection.execute(text("UPDATE prescription SET calculation_json = '{}' WHERE patient_id = :p"),
                           {"p": ward.patient_id})
    assert _scan(app, ward)["result"] == "MATCHES"  # its own weight is still the newest: nothing to recheck
    _weigh(client_as("clinician"), ward.patient_id, "62")
    answer = _scan(app, ward)
    assert answer["result"] == "STOP" and [f["code"] for f in answer["failures"]] == ["weight_changed"]
    assert "cannot be checked against the new weight" in answer["failures"][0]["message"]
