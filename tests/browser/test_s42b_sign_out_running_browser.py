"""Session 42b in real Chromium: a nurse pressing Sign out while an infusion they started still runs is reminded
first, with the infusion one tap away ("Back to the ward"); "Sign out anyway" signs out (CSRF on, as served).
Screenshot: test-artifacts/s42b-sign-out-running.png."""
from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from mscbatch.core.identifiers import din_shown
from mscbatch.custody import infusions
from mscbatch.lots.models import Bag
from mscbatch.patients.models import Patient
from tests.browser.conftest import ARTIFACTS, sign_in
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag

pytestmark = pytest.mark.browser


def test_sign_out_with_a_running_infusion_reminds_then_signs_out_anyway(page: Any, live_server: Any) -> None:
    session = live_server.app.extensions["mscbatch.db"].new_session()
    try:
        ward = prescribed_bag(session)
        checked_and_confirmed(session, ward)
        infusion_id = infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                               bag_scan=ward.token, label_key=KEY).id
        din, code = din_shown(session.get(Bag, ward.bag_id)), session.get(Patient, ward.patient_id).code
    finally:
        session.close()
    sign_in(page, live_server, "nurse")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="An infusion you started is still running")).to_be_visible()
    reminder = page.locator("#still-running[role=alert]")
    expect(reminder).to_contain_text(f"An infusion you started is still running: bag {din} for patient {code} since")
    expect(reminder).to_contain_text("Hand it over to a colleague (tell them) or record its end before you leave.")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "s42b-sign-out-running.png"))

    page.get_by_role("link", name="Back to the ward").click()  # still signed in: the infusion's own page
    page.wait_for_url(f"{live_server.url}/ward/infusions/{infusion_id}")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign out anyway").click()
    page.wait_for_url(re.compile(r"/login$"))
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto(f"{live_server.url}/ward")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_sign_out_with_nothing_running_is_one_click(page: Any, live_server: Any) -> None:
    sign_in(page, live_server, "nurse")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/login$"))
    expect(page.get_by_text("You are signed out.")).to_be_visible()
