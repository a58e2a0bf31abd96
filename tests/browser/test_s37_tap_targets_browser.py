"""Accessibility pass, session 37: the links a nurse taps on the ward's "Bags out of the unit now" cards and in an
infusion's record (lot, patient) were 20 px tall, the brand link 32 px and the shortest top-bar links under 44 px
wide: each is now a 44 px target (WCAG 2.5.5). A date field keeps its focus ring while the focus is on its
calendar button."""
from __future__ import annotations

from typing import Any

import pytest

from mscbatch.custody import infusions
from tests.browser.conftest import sign_in
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag

pytestmark = pytest.mark.browser


def _tall(page: Any, selector: str) -> None:
    links = page.locator(selector).all()
    assert links, f"no link matches {selector}"
    for link in links:
        box = link.bounding_box()
        assert box is not None and box["height"] >= 44, (selector, link.inner_text(), box)


def test_the_ward_and_infusion_links_and_the_top_bar_are_44_px_targets(page: Any, live_server: Any) -> None:
    session = live_server.app.extensions["mscbatch.db"].new_session()
    try:
        out = prescribed_bag(session, state="received")  # a bag on the ward: a card of "Bags out of the unit now"
        given = prescribed_bag(session)
        checked_and_confirmed(session, given)
        infusion = infusions.start_infusion(session, user(session, "nurse"), given.bag_id, wristband=given.wristband,
                                            bag_scan=given.token, label_key=KEY)
        infusion_id = infusion.id
    finally:
        session.close()
    assert out.bag_id
    page.set_viewport_size({"width": 800, "height": 1280})
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/ward")
    _tall(page, "table.row-cards td a")
    _tall(page, "a.brand")
    for link in page.locator(".mainnav a").all():
        box = link.bounding_box()
        assert box is not None and box["width"] >= 44 and box["height"] >= 44, (link.inner_text(), box)
    page.goto(f"{live_server.url}/ward/infusions/{infusion_id}")
    _tall(page, ".infusion-record dd a")


def test_a_date_field_keeps_its_focus_ring_on_its_calendar_button(page: Any, live_server: Any) -> None:
    sign_in(page, live_server, "qa")
    page.goto(f"{live_server.url}/audit")
    field = page.locator("input[type=date][name=from]")
    field.focus()
    states = []
    for _ in range(4):  # through the day, month and year parts, then the calendar button inside the field
        states.append(page.evaluate("""() => { const f = document.querySelector('input[type=date][name=from]');
            return [document.activeElement === f, f.matches(':focus-visible'),
                    getComputedStyle(f).outlineStyle + ' ' + getComputedStyle(f).outlineWidth]; }"""))
        page.keyboard.press("Tab")
    on_field = [state for state in states if state[0]]
    assert on_field and all(state[2] == "solid 3px" for state in on_field), states
