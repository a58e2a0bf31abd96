"""Review s35 in real Chromium, at a tablet's size: after a wrong password for the second person the bedside page
still says MATCHES (the check's result) and, right under it, in the verdict itself and in the first screen, an amber
"NOT CONFIRMED YET: nothing was signed." legible at WCAG AA (4.5:1 at least)."""
from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, sign_in
from tests.browser.test_ward_browser import _scan
from tests.conftest import PASSWORD
from tests.integration.test_custody_support import prescribed_bag

pytestmark = pytest.mark.browser

LUMINANCE = """(el) => {
  const lum = (rgb) => { const c = rgb.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number).map(v => v / 255)
      .map(v => v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4));
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]; };
  const style = getComputedStyle(el);
  const [a, b] = [lum(style.color), lum(style.backgroundColor)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}"""


def test_a_refused_confirmation_reads_not_confirmed_yet_under_the_matches(page: Any, live_server: Any) -> None:
    session = live_server.app.extensions["mscbatch.db"].new_session()
    try:
        ward = prescribed_bag(session)
    finally:
        session.close()
    page.set_viewport_size({"width": 768, "height": 1024})
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/ward")
    _scan(page, ward.wristband)
    expect(page.locator("#scan-status")).to_contain_text("Wristband scanned")
    _scan(page, ward.token)
    expect(page.get_by_role("heading", name="MATCHES")).to_be_visible()
    expect(page.locator("#not-confirmed-yet")).to_have_count(0)

    page.get_by_label("You, who scanned: your password").fill(PASSWORD)
    page.get_by_label("Second person: user name").fill("nurse2")
    page.get_by_label("Second person: password").fill("not-the-password")
    page.get_by_role("button", name="Sign: we both checked the bag against the wristband").click()

    expect(page.locator("#error-summary")).to_contain_text("Not saved")
    expect(page.get_by_role("heading", name="MATCHES")).to_be_visible()
    note = page.locator(".verdict-matches #not-confirmed-yet")
    expect(note).to_contain_text("NOT CONFIRMED YET: nothing was signed.")
    expect(note).to_contain_text("The second person types their user name and password again")
    page.evaluate("window.scrollTo(0, 0)")
    box = note.bounding_box()
    assert box is not None and box["y"] + box["height"] <= 1024, box  # in the first screen, without scrolling
    assert note.evaluate(LUMINANCE) >= 4.5
    link_on_note = LUMINANCE.replace("style.backgroundColor", "getComputedStyle(el.parentElement).backgroundColor")
    assert note.locator("a").evaluate(link_on_note) >= 4.5
    page.screenshot(path=str(ARTIFACTS / "s35-ward-not-confirmed.png"), full_page=False)

    # the second try, with the right password: confirmed, and the note is gone
    page.get_by_label("You, who scanned: your password").fill(PASSWORD)
    page.get_by_label("Second person: user name").fill("nurse2")
    page.get_by_label("Second person: password").fill(PASSWORD)
    page.get_by_role("button", name="Sign: we both checked the bag against the wristband").click()
    expect(page.get_by_role("heading", name="Two-person check confirmed")).to_be_visible()
    expect(page.locator("#not-confirmed-yet")).to_have_count(0)
