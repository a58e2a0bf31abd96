"""Session 45 (a review under faketime): a bag thawed less than its post-thaw limit before its own expiry was to be
given "within 60 minutes, by 12:40", with "Expires 12:00" just above it, and the page's countdown ran to 12:40. The
check's time to give it by is now the earlier of the two (BedsideResult.give_before), said as the bag's expiry."""
from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import update

from mscbatch.database import utcnow
from mscbatch.lots.models import Bag
from mscbatch.site import local_and_utc
from tests.conftest import api_token_for
from tests.integration.test_custody_support import check, checked_and_confirmed, prescribed_bag

pytestmark = pytest.mark.usefixtures("users")


def _text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def _expiring_in(db_session, minutes: int):  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session)  # thawed now: its post-thaw limit is 60 minutes away
    expiry = (utcnow() + timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    db_session.execute(update(Bag).where(Bag.id == ward.bag_id).values(expires_at=expiry))
    db_session.commit()
    return ward, expiry


def test_a_bag_expiring_before_its_post_thaw_limit_is_to_be_given_by_its_expiry(app, db_session, client_as):  # type: ignore[no-untyped-def]
    ward, expiry = _expiring_in(db_session, 20)
    result = check(db_session, ward)
    assert result.matches, result.failures
    assert result.give_before == expiry < result.post_thaw_deadline
    check_id = checked_and_confirmed(db_session, ward)
    page = client_as("nurse").get(f"/ward/checks/{check_id}").get_data(as_text=True)
    give_before = re.search(r'<dd id="give-before".*?</dd>', page, re.S).group(0)  # type: ignore[union-attr]
    said = _text(give_before.split("<template", 1)[0])
    assert local_and_utc(expiry).split(" (")[0] in said
    assert "minutes left" in said and "The bag EXPIRES then, before its post-thaw limit" in said
    assert 'data-thaw-deadline="' + expiry.strftime("%Y-%m-%dT%H:%M") in give_before
    assert "Bag EXPIRED at" in give_before  # what the countdown says once it passes


def test_a_bag_expiring_after_its_limit_keeps_the_post_thaw_deadline(app, db_session, client_as):  # type: ignore[no-untyped-def]
    ward, _expiry = _expiring_in(db_session, 24 * 60)
    result = check(db_session, ward)
    assert result.matches and result.give_before == result.post_thaw_deadline
    check_id = checked_and_confirmed(db_session, ward)
    page = client_as("nurse").get(f"/ward/checks/{check_id}").get_data(as_text=True)
    assert "EXPIRES then" not in page and "Post-thaw limit PASSED at" in page


def test_the_api_gives_the_time_to_give_it_by(app, db_session, client_as):  # type: ignore[no-untyped-def]
    ward, expiry = _expiring_in(db_session, 20)
    answer = app.test_client().post("/api/v1/custody/scan-verify", json={"wristband": ward.wristband, "bag": ward.token},
                                    headers={"Authorization": f"Bearer {api_token_for(app, 'nurse')}"})
    assert answer.status_code == 200 and answer.json["result"] == "MATCHES", answer.json
    assert answer.json["give_before"].startswith(expiry.strftime("%Y-%m-%dT%H:%M"))
    assert answer.json["post_thaw_deadline"] > answer.json["give_before"]


def test_the_ward_list_gives_it_by_its_expiry_and_says_so(app, db_session, client_as):  # type: ignore[no-untyped-def]
    ward, expiry = _expiring_in(db_session, 20)
    page = client_as("nurse").get("/ward").get_data(as_text=True)
    row = re.search(r'<td data-label="Give by"[^>]*data-expires-first[^>]*>.*?</td>', page, re.S)
    assert row is not None, "the bag's Give by counts down to its expiry"
    assert 'data-thaw-deadline="' + expiry.strftime("%Y-%m-%dT%H:%M") in row.group(0)
    assert "the bag EXPIRES then, before its post-thaw limit" in _text(row.group(0))
    assert '<template id="give-by-expired-words">' in page  # what the countdown says once it passes


def test_thawing_a_bag_that_expires_within_its_limit_says_so(app, db_session, client_as):  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session, state="received")
    expiry = (utcnow() + timedelta(minutes=20)).replace(second=0, microsecond=0)
    db_session.execute(update(Bag).where(Bag.id == ward.bag_id).values(expires_at=expiry))
    db_session.commit()
    nurse = client_as("nurse")
    assert nurse.post("/ward/event", data={"bag": ward.token, "action": "thaw"}).status_code == 302
    said = _text(nurse.get("/ward").get_data(as_text=True))
    assert f"BUT THE BAG EXPIRES FIRST, at {local_and_utc(expiry)}: give it before then." in said
