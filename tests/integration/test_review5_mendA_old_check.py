"""A recorded check's page reopened past the check's validity (30 min) says so and offers neither the confirmation nor
the start (both are refused then); the confirmation form is offered to the person who scanned only (review 5)."""
from __future__ import annotations

import html
from datetime import timedelta

import pytest
from sqlalchemy import update

from mscbatch.custody.models import TwoPersonCheck
from mscbatch.database import utcnow
from tests.integration.test_custody_support import check, checked_and_confirmed, prescribed_bag

pytestmark = pytest.mark.usefixtures("users")
SIGN = "Sign: we both checked the bag against the wristband"


def _aged(db_session, check_id: int, minutes: int) -> None:  # type: ignore[no-untyped-def]
    db_session.execute(update(TwoPersonCheck).where(TwoPersonCheck.id == check_id)
                       .values(checked_at=utcnow() - timedelta(minutes=minutes),
                               confirmed_at=utcnow() - timedelta(minutes=minutes - 1)))
    db_session.commit()


def _page(client, check_id: int) -> str:  # type: ignore[no-untyped-def]
    answer = client.get(f"/ward/checks/{check_id}")
    assert answer.status_code == 200
    return html.unescape(answer.get_data(as_text=True))


def test_an_unconfirmed_check_past_its_validity_offers_no_signing(app, db_session, client_as):  # type: ignore[no-untyped-def]
    check_id = check(db_session, prescribed_bag(db_session)).check_id
    _aged(db_session, check_id, 31)
    page = _page(client_as("nurse"), check_id)
    assert "This check is more than 30 minutes old: scan again" in page
    assert SIGN not in page and "A second person must now confirm" not in page


def test_a_confirmed_check_past_its_validity_offers_no_start(app, db_session, client_as):  # type: ignore[no-untyped-def]
    check_id = checked_and_confirmed(db_session, prescribed_bag(db_session))
    _aged(db_session, check_id, 45)
    page = _page(client_as("nurse"), check_id)
    assert "This check is more than 30 minutes old: scan again" in page
    assert 'id="start-form"' not in page and "Start infusion" not in page


def test_a_fresh_check_is_signed_by_the_person_who_scanned_only(app, db_session, client_as):  # type: ignore[no-untyped-def]
    check_id = check(db_session, prescribed_bag(db_session)).check_id  # scanned by "nurse"
    mine = _page(client_as("nurse"), check_id)
    assert SIGN in mine and "more than 30 minutes old" not in mine
    other = _page(client_as("nurse2"), check_id)
    assert SIGN not in other and "who scanned, signs this check" in other
