"""Review 2 of custody: a lot recalled while one of its bags runs into a patient. The infusion's web page says
STOP THE INFUSION NOW, but a ward scanner app on the API could not read an infusion at all, so it was never told.
GET /api/v1/custody/infusions/<id> now gives the infusion and a `stop` object, from the same rule as the page."""
from __future__ import annotations

import html
from typing import Any

import pytest

from mscbatch.custody import infusions
from mscbatch.recall import services as recalls
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag

pytestmark = pytest.mark.usefixtures("users")


def _running(app: Any) -> tuple[Any, int]:
    with app.extensions["mscbatch.db"].new_session() as session:
        ward = prescribed_bag(session)
        checked_and_confirmed(session, ward)
        infusion = infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband, bag_scan=ward.token,
                                            label_key=KEY)
        return ward, infusion.id


def _recall(app: Any, lot_id: int) -> None:
    with app.extensions["mscbatch.db"].new_session() as session:
        recalls.start_recall(session, user(session, "qa"), scope="lot", target_id=lot_id,
                             reason="late positive sterility culture", password=PASSWORD)


def _read(app: Any, role: str, infusion_id: int) -> Any:
    return app.test_client().get(f"/api/v1/custody/infusions/{infusion_id}",
                                 headers={"Authorization": f"Bearer {api_token_for(app, role)}"})


@pytest.mark.parametrize("role", ["nurse", "clinician", "qa"])
def test_a_lot_recalled_during_the_infusion_says_stop_now_through_the_api_in_the_page_words(app, client_as, role):
    ward, infusion_id = _running(app)
    before = _read(app, role, infusion_id)
    assert before.status_code == 200, before.get_json()
    assert before.get_json()["stop"] == {"stop_now": False, "reasons": []}
    assert before.get_json()["status"] == "running" and before.get_json()["ended_at"] is None

    _recall(app, ward.lot_id)
    answer = _read(app, role, infusion_id)
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["stop"]["stop_now"] is True
    assert len(body["stop"]["reasons"]) == 1 and "RECALLED" in body["stop"]["reasons"][0]
    assert body["id"] == infusion_id and body["bag_id"] == ward.bag_id and body["status"] == "running"
    assert body["patient_id"] == ward.patient_id and body["patient_code"]  # a patient reader: the patient shown
    page = html.unescape(client_as("nurse").get(f"/ward/infusions/{infusion_id}").get_data(as_text=True))
    assert "STOP THE INFUSION NOW" in page and body["stop"]["reasons"][0] in page  # the same words as the page
    assert body["patient_code"] in page and body["din"][:13] in page.replace(" ", "")


def test_an_ended_infusion_reads_ended_and_no_stop(app):
    ward, infusion_id = _running(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        infusions.end_infusion(session, user(session, "nurse"), infusion_id, volume_ml="25")
    _recall(app, ward.lot_id)
    body = _read(app, "nurse", infusion_id).get_json()
    assert body["status"] == "ended" and body["ended_at"] and body["volume_infused_ml"] == "25.00"
    assert body["stop"] == {"stop_now": False, "reasons": []}


@pytest.mark.parametrize("role", ["technician", "admin"])
def test_roles_without_the_infusion_page_are_refused(app, role):
    _, infusion_id = _running(app)
    answer = _read(app, role, infusion_id)
    assert answer.status_code == 403
    assert "patient" not in answer.get_data(as_text=True).lower()


def test_an_unknown_infusion_is_404(app):
    answer = _read(app, "nurse", 999_999)
    assert answer.status_code == 404 and "No infusion 999999" in answer.get_json()["detail"]


def test_the_endpoint_is_in_the_openapi_schema(app):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    operation = spec["paths"]["/api/v1/custody/infusions/{infusion_id}"]["get"]
    assert {"200", "401", "403", "404"} <= set(operation["responses"])
    assert "stop" in spec["components"]["schemas"]["InfusionRead"]["properties"]
