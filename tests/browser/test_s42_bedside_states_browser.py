"""Session 42 in real Chromium: a MATCHES not yet confirmed is amber ("NOT YET CONFIRMED"), not the full green of a
confirmed check, and its "Give before" counts down on a page left open, then turns to a STOP-styled "Post-thaw limit
PASSED" without a reload (js/thaw-countdown.js, driven here by Playwright's clock). Screenshots: /tmp/s42-*.png and
test-artifacts/."""
from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, sign_in
from tests.browser.test_ward_browser import _scan
from tests.conftest import PASSWORD
from tests.integration.test_custody_support import prescribed_bag

pytestmark = pytest.mark.browser

TABLET = {"width": 768, "height": 1024}  # a ward tablet held in portrait
#: WCAG contrast of an element's text on the first opaque background behind it (its own or an ancestor's)
CONTRAST = """(el) => {
  const lum = (rgb) => { const c = rgb.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number).map(v => v / 255)
      .map(v => v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4));
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]; };
  let back = el;
  while (back && /rgba\\(.*, 0\\)|transparent/.test(getComputedStyle(back).backgroundColor)) { back = back.parentElement; }
  const [a, b] = [lum(getComputedStyle(el).color), lum(getComputedStyle(back).backgroundColor)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}"""


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"s42-{name}.png"
    page.screenshot(path=str(path), full_page=False)
    shutil.copyfile(path, f"/tmp/s42-{name}.png")


def _background(page: Any, selector: str) -> str:
    return page.locator(selector).evaluate("(el) => getComputedStyle(el).backgroundImage + ' ' + "
                                           "getComputedStyle(el).backgroundColor")


def test_unconfirmed_is_amber_confirmed_is_green_and_the_limit_passes_live(page: Any, live_server: Any) -> None:
    session = live_server.app.extensions["mscbatch.db"].new_session()
    try:
        ward = prescribed_bag(session)  # thawed just now: 60 minutes (config/products.toml)
    finally:
        session.close()
    page.set_viewport_size(TABLET)
    sign_in(page, live_server, "nurse")
    page.clock.install(time=datetime.now(UTC))  # the page's time flows as usual until fast-forwarded
    page.goto(f"{live_server.url}/ward")
    _scan(page, ward.wristband)
    expect(page.locator("#scan-status")).to_contain_text("Wristband scanned")
    _scan(page, ward.token)
    expect(page.get_by_role("heading", name="MATCHES", exact=True)).to_be_focused()

    # before the second person: amber, in words, with the next step and the form right there
    state = page.locator(".verdict-matches #verdict-state")
    expect(state).to_contain_text("NOT YET CONFIRMED")
    expect(state).to_contain_text("a second nurse or clinician must confirm before you start")
    expect(page.get_by_role("heading", name="MATCHES", exact=True)).to_have_attribute("aria-describedby", "verdict-state")
    assert "bedside-matches-pending" in (page.locator("body").get_attribute("class") or "")
    assert "repeating-linear-gradient" in _background(page, "body")
    assert state.locator(".verdict-state-word").evaluate(CONTRAST) >= 4.5
    assert state.evaluate(CONTRAST) >= 4.5
    form_top = page.get_by_label("You, who scanned: your password").bounding_box()
    page.evaluate("window.scrollTo(0, 0)")
    assert form_top is not None
    expect(page.locator("#minutes-left")).to_have_text(re.compile(r"^(59|60) minutes left$"))
    expect(page).to_have_title(re.compile(r"^MATCHES · NOT YET CONFIRMED"))
    _shot(page, "unconfirmed-matches")

    # confirmed: the full green, "CONFIRMED: you may start"
    page.get_by_label("You, who scanned: your password").fill(PASSWORD)
    page.get_by_label("Second person: user name").fill("nurse2")
    page.get_by_label("Second person: password").fill(PASSWORD)
    page.get_by_role("button", name="Sign: we both checked the bag against the wristband").click()
    expect(page.get_by_role("heading", name="Two-person check confirmed")).to_be_visible()
    go = page.locator(".verdict-matches #verdict-state")
    expect(go).to_contain_text("CONFIRMED")
    expect(go).to_contain_text("you may start the infusion")
    expect(go).not_to_contain_text("NOT YET")
    assert "bedside-matches-pending" not in (page.locator("body").get_attribute("class") or "")
    assert _background(page, "body") == "none rgb(10, 107, 44)"  # var(--ok), no stripes
    assert go.evaluate(CONTRAST) >= 4.5
    page.evaluate("window.scrollTo(0, 0)")
    _shot(page, "confirmed-matches")

    # a page left open: the minutes count down, without a reload
    before = page.locator("#minutes-left").inner_text()
    page.clock.fast_forward("10:00")
    expect(page.locator("#minutes-left")).to_have_text(re.compile(r"^(49|50) minutes left$"))
    assert page.locator("#minutes-left").inner_text() != before
    page.clock.fast_forward("49:00")
    expect(page.locator("#minutes-left")).to_have_text(re.compile(r"^(less than 1 minute|1 minute) left$"))
    expect(page.locator("#thaw-passed")).to_be_hidden()

    # and past the limit: STOP-styled words, in the line and at the top of the verdict, without a reload
    page.clock.fast_forward("02:00")
    line = page.locator("#give-before")
    expect(line).to_contain_text("Post-thaw limit PASSED at")
    expect(line).to_contain_text("Do not give this bag. Scan it again, or call the cell therapy unit.")
    expect(page.locator("#give-before-term")).to_have_text("Post-thaw limit")
    expect(page.locator("#minutes-left")).to_have_count(0)
    top = page.locator(".verdict-matches #thaw-passed[role=alert]")
    expect(top).to_be_visible()
    expect(top).to_contain_text("Post-thaw limit PASSED at")
    expect(page.locator("#verdict-state")).to_be_hidden()  # "you may start" no longer shows
    # the green MATCHES no longer reads as a go at a glance: struck through, greyed, its tick hidden
    heading = page.get_by_role("heading", name="MATCHES", exact=True)
    assert "line-through" in heading.evaluate("(el) => getComputedStyle(el).textDecorationLine")
    assert heading.evaluate("(el) => getComputedStyle(el).color") == "rgb(85, 85, 85)"
    expect(page.locator(".verdict-matches .verdict-icon")).to_be_hidden()
    # and a screen reader hears the limit passed with the heading, not the hidden "you may start"
    expect(heading).to_have_attribute("aria-describedby", "thaw-passed")
    expect(heading).to_have_accessible_description(re.compile(r"^✖? ?Post-thaw limit PASSED at"))
    assert "bedside-thaw-passed" in (page.locator("body").get_attribute("class") or "")
    assert _background(page, "body") == "none rgb(164, 14, 38)"  # var(--stop)
    # only the colour of the page changes: not its layout (the block's own style is not the body's)
    assert page.locator("body").evaluate("(el) => getComputedStyle(el).textAlign + getComputedStyle(el).padding") \
        == "start0px"
    assert top.evaluate(CONTRAST) >= 4.5 and line.locator(".thaw-passed-word").evaluate(CONTRAST) >= 4.5
    expect(page).to_have_title(re.compile(r"^STOP · "))
    page.evaluate("window.scrollTo(0, 0)")
    _shot(page, "passed-deadline")
    line.scroll_into_view_if_needed()
    _shot(page, "passed-deadline-line")

    # the tablet's clock only measures the time gone by since the page was served: reloaded now, with the tablet's
    # clock 61 minutes ahead of the server's (only the page's clock was moved), the page counts from the server's
    # deadline and the server's time again, not from the tablet's reading of the hour
    page.reload()
    expect(page.locator("#minutes-left")).to_have_text(re.compile(r"^(58|59) minutes left$"))
    expect(page.locator("#thaw-passed")).to_be_hidden()
