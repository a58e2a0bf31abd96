"""Review 5 (ward) in real Chromium: the session expires while two nurses are on the bedside check. Tapping Sign
lands on Sign in saying the session ended after 15 minutes without activity and that the check was NOT saved;
signing in leads back to the check, where it can be signed."""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import update

from mscbatch.auth.models import AuthSession
from mscbatch.custody.models import TwoPersonCheck
from mscbatch.database import utcnow
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD
from tests.integration.test_custody_support import check, prescribed_bag

pytestmark = pytest.mark.browser


def _session(live_server: Any) -> Any:
    return live_server.app.extensions["mscbatch.db"].new_session()


def test_the_check_signed_after_the_idle_timeout_is_said_not_saved_and_signed_after_signing_in(page, live_server):
    session = _session(live_server)
    try:
        check_id = check(session, prescribed_bag(session)).check_id
    finally:
        session.close()
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/ward/checks/{check_id}")
    page.get_by_label(re.compile("your password", re.I)).first.fill(PASSWORD)
    page.locator("#second_username").fill("nurse2")
    page.locator("#second_password").fill(PASSWORD)

    session = _session(live_server)
    try:  # the nurses talked for 16 minutes before tapping Sign
        session.execute(update(AuthSession).values(last_seen_at=utcnow() - timedelta(minutes=16)))
        session.commit()
    finally:
        session.close()
    page.get_by_role("button", name=re.compile("^Sign: ")).click()

    page.wait_for_url(re.compile(r"/login\?next=%2Fward%2Fchecks%2F\d+$|/login\?next=/ward/checks/\d+$"))
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Your session ended after 15 minutes without activity.")
    expect(alert).to_contain_text("What you were doing was NOT saved: sign in again, then do it again.")
    session = _session(live_server)
    try:
        assert session.get(TwoPersonCheck, check_id).second_checker_id is None
    finally:
        session.close()

    page.get_by_label("User name").fill("nurse")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/ward/checks/{check_id}")
    page.get_by_label(re.compile("your password", re.I)).first.fill(PASSWORD)
    page.locator("#second_username").fill("nurse2")
    page.locator("#second_password").fill(PASSWORD)
    page.get_by_role("button", name=re.compile("^Sign: ")).click()
    page.wait_for_url(f"{live_server.url}/ward/checks/{check_id}")
    expect(page.get_by_role("button", name=re.compile("^Sign: "))).to_have_count(0)
    session = _session(live_server)
    try:
        assert session.get(TwoPersonCheck, check_id).second_checker_id is not None
    finally:
        session.close()
