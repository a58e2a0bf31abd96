"""Review 5 of the ward in real Chromium: an open infusion page shows STOP THE INFUSION NOW by itself when the lot is
recalled (or its donor) while it is open (nothing typed is lost); a refused step leaves no bag code that the
next wristband scan pairs with; a double tap on Receive sends one form; reload and Back after a refused start are
harmless."""
from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from mscbatch.custody import infusions
from tests.browser.conftest import ARTIFACTS, sign_in
from tests.browser.test_ward_browser import _scan
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag

pytestmark = pytest.mark.browser


def _session(live_server: Any) -> Any:
    return live_server.app.extensions["mscbatch.db"].new_session()


def _running(live_server: Any) -> tuple[Any, int]:
    session = _session(live_server)
    try:
        ward = prescribed_bag(session)
        checked_and_confirmed(session, ward)
        infusion = infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                            bag_scan=ward.token, label_key=KEY)
        return ward, infusion.id
    finally:
        session.close()


@pytest.mark.parametrize("scope", ["lot", "donor"])
def test_an_open_infusion_page_shows_stop_the_infusion_now_by_itself(page, live_server, scope):
    """A recall of the lot, or of its donor (which holds every unused bag of the donor's lots), while the nurse
    has the infusion page open and is typing a reaction."""
    live_server.app.config["CUSTODY_STOP_POLL_SECONDS"] = 1  # the ward's default is 20 s
    ward, infusion_id = _running(live_server)
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/ward/infusions/{infusion_id}")
    expect(page.locator("#infusion-ended")).to_have_text("running")
    page.get_by_label("What happened (free text)").fill("flushed, 38.2 C")  # typed while the page is open
    page.wait_for_timeout(1_500)  # a poll or two: nothing to say yet
    expect(page.get_by_text("STOP THE INFUSION NOW")).to_have_count(0)

    session = _session(live_server)
    try:
        from mscbatch.recall import services as recalls

        recalls.start_recall(session, user(session, "qa"), scope=scope,
                             target_id=ward.lot_id if scope == "lot" else ward.donor_id,
                             reason="late positive sterility culture", password=PASSWORD)
    finally:
        session.close()

    alert = page.locator("#stop-running")
    expect(alert).to_be_visible(timeout=8_000)  # no reload: the page's own poll
    expect(alert).to_have_attribute("role", "alert")
    expect(alert).to_have_class("verdict verdict-stop running-stop")
    expect(alert.get_by_role("heading", name="STOP THE INFUSION NOW")).to_be_visible()
    expect(alert).to_contain_text("RECALLED")
    expect(page.locator("body")).to_have_class("infusion-page bedside-stop")
    expect(page.get_by_label("What happened (free text)")).to_have_value("flushed, 38.2 C")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"ward-infusion-stop-{scope}.png"), full_page=True)


def test_a_refused_receive_leaves_no_bag_for_the_next_wristband_scan(page, live_server):
    session = _session(live_server)
    try:
        ward = prescribed_bag(session, state="received")
    finally:
        session.close()
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/ward")
    _scan(page, ward.token)
    page.get_by_role("button", name="Receive on the ward").click()
    expect(page.locator("#error-summary")).to_contain_text("received")
    expect(page.locator("#bag")).to_have_value("")
    _scan(page, ward.wristband)  # the next patient's wristband: no check runs with a code left behind
    expect(page.locator("#scan-status")).to_contain_text("Now scan the bag label")
    page.wait_for_timeout(500)
    expect(page.get_by_role("heading", name="Ward scanning")).to_be_visible()


def test_a_double_tap_on_receive_sends_one_form_and_keeps_its_answer(page, live_server):
    import time

    from flask import request

    @live_server.app.before_request
    def _slow_ward_network() -> None:  # the answer takes a second: the nurse taps again meanwhile
        if request.path == "/ward/event":
            time.sleep(1)

    session = _session(live_server)
    try:
        ward = prescribed_bag(session, state="dispatched")
    finally:
        session.close()
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/ward")
    posts: list[str] = []
    page.on("request", lambda sent: posts.append(sent.url) if sent.method == "POST" else None)
    _scan(page, ward.token)
    page.evaluate("""() => {
        const receive = document.querySelector("button[value=receive]");
        receive.click();
        setTimeout(() => receive.click(), 200);
    }""")
    expect(page.get_by_role("status").filter(has_text="received on the ward")).to_be_visible()
    expect(page.locator("#error-summary")).to_have_count(0)
    assert len(posts) == 1, posts


def test_back_and_reload_after_a_refused_start_are_harmless(page, live_server):
    session = _session(live_server)
    try:
        ward, other = prescribed_bag(session), prescribed_bag(session)
    finally:
        session.close()
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/ward")
    _scan(page, ward.wristband)
    _scan(page, ward.token)
    page.get_by_label("You, who scanned: your password").fill(PASSWORD)
    page.get_by_label("Second person: user name").fill("nurse2")
    page.get_by_label("Second person: password").fill(PASSWORD)
    page.get_by_role("button", name="Sign: we both checked the bag against the wristband").click()
    expect(page.get_by_role("heading", name="Two-person check confirmed")).to_be_visible()
    page.reload()  # the confirmed page is a page: reloading it sends nothing
    expect(page.get_by_role("heading", name="Two-person check confirmed")).to_be_visible()
    expect(page.locator("#error-summary")).to_have_count(0)
    page.get_by_label("Scan the patient's wristband again (on the patient's arm)").fill(other.wristband)
    page.get_by_label("Scan the label of the bag in your hand (QR code, or the DIN with its check character)").fill(
        ward.token)
    page.get_by_role("button", name="Start infusion").click()
    expect(page.get_by_role("alert").first).to_contain_text("WRONG PATIENT")
    page.reload()
    expect(page.get_by_role("alert").first).to_contain_text("WRONG PATIENT")
    page.go_back()
    expect(page.get_by_role("heading", name="Two-person check confirmed")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("ERR_CACHE_MISS")
