"""A lab tablet in portrait (768 x 1024) and a phone show every column of a lot's bags, a donor's screening results
and the release review's results (session 44's review: the bags table was 822 px wide in its 686 px card, its
Storage column past the edge; the results hid Entered by and Correct; the release method was clipped). At 800 px
and narrower each row is a card, each cell named by its column (data-label), and its links are a finger's target
(the DIN and "Box B1" links were 19 px tall). A desktop keeps the tables.

On `make run`'s demo data, read by Chromium."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from mscbatch.lots.models import Lot
from mscbatch.release.demo import DEMO_PASSWORD
from tests.browser.conftest import LiveServer, sign_in

TABLES = {"lots": "table.bags", "donors": "table.results", "release": "table.release-tests"}

#: each body cell of the table: its column's name, where it ends against the screen and against its section (the
#: card), and each link's height
MEASURE = """(selector) => {
    const table = document.querySelector(selector);
    if (!table) return null;
    const card = table.closest('section').getBoundingClientRect();
    const cells = [...table.querySelectorAll('tbody th, tbody td')].filter(c => c.getClientRects().length);
    return {
        display: getComputedStyle(table).display,
        scrolls: table.scrollWidth > table.clientWidth + 1,
        cells: cells.map(c => ({label: c.dataset.label ?? null, span: c.colSpan,
                                right: c.getBoundingClientRect().right, card: card.right,
                                text: c.textContent.trim().slice(0, 40)})),
        links: [...table.querySelectorAll('tbody a')].map(a => ({text: a.textContent.trim().slice(0, 40),
                                                                height: a.getBoundingClientRect().height})),
        width: innerWidth,
    };
}"""


def _pages(server: LiveServer) -> dict[str, list[str]]:
    with server.app.extensions["mscbatch.db"].new_session() as session:
        lots = list(session.scalars(select(Lot)))
        return {"lots": [f"/lots/{lot.id}" for lot in lots],
                "donors": [f"/donors/{d}" for d in sorted({lot.donor_id for lot in lots})],
                "release": [f"/release/lots/{lot.id}" for lot in lots]}


def _visit(page: Any, server: LiveServer, username: str, kinds: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    sign_in(page, server, username, DEMO_PASSWORD)
    pages = _pages(server)
    seen = []
    for kind in kinds:
        for path in pages[kind]:
            page.goto(server.url + path)
            measured = page.evaluate(MEASURE, TABLES[kind])
            if measured is not None:
                seen.append((path, measured))
    return seen


@pytest.mark.parametrize("viewport", [{"width": 768, "height": 1024}, {"width": 390, "height": 844}],
                         ids=["tablet-portrait", "phone"])
@pytest.mark.parametrize("username, kinds", [("tech", ("lots", "donors")), ("qa", ("release", "lots"))])
def test_every_column_of_the_tables_is_on_screen_and_its_links_are_tappable(
        page: Any, demo_server: LiveServer, viewport: dict[str, int], username: str, kinds: tuple[str, ...]) -> None:
    page.set_viewport_size(viewport)
    seen = _visit(page, demo_server, username, kinds)
    assert {path.split("/")[1] for path, _ in seen} == set(kinds)
    links = 0
    for path, m in seen:
        assert m["display"] == "block" and not m["scrolls"], path
        for cell in m["cells"]:
            assert cell["right"] <= m["width"] + 0.5, (path, cell)  # on the screen
            assert cell["right"] <= cell["card"] + 0.5, (path, cell)  # and inside its card: nothing to scroll to
            assert cell["label"] or cell["span"] > 1, (path, cell)  # each cell named by its column
        for link in m["links"]:
            assert link["height"] >= 24, (path, link)
            links += 1
    assert links, "no link in these tables: the tap-target case did not arise"


def test_the_lot_bags_hold_the_named_columns_and_the_desktop_keeps_its_tables(page: Any, demo_server: LiveServer) -> None:
    page.set_viewport_size({"width": 768, "height": 1024})
    seen = dict(_visit(page, demo_server, "tech", ("lots", "donors")))
    bags = next(m for path, m in seen.items() if path.startswith("/lots/") and any(
        c["label"] == "Storage" and "position" in c["text"] for c in m["cells"]))
    assert {c["label"] for c in bags["cells"]} == {"Bag, DIN and K", "Product code", "Content", "Expiry", "Status",
                                                   "Storage"}
    results = next(m for path, m in seen.items() if path.startswith("/donors/") and m["links"])
    assert {"Marker", "Method", "Result", "Entered by", "Correct"} <= {c["label"] for c in results["cells"]}
    assert all(link["text"].startswith("Correct") for link in results["links"])

    page.set_viewport_size({"width": 1280, "height": 900})
    for path in list(seen)[:2] + [p for p in _pages(demo_server)["release"][:1]]:
        page.goto(demo_server.url + path)
        kind = "release" if path.startswith("/release/") else path.split("/")[1]
        m = page.evaluate(MEASURE, TABLES[kind])
        assert m["display"] == "table" and not m["scrolls"], path
        assert page.locator(f"{TABLES[kind]} thead").is_visible(), path


@pytest.mark.parametrize("username, kinds", [("tech", ("lots", "donors")), ("qa", ("release", "lots"))])
def test_on_a_touch_tablet_in_landscape_the_tables_links_are_a_fingers_target(
        browser: Any, demo_server: LiveServer, username: str, kinds: tuple[str, ...]) -> None:
    """Session 47: at 1024 px the tables stay tables, and on a touch screen (pointer: coarse) their links are 44 px
    tall (they were 19 px: a bag's DIN, "Box B1", a result's "Correct"). A mouse at the same width keeps them as
    they were."""
    heights = {}
    for touch in (True, False):
        context = browser.new_context(viewport={"width": 1024, "height": 768}, has_touch=touch, locale="en-GB")
        try:
            page = context.new_page()
            seen = _visit(page, demo_server, username, kinds)
            assert {path.split("/")[1] for path, _ in seen} == set(kinds)
            assert all(m["display"] == "table" for _, m in seen)
            heights[touch] = [(path, link) for path, m in seen for link in m["links"]]
        finally:
            context.close()
    assert heights[True], "no link in these tables: the tap-target case did not arise"
    short = [(path, link) for path, link in heights[True] if link["height"] < 44]
    assert not short, short
    assert min(link["height"] for _, link in heights[False]) < 44  # the rule is the finger's, not the width's
