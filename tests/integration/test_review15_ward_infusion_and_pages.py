"""Review 15 of the ward: an infusion ended with "-0" mL kept 0.00 on the infusion but "-0.00" in its custody event
(the append-only log disagreed with the record) and the refusal asking why said "-0 mL is LESS than ..."; the ward
page told QA to discard a bag returned to the unit there, which the page then refuses (its signed assessment, on
Returned bags, decides it)."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from mscbatch.custody import infusions
from mscbatch.custody.models import CustodyEvent, Infusion
from tests.conftest import api_token_for
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag

pytestmark = pytest.mark.usefixtures("users")


def _running(app: Any) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        ward = prescribed_bag(session)
        checked_and_confirmed(session, ward)
        return infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                        bag_scan=ward.token, label_key=KEY).id


def test_minus_zero_ml_is_zero_in_the_words_the_record_and_the_custody_event(app, client_as):
    infusion_id = _running(app)
    nurse = client_as("nurse")
    asked = nurse.post(f"/ward/infusions/{infusion_id}/end", data={"volume_ml": "-0"})
    body = asked.get_data(as_text=True)
    assert asked.status_code == 422 and "Volume infused: 0 mL is LESS than the 25 mL prescribed" in body
    assert "-0 mL" not in body
    ended = nurse.post(f"/ward/infusions/{infusion_id}/end", data={"volume_ml": "-0", "reason": "rigors at once"})
    assert ended.status_code == 302
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Infusion, infusion_id).volume_infused_ml == 0
        event = session.scalar(select(CustodyEvent).where(CustodyEvent.kind == "infusion_ended"))
        assert event.details["volume_infused_ml"] == "0.00"


def test_the_api_end_with_minus_zero_records_zero_in_the_custody_event(app):
    infusion_id = _running(app)
    answer = app.test_client().post(f"/api/v1/custody/infusions/{infusion_id}/end", json={
        "volume_ml": "-0.00", "reason": "rigors at once"},
        headers={"Authorization": f"Bearer {api_token_for(app, 'nurse')}"})
    assert answer.status_code == 200 and answer.get_json()["volume_infused_ml"] == "0.00"
    with app.extensions["mscbatch.db"].new_session() as session:
        event = session.scalar(select(CustodyEvent).where(CustodyEvent.kind == "infusion_ended"))
        assert event.details["volume_infused_ml"] == "0.00"


def test_the_ward_page_does_not_tell_qa_to_discard_a_returned_bag_there(app, client_as):
    page = client_as("qa").get("/ward").get_data(as_text=True)
    assert "discard a bag returned to the unit" not in page
    assert "QA: discard a bag in stock; a bag returned to the unit is discarded (or put back into stock) by your " \
           "signed assessment, on Returned bags." in page
