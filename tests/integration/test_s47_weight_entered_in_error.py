"""A weight marked entered in error (session 47). Before, a weight typed wrong could only be outweighed by a right
one typed after it: typed after a prescription (55 for 62.5 kg) it stopped the bedside check with WEIGHT CHANGED
until then, and it stayed among the weights a new one is checked against. A clinician now marks it, with why, on
the patient's page or through the API, signed with the clinician's password: it stays listed, struck through, and
nothing reads it again. A weight a prescription stands on is not marked (an active one: cancel it first; one whose
bags were given: never, their dose per kg is recorded on it)."""
from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from typing import Any

from sqlalchemy import select

from mscbatch.audit.models import AuditEvent
from mscbatch.custody import infusions
from mscbatch.patients import prescriptions
from mscbatch.patients.models import Prescription, WeightError, WeightMeasurement
from mscbatch.signatures.models import Signature
from mscbatch.signatures.services import verify
from mscbatch.site import site_today
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import user
from tests.integration.test_bedside_weight_change import _scan, _weigh
from tests.integration.test_custody_support import KEY, checked_and_confirmed, ward_bag

FORM = "weight-error"


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).replace(" :", ":")


def _weights(app: Any, patient_id: int) -> list[tuple[int, str, int | None]]:
    """(id, kg, id of its mark of entered in error) of every weight of the patient, oldest first."""
    with app.extensions["mscbatch.db"].new_session() as session:
        return [(w.id, f"{w.weight_kg.normalize():f}", session.scalar(
            select(WeightError.id).where(WeightError.weight_id == w.id))) for w in session.scalars(
            select(WeightMeasurement).where(WeightMeasurement.patient_id == patient_id).order_by(WeightMeasurement.id))]


def _mark(client: Any, patient_id: int, weight_id: Any, reason: str, password: str = PASSWORD) -> Any:
    return client.post(f"/patients/{patient_id}/weight-errors", data={
        f"{FORM}-weight_id": str(weight_id), f"{FORM}-reason": reason, f"{FORM}-password": password})


def test_a_wrong_weight_after_the_prescription_is_marked_and_the_bedside_matches_again(app, users, client_as):
    ward = ward_bag(app)
    clinician = client_as("clinician")
    _weigh(clinician, ward.patient_id, "55")  # typed for 65.5: the bedside says WEIGHT CHANGED
    assert _scan(app, ward)["result"] == "STOP"
    (prescribed, _kg, _none), (wrong, kg, none) = _weights(app, ward.patient_id)
    assert kg == "55" and none is None

    page = clinician.get(f"/patients/{ward.patient_id}").get_data(as_text=True)
    assert "Mark a weight as entered in error" in page
    assert f'<option value="{wrong}">55 kg measured on {site_today()}</option>' in page

    done = _mark(clinician, ward.patient_id, wrong, "typed 55 for 65.5 kg")
    assert done.status_code == 302, done.get_data(as_text=True)
    shown = _text(clinician.get(done.headers["Location"]).get_data(as_text=True))
    assert f"Signed: The weight of 55 kg measured on {site_today()} is marked entered in error." in shown
    assert "ENTERED IN ERROR: not used. typed 55 for 65.5 kg (signed: Clinician, " in shown, \
        shown[shown.find("Weights"):][:900]
    assert _weights(app, ward.patient_id)[1][2] is not None

    answer = _scan(app, ward)  # the prescription's own weight is the newest in use again
    assert answer["result"] == "MATCHES", answer["failures"]
    assert not any("newer weight" in note for note in answer.get("notes", []))
    with app.extensions["mscbatch.db"].new_session() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.entity_type == "patient_weight_error",
                                                         AuditEvent.action == "insert")).one()
        assert event.actor_name == "clinician"
        assert event.reason == "Weight marked entered in error: typed 55 for 65.5 kg"
        mark = session.scalars(select(WeightError)).one()
        [signature] = session.scalars(select(Signature).where(Signature.entity_type == "patient_weight_error",
                                                              Signature.entity_id == str(mark.id)))
        assert signature.meaning == "Weight marked entered in error" and mark.locked_at is not None
        assert verify(session, signature, mark).valid
    again = _mark(clinician, ward.patient_id, wrong, "typed 55 for 65.5 kg")  # once only, never undone
    assert again.status_code in (404, 409, 422)
    assert _weights(app, ward.patient_id)[0][2] is None and prescribed


def test_the_weight_an_active_prescription_stands_on_is_not_marked(app, users, client_as):
    ward = ward_bag(app)
    clinician = client_as("clinician")
    [(weight_id, _kg, _none)] = _weights(app, ward.patient_id)
    refused = _mark(clinician, ward.patient_id, weight_id, "another patient's weight")
    assert refused.status_code == 409
    said = _text(refused.get_data(as_text=True))
    with app.extensions["mscbatch.db"].new_session() as session:
        rx_id = session.scalar(select(Prescription.id).where(Prescription.patient_id == ward.patient_id))
    assert f"is the weight active prescription {rx_id} was calculated with" in said
    assert "Cancel that prescription first" in said and "Nothing was changed." in said
    assert _weights(app, ward.patient_id)[0][2] is None
    assert _scan(app, ward)["result"] == "MATCHES"


def test_the_weight_bags_were_given_on_is_never_marked(app, users, client_as):
    """A course stopped after its first bag: that bag's dose per kg is recorded on the prescription's weight."""
    ward = ward_bag(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        checked_and_confirmed(session, ward)
        infusion = infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                            bag_scan=ward.token, label_key=KEY)
        infusions.end_infusion(session, user(session, "nurse"), infusion.id, volume_ml="25")
        rx_id = session.scalar(select(Prescription.id).where(Prescription.patient_id == ward.patient_id))
    clinician = client_as("clinician")
    [(weight_id, _kg, _none)] = _weights(app, ward.patient_id)
    for state in ("active", "stopped"):
        if state == "stopped":
            with app.extensions["mscbatch.db"].new_session() as session:
                prescriptions.cancel(session, user(session, "clinician"), rx_id, "grade 3 reaction", password=PASSWORD)
        refused = _mark(clinician, ward.patient_id, weight_id, "another patient's weight")
        said = _text(refused.get_data(as_text=True))
        assert refused.status_code == 409, state
        assert f"is the weight prescription {rx_id} was calculated with, and bags of it were given" in said, state
        assert "It cannot be marked" in said and "Cancel" not in said
    assert _weights(app, ward.patient_id)[0][2] is None


def test_a_wrong_password_marks_nothing(app, users, client_as):
    ward = ward_bag(app)
    clinician = client_as("clinician")
    _weigh(clinician, ward.patient_id, "55")
    wrong = _weights(app, ward.patient_id)[1][0]
    refused = _mark(clinician, ward.patient_id, wrong, "typed 55 for 65.5 kg", password="not-my-password")
    assert refused.status_code == 401
    assert "Signature refused: wrong password. Nothing was signed." in _text(refused.get_data(as_text=True))
    assert _weights(app, ward.patient_id)[1][2] is None and _scan(app, ward)["result"] == "STOP"
    unsigned = _mark(clinician, ward.patient_id, wrong, "typed 55 for 65.5 kg", password="")
    assert unsigned.status_code == 422 and "Re-enter your password to sign." in _text(unsigned.get_data(as_text=True))


def test_a_reason_is_required_and_a_weight_is_chosen(app, users, client_as):
    ward = ward_bag(app)
    clinician = client_as("clinician")
    _weigh(clinician, ward.patient_id, "60")
    wrong = _weights(app, ward.patient_id)[1][0]
    short = _mark(clinician, ward.patient_id, wrong, " no ")
    assert short.status_code == 422
    assert "Reason: say why this weight is wrong (at least 5 characters)" in _text(short.get_data(as_text=True))
    for chosen in ("", "9" * 5000, "x"):
        unchosen = _mark(clinician, ward.patient_id, chosen, "typed 60 for 66 kg")
        assert unchosen.status_code == 422, chosen[:10]
        assert "Weight entered in error: choose the weight." in _text(unchosen.get_data(as_text=True))
    other = ward_bag(app)  # a weight of another patient, posted on this patient's page
    foreign = _mark(clinician, ward.patient_id, _weights(app, other.patient_id)[0][0], "typed 60 for 66 kg")
    assert foreign.status_code == 404 and "has no weight with id" in _text(foreign.get_data(as_text=True))
    too_long = _mark(clinician, ward.patient_id, wrong, "x" * 501)
    assert too_long.status_code == 422 and "Reason: at most 500 characters (501 given)." in _text(
        too_long.get_data(as_text=True))
    assert all(mark is None for _id, _kg, mark in _weights(app, ward.patient_id))
    assert client_as("nurse").post(f"/patients/{ward.patient_id}/weight-errors", data={
        f"{FORM}-weight_id": str(wrong), f"{FORM}-reason": "typed 60 for 66 kg"}).status_code == 403


def test_a_weight_in_error_is_not_what_a_new_weight_is_checked_against(app, users, client_as):
    """650 typed for 65 (no confirmation needed after a mark): the next weight is checked against 62.5 kg, not 650."""
    ward = ward_bag(app)
    clinician = client_as("clinician")
    _weigh(clinician, ward.patient_id, "150", days_ago=0)
    wrong = _weights(app, ward.patient_id)[1][0]
    assert _mark(clinician, ward.patient_id, wrong, "typed 150 for 65 kg").status_code == 302
    kept = clinician.post(f"/patients/{ward.patient_id}/weights", data={
        "weight_kg": "64", "measured_on": site_today().isoformat()})  # within 10 % of 62.5: no tick needed
    assert kept.status_code == 302, _text(kept.get_data(as_text=True))[-600:]


def test_the_api_lists_the_mark_and_marks_a_weight(app, users, client_as):
    ward = ward_bag(app)
    _weigh(client_as("clinician"), ward.patient_id, "55", days_ago=1)
    prescribed, wrong = (w[0] for w in _weights(app, ward.patient_id))
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    url = f"/api/v1/patients/{ward.patient_id}/weights/{wrong}/entered-in-error"
    empty = client.post(url, headers=headers, json={"reason": "", "password": PASSWORD})
    assert empty.status_code == 422 and "reason" in str(empty.get_json())
    nurse = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}
    assert client.post(url, headers=nurse, json={"reason": "typed 55 for 65.5 kg", "password": PASSWORD}
                       ).status_code == 403
    assert client.post(url, headers=headers, json={"reason": "typed 55 for 65.5 kg", "password": "wrong"}
                       ).status_code == 401
    marked = client.post(url, headers=headers, json={"reason": "typed 55 for 65.5 kg", "password": PASSWORD})
    assert marked.status_code == 201, marked.get_json()
    body = marked.get_json()
    assert body["id"] == wrong and body["weight_kg"] == "55.00"
    assert body["entered_in_error"]["reason"] == "typed 55 for 65.5 kg"
    assert body["entered_in_error"]["marked_by"] == "Clinician"
    assert client.post(url, headers=headers, json={"reason": "typed 55 for 65.5 kg", "password": PASSWORD}
                       ).status_code == 409
    standing = client.post(f"/api/v1/patients/{ward.patient_id}/weights/{prescribed}/entered-in-error",
                           headers=headers, json={"reason": "another patient's weight", "password": PASSWORD})
    assert standing.status_code == 409 and "Cancel that prescription first" in str(standing.get_json())
    in_use = client.get(f"/api/v1/patients/{ward.patient_id}/weights", headers=nurse).get_json()
    assert [(w["id"], w["entered_in_error"]) for w in in_use] == [(prescribed, None)]  # the first is the one in use
    listed = client.get(f"/api/v1/patients/{ward.patient_id}/weights?history=true", headers=nurse).get_json()
    by_id = {w["id"]: w for w in listed}  # every weight, the mark with it
    assert set(by_id) == {prescribed, wrong} and by_id[prescribed]["entered_in_error"] is None
    assert by_id[wrong]["entered_in_error"]["marked_by"] == "Clinician"
    assert by_id[wrong]["measured_on"] == (site_today() - timedelta(days=1)).isoformat()
