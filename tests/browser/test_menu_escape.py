"""The compact header's Menu (js/site-menu.js, a ward tablet at 200 % zoom) closed on Escape only while the focus
was inside it: opened, then a tap on the page (the focus on the body) or a Tab past Sign out, and Escape left it
open over the page. Escape now closes an open menu wherever the focus is and gives the focus back to the Menu
button; a closed menu leaves Escape alone (the focus stays where it was, the key is not swallowed)."""
from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser


def _tablet_at_200(browser: Any) -> tuple[Any, Any]:
    """A 1280 x 800 tablet at 200 % zoom: 640 x 400 CSS px, where the header folds behind Menu."""
    context = browser.new_context(viewport={"width": 640, "height": 400}, device_scale_factor=2, locale="en-GB",
                                  timezone_id="Europe/London")
    context.set_default_timeout(10_000)
    return context, context.new_page()


def _focused_is(locator: Any) -> bool:
    return bool(locator.evaluate("e => e === document.activeElement"))


def _open(page: Any) -> tuple[Any, Any]:
    from playwright.sync_api import expect

    menu = page.get_by_role("button", name="Menu", exact=True)
    nav = page.get_by_role("navigation", name="Main")
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(nav).to_be_visible()
    return menu, nav


def test_escape_closes_the_open_menu_after_a_tap_on_the_page(browser: Any, live_server: Any) -> None:
    from playwright.sync_api import expect

    context, page = _tablet_at_200(browser)
    try:
        sign_in(page, live_server, "technician")
        menu, nav = _open(page)
        page.locator("main h1").first.click()  # a tap on the page: the focus leaves the button for the body
        assert not _focused_is(menu)
        assert page.evaluate("!document.getElementById('site-menu').contains(document.activeElement)")
        expect(nav).to_be_visible()  # a tap does not close it
        page.keyboard.press("Escape")
        expect(menu).to_have_attribute("aria-expanded", "false")
        expect(nav).to_be_hidden()
        assert _focused_is(menu)
    finally:
        context.close()


def test_escape_closes_the_open_menu_after_tabbing_out_of_it(browser: Any, live_server: Any) -> None:
    from playwright.sync_api import expect

    context, page = _tablet_at_200(browser)
    try:
        sign_in(page, live_server, "technician")
        menu, nav = _open(page)
        sign_out = page.get_by_role("button", name="Sign out")
        sign_out.focus()
        page.keyboard.press("Tab")  # past Sign out, the last control of the menu: out of it
        assert page.evaluate("!document.getElementById('site-menu').contains(document.activeElement)")
        page.keyboard.press("Escape")
        expect(menu).to_have_attribute("aria-expanded", "false")
        expect(nav).to_be_hidden()
        assert _focused_is(menu)
        # on the Menu button itself, once opened again, Escape closes it too
        menu.click()
        expect(nav).to_be_visible()
        assert _focused_is(menu)
        page.keyboard.press("Escape")
        expect(menu).to_have_attribute("aria-expanded", "false")
        expect(nav).to_be_hidden()
    finally:
        context.close()


def test_escape_on_a_closed_menu_is_left_alone(browser: Any, live_server: Any) -> None:
    from playwright.sync_api import expect

    context, page = _tablet_at_200(browser)
    try:
        sign_in(page, live_server, "technician")
        menu = page.get_by_role("button", name="Menu", exact=True)
        expect(menu).to_have_attribute("aria-expanded", "false")
        # what a later listener sees of the key: not cancelled, not stopped
        page.evaluate("window.escapes = []; window.addEventListener('keydown', e => "
                      "window.escapes.push(e.key + ':' + e.defaultPrevented))")
        heading = page.locator("main h1").first
        heading.evaluate("h => { h.tabIndex = -1; h.focus(); }")
        page.keyboard.press("Escape")
        expect(menu).to_have_attribute("aria-expanded", "false")
        assert _focused_is(heading)  # the focus is not pulled to the Menu button
        assert page.evaluate("window.escapes") == ["Escape:false"]
    finally:
        context.close()
