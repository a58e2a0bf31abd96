"""S38, trial pharmacist: an infusion "given" in one second; the bag's place in its course; the post-thaw limit.

1. An end recorded sooner than the time the protocol gives the infusion over (slow IV infusion, 1 h in both
   protocols, for the whole course: a bag over its share of it) needs a reason: 422 naming the reason field, nothing
   written without it; the page shows how long it lasted and why.
2. The check page says how many bags of the course were given already and which this is, the dose sheet's order
   labelled as such ("bag 1 of the 3 prescribed" read, for a bag given second, as "the 1st").
3. The post-thaw limit, marked "to confirm" in config/products.toml, is flagged as such on the check page."""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from mscbatch.custody import infusions
from mscbatch.custody.models import CustodyEvent, Infusion
from tests.conftest import api_token_for
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag
from tests.integration.test_review4_custody_course import _api, _course, _start

pytestmark = pytest.mark.usefixtures("users")

REAL_NOW = infusions.utcnow
#: the bag's share of the course's hour: 25 of the 25 + 25 + 12.5 mL prescribed
SHARE = "the protocol gives this bag (25 of 62.5 mL of the course) over 24 min (the course over 1 h): say why"


def _running(app: Any) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        ward = prescribed_bag(session)
        checked_and_confirmed(session, ward)
        infusion = infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                            bag_scan=ward.token, label_key=KEY)
        return infusion.id


def _ended(app: Any, infusion_id: int) -> tuple[Infusion, list[CustodyEvent]]:
    with app.extensions["mscbatch.db"].new_session() as session:
        row = session.get(Infusion, infusion_id)
        events = list(session.scalars(select(CustodyEvent).where(CustodyEvent.bag_id == row.bag_id,
                                                                 CustodyEvent.kind == "infusion_ended")))
        session.expunge_all()
        return row, events


@pytest.mark.infusion_duration
def test_s38_an_infusion_ended_in_seconds_needs_its_reason_and_the_page_shows_it(app, client_as, monkeypatch):
    infusion_id = _running(app)
    nurse = client_as("nurse")
    refused = nurse.post(f"/ward/infusions/{infusion_id}/end", data={"volume_ml": "25"})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "The infusion lasted 0 min " in page and SHARE in page
    assert 'id="reason-error"' in page  # said at the reason's field
    row, events = _ended(app, infusion_id)
    assert row.ended_at is None and row.volume_infused_ml is None and events == []  # nothing written

    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}
    api = app.test_client().post(f"/api/v1/custody/infusions/{infusion_id}/end", headers=headers,
                                 json={"volume_ml": "25"})
    assert api.status_code == 422 and SHARE in api.get_data(as_text=True)
    assert SHARE in api.get_json()["errors"]["reason"][0]  # the field named

    ended = nurse.post(f"/ward/infusions/{infusion_id}/end",
                       data={"volume_ml": "25", "reason": "patient had to leave for a scan: pump set fast"})
    assert ended.status_code == 302
    row, events = _ended(app, infusion_id)
    assert row.volume_reason == "patient had to leave for a scan: pump set fast"
    details = json.loads(events[0].details_json)
    assert details["shorter_than_protocol"] is True and details["protocol_hours"] == "1"
    shown = nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    assert 'id="infusion-lasted">0 min ' in shown
    assert '>patient had to leave for a scan: pump set fast</span> <span class="hint">(recorded at the end)' in shown


@pytest.mark.infusion_duration
def test_s38_an_infusion_given_over_the_protocol_time_ends_without_a_reason(app, client_as, monkeypatch):
    infusion_id = _running(app)
    monkeypatch.setattr(infusions, "utcnow", lambda: REAL_NOW() + timedelta(hours=1, minutes=2, seconds=5))
    ended = client_as("nurse").post(f"/ward/infusions/{infusion_id}/end", data={"volume_ml": "25"})
    assert ended.status_code == 302
    row, events = _ended(app, infusion_id)
    assert row.volume_reason is None and "shorter_than_protocol" not in json.loads(events[0].details_json)
    shown = client_as("nurse").get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    assert 'id="infusion-lasted">1 h 2 min ' in shown


def test_s38_the_check_says_how_many_bags_were_given_and_flags_the_post_thaw_limit(app, db_session, client_as):
    """Three bags (50 + 50 + 25 x10^6 for 62.5 kg): the partial one (3rd on the dose sheet) given first; then the
    1st on the dose sheet is the 2nd given."""
    course = _course(db_session, bags=3, cells=50_000_000)
    nurse = client_as("nurse")
    first = nurse.post("/ward/check", data={"wristband": course.wristband, "bag": course.bags[0][1]},
                       follow_redirects=True).get_data(as_text=True)
    assert ">MATCHES<" in first
    assert "none of the 3 bags prescribed for this patient given yet; this is the 1st" in first
    # 3. the post-thaw limit flagged as the unit's provisional value (config/products.toml's `to_confirm`), in
    # words that cannot be read as the check's own state (tests/integration/test_check_page_words.py)
    assert 'id="post-thaw-to-confirm"' in first
    assert "(post-thaw limit of 60 minutes: the unit&#39;s provisional setting, until its stability study sets it)" in first

    client, headers = _api(app)
    partial = course.bags[2]
    infusion_id = _start(client, headers, course.wristband, partial[0], partial[1])
    assert client.post(f"/api/v1/custody/infusions/{infusion_id}/end", headers=headers,
                       json={"volume_ml": "12.5", "reason": "test: ended at once"}).status_code == 200
    page = nurse.post("/ward/check", data={"wristband": course.wristband, "bag": course.bags[0][1]},
                      follow_redirects=True).get_data(as_text=True)
    assert ">MATCHES<" in page
    assert "1 bag of 3 given already; this is the 2nd" in page
    assert "(on the dose sheet: bag 1 of the 3 prescribed for this patient)" in page
