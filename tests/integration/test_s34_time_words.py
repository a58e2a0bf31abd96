"""One way to say an instant everywhere (site.local_and_utc, the pages' `local` filter): the site's local time with
its zone named, UTC beside it. A bedside STOP used to say "06 Dec 2026 01:46 (00:46 UTC)", no zone named, beside a
page saying "2026-12-06 01:46 CET (00:46 UTC)"; a day (a weight's) is said as the patient's page lists it; the chain
of custody names the states in words ("on hold"), not "on_hold"."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from html import unescape
from typing import Any

from mscbatch.audit.context import use_case
from mscbatch.custody.services import record_event
from mscbatch.database import utcnow
from mscbatch.lots.models import Bag
from mscbatch.site import site_today
from tests.conftest import api_token_for
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import ward_bag
from tests.time_words import site_then_utc


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _said(instant: datetime) -> str:
    """Written out here, not with site.local_and_utc, so that the test says the form it expects."""
    return site_then_utc(instant)  # tests/time_words: the UTC date named when it is not the site's day


def test_a_bedside_stop_for_an_expired_bag_and_the_bag_page_say_the_expiry_in_the_same_words(app, users, client_as):
    ward = ward_bag(app, state="received")
    expired_at = utcnow() - timedelta(hours=1)
    with app.extensions["mscbatch.db"].new_session() as session, \
            use_case(session, user(session, "qa"), "test: the shelf life ran out"):
        session.get(Bag, ward.bag_id).expires_at = expired_at
    nurse = client_as("nurse")
    page = nurse.post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token},
                      follow_redirects=True).get_data(as_text=True)
    failures = _text(page[page.index('class="failures"'):page.index("</ul>", page.index('class="failures"'))])
    assert f"This bag EXPIRED on {_said(expired_at)}." in failures, failures
    assert f"Expires {_said(expired_at)}" in _text(page)  # the same result page's own line
    bag_page = _text(nurse.get(f"/trace/bags/{ward.bag_id}").get_data(as_text=True))
    assert f"Expiry {_said(expired_at)}" in bag_page, bag_page


def test_a_weight_too_old_names_its_day_as_the_patient_page_lists_it(app, users, client_as, monkeypatch):
    ward = ward_bag(app, state="received")  # prescribed today on a weight measured yesterday
    weighed_on = (site_today() - timedelta(days=1)).isoformat()
    assert weighed_on in client_as("clinician").get(f"/patients/{ward.patient_id}").get_data(as_text=True)
    week_later = utcnow() + timedelta(days=7)
    monkeypatch.setattr("mscbatch.custody.checks.utcnow", lambda: week_later)
    answer: Any = app.test_client().post(
        "/api/v1/custody/scan-verify", json={"wristband": ward.wristband, "bag": ward.token},
        headers={"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}).get_json()
    message = answer["failures"][0]["message"]
    assert f"WEIGHT TOO OLD: the dose is for the weight measured on {weighed_on}, 8 days ago" in message, message


def test_the_chain_of_custody_names_the_states_in_words(app, users, client_as):
    ward = ward_bag(app, state="allocated")
    with app.extensions["mscbatch.db"].new_session() as session:
        qa = user(session, "qa")
        with use_case(session, qa, "test: a recall held the bag"):
            bag = session.get(Bag, ward.bag_id)
            bag.status = "on_hold"
            # a status is said where it changes (s36): the held bag discarded, "on hold → discarded"
            record_event(session, qa, bag, "discarded", reason="test: discarded under the recall")
    page = client_as("qa").get(f"/trace/bags/{ward.bag_id}").get_data(as_text=True)
    table = page[page.index('id="h-custody"'):page.index("</table>", page.index('id="h-custody"'))]
    assert "on hold → discarded" in table and "on_hold" not in table, table
