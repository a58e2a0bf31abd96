"""Review 5 in real Chromium: once the session of an open infusion page has ended, its STOP poll answers 401 and the
page says plainly that it no longer watches for STOP, instead of retrying in silence."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import update

from mscbatch.auth.models import AuthSession
from mscbatch.database import utcnow
from tests.browser.conftest import sign_in
from tests.browser.test_review5_ward_browser import _running, _session  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser


def test_an_infusion_page_whose_session_ended_says_it_no_longer_watches_for_stop(page, live_server):  # type: ignore[no-untyped-def]
    live_server.app.config["CUSTODY_STOP_POLL_SECONDS"] = 1  # the ward's default is 20 s
    _ward, infusion_id = _running(live_server)
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/ward/infusions/{infusion_id}")
    expect(page.locator("#infusion-ended")).to_have_text("running")
    page.wait_for_timeout(1_500)
    expect(page.locator("#stop-watch-signed-out")).to_have_count(0)
    session = _session(live_server)
    try:  # signed out elsewhere (or idled out): the server ends the session
        session.execute(update(AuthSession).where(AuthSession.ended_at.is_(None))
                        .values(ended_at=utcnow(), end_reason="logout"))
        session.commit()
    finally:
        session.close()
    note = page.locator("#stop-watch-signed-out")
    expect(note).to_be_visible(timeout=8_000)
    expect(note).to_have_attribute("role", "alert")
    # S39: the page says so in large words and goes on watching for STOP (its watch token, no session)
    expect(note.get_by_role("heading", name="You are signed out.")).to_be_visible()
    expect(note).to_contain_text("This page still watches for STOP")
    expect(note).to_contain_text("Sign in again to record anything")
