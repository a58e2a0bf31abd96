"""Review 5 (ward): a session that expired while a nurse was on a form. Tapping Sign on the two-person check after the
idle timeout landed on Sign in with no word, and after signing in on Home: the nurse could believe the check was
signed. Now the sign-in page says the session ended after N minutes without activity and that what was being done
was NOT saved, and signing in leads back to the page the form was on; a page opened (GET) is opened again."""
from __future__ import annotations

import html
from datetime import timedelta

import pytest
from sqlalchemy import update

from mscbatch.auth.models import AuthSession
from mscbatch.custody.models import TwoPersonCheck
from mscbatch.database import utcnow
from tests.conftest import PASSWORD, login
from tests.integration.test_custody_support import check, prescribed_bag

pytestmark = pytest.mark.usefixtures("users")


def _idle(db_session, minutes: int = 16) -> None:  # type: ignore[no-untyped-def]
    """Every open session last used `minutes` ago (the default idle timeout is 15 minutes)."""
    db_session.execute(update(AuthSession).where(AuthSession.ended_at.is_(None))
                       .values(last_seen_at=utcnow() - timedelta(minutes=minutes)))
    db_session.commit()


def _text(response) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(response.get_data(as_text=True))


def test_signing_the_bedside_check_after_the_idle_timeout_says_it_was_not_saved_and_leads_back(
        db_session, client_as):
    ward = prescribed_bag(db_session)
    check_id = check(db_session, ward).check_id
    db_session.rollback()
    nurse = client_as("nurse")
    page = f"/ward/checks/{check_id}"
    assert nurse.get(page).status_code == 200
    _idle(db_session)

    sent = nurse.post(f"{page}/confirm", headers={"Referer": f"http://localhost{page}"},
                      data={"checker_password": PASSWORD, "second_username": "nurse2", "second_password": PASSWORD})
    assert sent.status_code == 302 and sent.headers["Location"].startswith("/login")
    shown = _text(nurse.get(sent.headers["Location"]))
    assert "Your session ended after 15 minutes without activity." in shown
    assert "What you were doing was NOT saved: sign in again, then do it again." in shown
    db_session.rollback()
    assert db_session.get(TwoPersonCheck, check_id).second_checker_id is None  # indeed not saved
    db_session.rollback()

    back = nurse.post(sent.headers["Location"], data={"username": "nurse", "password": PASSWORD})
    assert back.status_code == 302 and back.headers["Location"] == page


def test_a_page_opened_after_the_idle_timeout_is_opened_again_after_signing_in(db_session, client_as):
    nurse = client_as("nurse")
    _idle(db_session)
    sent = nurse.get("/ward?x=1")
    assert sent.status_code == 302
    shown = _text(nurse.get(sent.headers["Location"]))
    assert "Your session ended after 15 minutes without activity. Sign in again to go on." in shown
    assert "NOT saved" not in shown
    back = nurse.post(sent.headers["Location"], data={"username": "nurse", "password": PASSWORD})
    assert back.headers["Location"] == "/ward?x=1"


def test_a_form_sent_from_a_result_page_leads_home_not_to_a_page_that_cannot_be_opened(client_as, db_session):
    nurse = client_as("nurse")
    _idle(db_session)
    sent = nurse.post("/ward/check", headers={"Referer": "http://localhost/ward/check"},
                      data={"wristband": "WB-1", "bag": "X"})
    assert sent.headers["Location"] == "/login"
    assert "NOT saved" in _text(nurse.get("/login"))


def test_signed_out_in_another_tab_is_said_so(app, users):  # type: ignore[no-untyped-def]
    first, second = app.test_client(), app.test_client()
    login(first, "nurse")
    with first.session_transaction() as cookie:
        sid = cookie["sid"]
    with second.session_transaction() as other:  # the same browser session in a second tab
        with first.session_transaction() as cookie:
            other.update(dict(cookie))
    assert sid and second.post("/logout").status_code == 302
    sent = first.post("/ward/event", data={"bag": "X", "action": "receive"})
    assert "You were signed out (in another window or tab)." in _text(first.get(sent.headers["Location"]))


def test_a_form_sent_without_ever_signing_in_also_says_not_saved(app):  # type: ignore[no-untyped-def]
    client = app.test_client()
    sent = client.post("/ward/event", data={"bag": "X", "action": "receive"})
    assert sent.status_code == 302
    assert "You are not signed in: what you sent was NOT saved." in _text(client.get(sent.headers["Location"]))
