"""A region that scrolls sideways on a tablet can be reached with the keyboard (WCAG 2.1.1; axe's rule
scrollable-region-focusable, session 44's audit): the donor's screening results, a clinician's release review and a
box map scrolled at 768 px with nothing inside them to focus, so a keyboard user could not read their right side.

On `make run`'s demo data, served as `make run` serves it, read by Chromium at a portrait tablet's width."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mscbatch.lots.models import Lot, StorageLocation
from mscbatch.release.demo import DEMO_PASSWORD
from tests.browser.conftest import LiveServer, sign_in

#: every element of the page's main that scrolls sideways now, and whether a keyboard can reach it (focusable
#: itself, or holding something focusable)
UNREACHABLE_SCROLLERS = """() => [...document.querySelectorAll('main *')].filter(el => {
    const style = getComputedStyle(el);
    if (!['auto', 'scroll'].includes(style.overflowX) || el.scrollWidth <= el.clientWidth + 1) return false;
    if (el.tabIndex >= 0) return false;
    return !el.querySelector('a[href], button, input, select, textarea, [tabindex]:not([tabindex="-1"])');
}).map(el => el.outerHTML.slice(0, 120))"""


def test_what_scrolls_sideways_on_a_tablet_can_be_reached_with_the_keyboard(page: Any, demo_server: LiveServer) -> None:
    with demo_server.app.extensions["mscbatch.db"].new_session() as session:
        donors = sorted({lot.donor_id for lot in session.scalars(select(Lot))})
        lots = list(session.scalars(select(Lot.id)))
        boxes = list(session.scalars(select(StorageLocation.id).where(StorageLocation.kind == "box")))
    page.set_viewport_size({"width": 768, "height": 1024})
    sign_in(page, demo_server, "clinician", DEMO_PASSWORD)
    pages = [f"/donors/{d}" for d in donors] + [f"/release/lots/{lot}" for lot in lots]
    pages += [f"/storage/{box}" for box in boxes]
    scrolled = 0
    for path in pages:
        page.goto(demo_server.url + path)
        assert page.evaluate(UNREACHABLE_SCROLLERS) == [], path
        scrolled += page.evaluate("() => [...document.querySelectorAll('main *')].filter(el => "
                                  "['auto', 'scroll'].includes(getComputedStyle(el).overflowX) && "
                                  "el.scrollWidth > el.clientWidth + 1).length")
    assert scrolled, "nothing scrolled sideways at 768 px: the case under test did not arise"
