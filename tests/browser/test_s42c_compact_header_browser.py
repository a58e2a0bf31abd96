"""Session 42, tablets at 200 % zoom and in portrait. At 640 x 400 CSS px (a 1280 x 800 tablet at 200 %) the header
took half the screen: it is now one row with a Menu button (aria-expanded, aria-controls) opening the navigation,
the user's name and Sign out; without the script every link stays reachable. At 768 px the lot page's passages
table scrolled sideways: each step is now a card, every cell named."""
from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD
from tests.integration.lot_factories import M, approved_adipose_donor, passages, start_lot

pytestmark = pytest.mark.browser

SHOTS = "/tmp/s42c-{}.png"


def _header_height(page: Any) -> float:
    return float(page.evaluate("document.querySelector('header.topbar').getBoundingClientRect().height"))


def _tablet_at_200(browser: Any, **options: Any) -> tuple[Any, Any]:
    """A 1280 x 800 tablet at 200 % zoom: 640 x 400 CSS px drawn with 2 device pixels each."""
    context = browser.new_context(viewport={"width": 640, "height": 400}, device_scale_factor=2, locale="en-GB",
                                  timezone_id="Europe/London", **options)
    context.set_default_timeout(10_000)
    return context, context.new_page()


def test_at_200_percent_zoom_the_header_is_one_row_with_a_menu_button(browser: Any, live_server: Any) -> None:
    from playwright.sync_api import expect

    context, page = _tablet_at_200(browser)
    try:
        sign_in(page, live_server, "technician")
        page.goto(f"{live_server.url}/lots")
        menu = page.get_by_role("button", name="Menu", exact=True)  # the arrow drawn after it is not read out
        expect(menu).to_be_visible()
        expect(menu).to_have_attribute("aria-expanded", "false")
        controlled = menu.get_attribute("aria-controls")
        assert controlled and page.locator(f"#{controlled}").count() == 1
        nav = page.get_by_role("navigation", name="Main")
        expect(nav).to_be_hidden()
        assert _header_height(page) <= 0.25 * 400, _header_height(page)
        page.screenshot(path=SHOTS.format("640x400-menu-closed"))

        menu.click()
        expect(menu).to_have_attribute("aria-expanded", "true")
        expect(nav).to_be_visible()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        expect(page.locator("header .who-name")).to_be_visible()
        page.screenshot(path=SHOTS.format("640x400-menu-open"))
        # every link of the open menu takes the keyboard's focus, in order after the button
        links = nav.get_by_role("link").all()
        assert links
        page.keyboard.press("Tab")
        for link in links:
            assert link.evaluate("a => a === document.activeElement"), link.inner_text()
            page.keyboard.press("Tab")
        # Escape closes it and gives the focus back to the button
        links[0].focus()
        page.keyboard.press("Escape")
        expect(menu).to_have_attribute("aria-expanded", "false")
        assert menu.evaluate("b => b === document.activeElement")
        expect(nav).to_be_hidden()

        menu.click()  # and Sign out from the open menu signs out
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(f"{live_server.url}/login*")
    finally:
        context.close()


def test_on_a_wide_screen_the_menu_is_open_and_its_button_hidden(browser: Any, live_server: Any) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 800}, device_scale_factor=1, locale="en-GB")
    page = context.new_page()
    try:
        sign_in(page, live_server, "technician")
        expect(page.get_by_role("button", name="Menu")).to_be_hidden()
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        assert _header_height(page) <= 0.17 * 800, _header_height(page)  # at most two rows: the links, then who and Sign out
        page.set_viewport_size({"width": 640, "height": 400})  # zoomed in on the page already open: folded
        expect(page.get_by_role("button", name="Menu")).to_be_visible()
        expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
        page.set_viewport_size({"width": 1280, "height": 800})  # and back: open again
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()
        expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    finally:
        context.close()


def test_without_the_script_every_link_is_reachable_in_one_row(browser: Any, live_server: Any) -> None:
    from playwright.sync_api import expect

    context, page = _tablet_at_200(browser, java_script_enabled=False)
    try:
        page.goto(f"{live_server.url}/login")
        page.get_by_label("User name").fill("technician")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{live_server.url}/")
        expect(page.get_by_role("button", name="Menu")).to_be_hidden()
        nav = page.get_by_role("navigation", name="Main")
        expect(nav).to_be_attached()
        assert _header_height(page) <= 0.25 * 400, _header_height(page)
        for link in [*nav.get_by_role("link").all(), page.get_by_role("button", name="Sign out")]:
            link.focus()
            assert link.evaluate("e => e === document.activeElement")
            link.scroll_into_view_if_needed()
            box = link.bounding_box()
            assert box is not None and 0 <= box["x"] and box["x"] + box["width"] <= 640 + 1, box
    finally:
        context.close()


def test_the_passages_table_fits_a_portrait_tablet(page: Any, live_server: Any) -> None:
    session = live_server.app.extensions["mscbatch.db"].new_session()
    try:
        lot_id = start_lot(session, approved_adipose_donor(session))
        passages(session, lot_id, [(2 * M, 16 * M), (14 * M, 110 * M), (10 * M, 70 * M)])
    finally:
        session.close()
    page.set_viewport_size({"width": 768, "height": 1024})
    sign_in(page, live_server, "technician")
    page.goto(f"{live_server.url}/lots/{lot_id}")
    table = page.locator("table.steps")
    sizes = table.evaluate("t => [t.scrollWidth, t.clientWidth, document.documentElement.scrollWidth,"
                           " document.documentElement.clientWidth, t.closest('section').scrollWidth,"
                           " t.closest('section').clientWidth]")
    assert sizes[0] <= sizes[1] and sizes[2] <= sizes[3] and sizes[4] <= sizes[5], sizes  # nothing scrolls sideways
    width = sizes[3]
    cells = table.locator("tbody [data-label]").all()
    assert len(cells) == 4 * 10  # the isolation and three passages, ten named cells each
    for cell in cells:
        box = cell.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box
        label = cell.evaluate("c => getComputedStyle(c, '::before').content")
        assert label == f'"{cell.get_attribute("data-label")}: "', label
    page.locator("#process").screenshot(path=SHOTS.format("lot-768-passages"))
    page.locator("figure.plot").screenshot(path=SHOTS.format("lot-768-pd-chart"))
    page.screenshot(path=SHOTS.format("lot-768"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})  # on a desktop it stays a table
    assert table.evaluate("t => getComputedStyle(t).display") == "table"
