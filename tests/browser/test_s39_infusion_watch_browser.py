"""S39 in real Chromium: a bedside tablet left on the running infusion page idles out (the STOP poll is passive, on
purpose), and the lot is recalled afterwards, mid-infusion. The page says in large words that the nurse is signed out
and that it still watches; then STOP THE INFUSION NOW appears by itself, through the page's watch token."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from mscbatch.auth.models import AuthSession
from tests.browser.conftest import ARTIFACTS, sign_in
from tests.browser.test_review5_ward_browser import _running, _session
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user

pytestmark = pytest.mark.browser


def test_stop_shows_on_the_infusion_page_after_the_session_idled_out(page, live_server):  # type: ignore[no-untyped-def]
    app = live_server.app
    app.config["CUSTODY_STOP_POLL_SECONDS"] = 1  # the ward's default is 20 s
    ward, infusion_id = _running(live_server)
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/ward/infusions/{infusion_id}")
    expect(page.locator("#infusion-ended")).to_have_text("running")
    page.get_by_label("What happened (free text)").fill("flushed, 38.2 C")
    app.config["IDLE_TIMEOUT_MINUTES"] = 0.02  # about a second: the tablet is left alone and idles out
    note = page.locator("#stop-watch-signed-out")
    expect(note).to_be_visible(timeout=10_000)
    expect(note.get_by_role("heading", name="You are signed out.")).to_be_visible()
    expect(note).to_contain_text("This page still watches for STOP")
    expect(note).to_contain_text("Sign in again to record anything")
    session = _session(live_server)
    try:
        assert session.scalars(select(AuthSession.end_reason)).all() == ["idle timeout"]
    finally:
        session.close()
    page.wait_for_timeout(2_500)  # polls through the watch token, with nothing to say yet
    expect(page.locator("#stop-running")).to_have_count(0)
    app.config["IDLE_TIMEOUT_MINUTES"] = 15

    session = _session(live_server)
    try:  # QA recalls the lot, well after the session ended
        from mscbatch.recall import services as recalls

        recalls.start_recall(session, user(session, "qa"), scope="lot", target_id=ward.lot_id,
                             reason="late positive sterility culture", password=PASSWORD)
    finally:
        session.close()
    alert = page.locator("#stop-running")
    expect(alert).to_be_visible(timeout=8_000)
    expect(alert.get_by_role("heading", name="STOP THE INFUSION NOW")).to_be_visible()
    expect(alert).to_contain_text("RECALLED")
    expect(page.locator("body")).to_have_class("infusion-page bedside-stop")
    expect(note).to_be_visible()  # still said: signed out, sign in to record the end
    expect(page.locator("#end-stopped")).to_be_visible()  # the end's one reason: the system's STOP
    expect(page.locator("#end-stopped button")).to_have_class("button big primary")  # it stands out, and the
    expect(page.locator("#end-plain")).to_have_class("button big secondary")  # plain end (three reasons) does not
    expect(page.locator("#end-stopped button")).to_contain_text("Stopped: STOP THE INFUSION NOW")  # the server's words
    expect(page.get_by_label("What happened (free text)")).to_have_value("flushed, 38.2 C")
    session = _session(live_server)
    try:  # the watch kept no session alive and opened none
        assert session.scalars(select(AuthSession.ended_at.is_(None))).all() == [False]
    finally:
        session.close()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ward-infusion-stop-after-idle.png"), full_page=True)
