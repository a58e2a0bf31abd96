"""Session 42b in real Chromium set to a US locale (the picker shows mm/dd/yyyy and AM/PM): the reaction onset is
said back beside the field on the 24-hour clock with the site zone's name for that day (js/clock-words.js), and a
time the clocks skipped or went over twice is said so, as the server will refuse it. Screenshot:
test-artifacts/s42b-onset-clock-words.png."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from mscbatch.custody import infusions
from tests.browser.conftest import ARTIFACTS, sign_in
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag

pytestmark = pytest.mark.browser


@pytest.fixture
def us_page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1024, "height": 768}, locale="en-US",
                                  timezone_id="America/New_York")
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def test_the_onset_is_said_back_on_the_24_hour_clock_with_the_sites_zone(us_page: Any, live_server: Any) -> None:
    session = live_server.app.extensions["mscbatch.db"].new_session()
    try:
        ward = prescribed_bag(session)
        checked_and_confirmed(session, ward)
        infusion_id = infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                               bag_scan=ward.token, label_key=KEY).id
    finally:
        session.close()
    page = us_page
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/ward/infusions/{infusion_id}")
    onset, words = page.locator("#onset_at"), page.locator("#onset_at-words")
    expect(words).to_be_hidden()  # nothing typed: nothing said
    onset.fill("2026-12-06T21:58")  # the picker shows 12/06/2026 09:58 PM here
    expect(words).to_have_text("= 21:58 CET, Sun 6 Dec 2026 (24-hour clock)")
    expect(words).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    onset.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "s42b-onset-clock-words.png"))
    onset.fill("2026-07-01T09:58")
    expect(words).to_have_text("= 09:58 CEST, Wed 1 Jul 2026 (24-hour clock)")
    onset.fill("2026-10-25T02:30")
    expect(words).to_have_text("= 02:30, Sun 25 Oct 2026: this time happens twice in Europe/Paris (the clocks went "
                               "back): 02:30 CEST first, then 02:30 CET an hour later. Recording it asks which")
    onset.fill("2026-03-29T02:30")
    expect(words).to_have_text("= 02:30, Sun 29 Mar 2026: this time does not exist in Europe/Paris (the clocks went "
                               "forward an hour): check the time")
    onset.fill("")
    expect(words).to_be_hidden()
