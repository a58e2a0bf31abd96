"""Session 37, a ward nurse's review, in real Chromium:

4. on /ward, a wristband scanned, then a bag QR read cut short ("X999926000005P.RELLG" + Enter): the page's script
   took the cut text for a wristband (its bag pattern wanted 10 characters after the dot) and replaced the real one.
   A bag number followed by a dot goes to the bag field; the check runs and the server says the scan was not read;
2. a start refused on a bag scan cut short: NOT STARTED in the first screen, above the check's MATCHES, the bag field
   emptied and focused for the next scan;
5. the reaction form's "Onset" box (datetime-local, 17rem) ran past its card at 800 px in 200 px grid columns and
   hid the time's end: it stays whole and inside its card at 800 px and on a 360 px phone."""
from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, sign_in
from tests.browser.test_review5_ward_browser import _running
from tests.browser.test_ward_browser import RESCAN, RESCAN_BAG, _confirm_as_nurse2, _prepared, _scan

pytestmark = pytest.mark.browser

NOT_READ_WORDS = "The bag scan was not read: scan the bag's label again"


def test_a_bag_qr_read_cut_short_goes_to_the_bag_field_never_over_the_wristband(page: Any, live_server: Any) -> None:
    (ward,) = _prepared(live_server, 1)
    cut = ward.token[:20]  # "X999926000005P.RELLG"
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/ward")
    is_bag = {text: page.evaluate("(t) => mscbatchIsBag(t)", text)
              for text in (cut, ward.token[:15], ward.token, ward.wristband, "WB-100234", "SLE-UC-001")}
    assert is_bag == {cut: True, ward.token[:15]: True, ward.token: True, ward.wristband: False, "WB-100234": False,
                      "SLE-UC-001": False}, is_bag
    _scan(page, ward.wristband)
    expect(page.locator("#scan-status")).to_contain_text("Wristband scanned")
    _scan(page, cut)  # the bag field: both are filled, and the check runs
    expect(page.get_by_role("heading", name="STOP")).to_be_visible()
    expect(page.locator("#bag-not-identified")).to_contain_text("The bag was not identified: scan its label again.")
    failures = page.locator("ul.failures")
    expect(failures).to_contain_text(NOT_READ_WORDS)
    expect(failures).not_to_contain_text("wristband is not known")  # the wristband scanned was kept, and known
    expect(failures).not_to_contain_text("Call the cell therapy unit")


def test_a_start_refused_on_a_cut_bag_scan_says_not_started_first(page: Any, live_server: Any) -> None:
    (ward,) = _prepared(live_server, 1)
    page.set_viewport_size({"width": 768, "height": 1024})  # a ward tablet in portrait
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/ward")
    _scan(page, ward.wristband)
    _scan(page, ward.token)
    _confirm_as_nurse2(page)
    page.get_by_label(RESCAN).fill(ward.wristband)
    page.get_by_label(RESCAN_BAG).fill(ward.token[:20])
    page.get_by_role("button", name="Start infusion").click()

    block = page.locator("#start-refused")
    expect(block.get_by_role("heading", name="NOT STARTED")).to_be_visible()
    expect(block).to_contain_text(NOT_READ_WORDS)
    expect(page.locator("#not-started")).to_contain_text("NOT STARTED: the infusion was not started.")
    bag_field = page.get_by_label(RESCAN_BAG)
    expect(bag_field).to_have_value("")  # the refused text is not there to be sent again
    expect(bag_field).to_be_focused()  # the scanner's next read goes there
    expect(page.get_by_label(RESCAN)).to_have_value(ward.wristband)
    page.evaluate("window.scrollTo(0, 0)")
    word = block.get_by_role("heading", name="NOT STARTED").bounding_box()
    matches = page.get_by_role("heading", name="MATCHES").bounding_box()
    assert word is not None and matches is not None and word["y"] + word["height"] <= 1024, word  # first screen
    assert word["y"] < matches["y"], (word, matches)  # above the check's MATCHES
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != "rgb(10, 107, 44)"  # not the green
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "s37-ward-start-not-started.png"), full_page=True)

    # scanned again, the whole code: started
    bag_field.fill(ward.token)
    page.get_by_role("button", name="Start infusion").click()
    expect(page.locator("#infusion-ended")).to_have_text("running")


@pytest.mark.parametrize("width", [800, 360])
@pytest.mark.parametrize("locale", ["en-GB", "en-US"])  # en-US: 12-hour, "12/05/2026, 09:58 PM", the widest
def test_the_reaction_onset_box_stays_whole_inside_its_card(browser: Any, live_server: Any, width: int,
                                                            locale: str) -> None:
    _ward, infusion_id = _running(live_server)
    context = browser.new_context(viewport={"width": width, "height": 900}, locale=locale,
                                  timezone_id="Europe/London")
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        sign_in(page, live_server, "nurse")
        page.goto(f"{live_server.url}/ward/infusions/{infusion_id}")
        onset = page.get_by_label("Onset (when the reaction began)")
        onset.fill("2026-12-05T21:58")
        measured = onset.evaluate("""(el) => {
          const card = el.closest('section'), field = el.closest('.field'), style = getComputedStyle(card);
          const box = el.getBoundingClientRect(), c = card.getBoundingClientRect(), f = field.getBoundingClientRect();
          return {right: box.right, left: box.left, width: box.width, fieldRight: f.right,
                  cardInner: c.right - parseFloat(style.borderRightWidth) - parseFloat(style.paddingRightWidth || style.paddingRight),
                  rem: parseFloat(getComputedStyle(document.documentElement).fontSize),
                  pageWidth: document.documentElement.scrollWidth, view: window.innerWidth};
        }""")
        assert measured["right"] <= measured["cardInner"] + 0.5, measured  # inside its card, its end in view
        assert measured["right"] <= measured["fieldRight"] + 0.5, measured  # and inside its own column
        assert measured["width"] >= 17 * measured["rem"] - 0.5, measured  # as wide as a 12-hour time needs
        assert measured["pageWidth"] <= measured["view"], measured  # nothing pushed off the screen
        if width == 800 and locale == "en-US":
            ARTIFACTS.mkdir(exist_ok=True)
            page.locator("#reactions").screenshot(path=str(ARTIFACTS / "s37-ward-reaction-onset-800.png"))
    finally:
        context.close()
