"""S40 in real Chromium: the ward page left open on a tablet refreshes its "Infusions running now" by itself, without
a reload (nothing typed is lost). A bag recalled after the page loaded shows STOP THE INFUSION NOW, said once to
screen readers (not at every refresh); an infusion started since shows too; "Updated" moves on. Once the session has
idled out, the page says in words that the list no longer updates."""
from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, sign_in
from tests.browser.test_review5_ward_browser import _running, _session
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user

pytestmark = pytest.mark.browser

#: counts what the live region is given to say, from the page's load on (a STOP said once, not at every refresh)
_COUNT_ANNOUNCEMENTS = """() => {
  window.s40Said = [];
  new MutationObserver(() => {
    const text = document.getElementById("running-announce").textContent.trim();
    if (text) { window.s40Said.push(text); }
  }).observe(document.getElementById("running-announce"), {childList: true, characterData: true, subtree: true});
  window.s40NotReloaded = true;
}"""


def _recall(live_server: Any, lot_id: int) -> None:
    session = _session(live_server)
    try:
        from mscbatch.recall import services as recalls

        recalls.start_recall(session, user(session, "qa"), scope="lot", target_id=lot_id,
                             reason="late positive sterility culture", password=PASSWORD)
    finally:
        session.close()


def test_the_ward_list_shows_a_new_stop_and_a_new_infusion_without_a_reload(page: Any, live_server: Any) -> None:
    live_server.app.config["CUSTODY_WARD_REFRESH_SECONDS"] = 1  # the ward's default is 30 s
    ward, infusion_id = _running(live_server)
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/ward")
    row = page.locator(f"#running-{infusion_id}")
    expect(row).to_contain_text("Running.")
    expect(page.locator("#running-auto")).to_be_visible()  # "updates by itself every 1 seconds"
    page.evaluate(_COUNT_ANNOUNCEMENTS)
    page.locator("#scan").fill("typed, not sent")
    page.wait_for_timeout(1_500)  # a refresh or two: nothing to say yet
    assert page.evaluate("window.s40Said") == []

    _recall(live_server, ward.lot_id)
    stop = page.locator(f"#running-stop-{infusion_id}")
    expect(stop).to_be_visible(timeout=8_000)  # no reload: the page's own refresh
    expect(stop).to_contain_text("STOP THE INFUSION NOW")
    expect(stop).to_contain_text("RECALLED")
    expect(row).to_have_class("running-stop-row")
    announce = page.locator("#running-announce")
    expect(announce).to_contain_text("STOP THE INFUSION NOW: bag")
    expect(announce).to_contain_text("RECALLED")

    later, later_id = _running(live_server)  # another infusion started while the page stays open
    expect(page.locator(f"#running-{later_id}")).to_contain_text("Running.", timeout=8_000)
    page.wait_for_timeout(2_500)  # more refreshes, the STOP still there
    said = page.evaluate("window.s40Said")
    assert len(said) == 1 and said[0].startswith("STOP THE INFUSION NOW: bag"), said  # said once
    assert page.evaluate("window.s40NotReloaded") is True
    expect(page.locator("#scan")).to_have_value("typed, not sent")
    # the STOP first, then the newest
    ids = page.locator("#running-list tbody tr").evaluate_all("rows => rows.map(r => r.id)")
    assert ids == [f"running-{infusion_id}", f"running-{later_id}"], ids
    expect(page.locator("#running-updated")).to_contain_text("Updated")
    expect(page.locator("#running-note")).to_be_hidden()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ward-running-refresh-stop.png"), full_page=True)


def test_the_updated_time_moves_on_and_a_signed_out_list_says_it_no_longer_updates(page: Any,
                                                                                   live_server: Any) -> None:
    app = live_server.app
    app.config["CUSTODY_WARD_REFRESH_SECONDS"] = 1
    _running(live_server)
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/ward")
    stamp = page.locator("#running-updated time")
    first = stamp.get_attribute("datetime")
    page.wait_for_function("first => document.querySelector('#running-updated time').getAttribute('datetime') "
                           "!== first", arg=first, timeout=8_000)
    app.config["IDLE_TIMEOUT_MINUTES"] = 0.02  # about a second: the tablet is left alone and idles out
    note = page.locator("#running-note")
    expect(note).to_be_visible(timeout=10_000)
    expect(note).to_contain_text("You are signed out: this list NO LONGER UPDATES")
    expect(note.get_by_role("link", name="Sign in again")).to_be_visible()
    expect(page.locator("#running-auto")).to_be_hidden()
    app.config["IDLE_TIMEOUT_MINUTES"] = 15
