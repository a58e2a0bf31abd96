"""Session 43, a phone (390 x 844) and a tablet in portrait (768 x 1024). A patient code, a wristband or a lot number
was cut at its hyphen ("SLE-UC-" / "006", "WB-" / "100632", "MSC-" / "2026-" / "0003") and could be misread; on the
phone the patients list hid Wristband and Status, a prescription's bags hid Expiry, Draw, Rate and the bag's use past
the right edge. Each identifier now keeps its line and these tables are cards, every cell named by its column. At
768 px the header's title sat below the first row of links: it stays first, at the top left. A dose level that is
not a number is refused naming the field and the protocol's levels."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mscbatch.patients import withdrawal
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_custody_support import prescribed_bag

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
PORTRAIT_TABLET = {"width": 768, "height": 1024}
SHOTS = Path("/tmp/layout")

#: every identifier printed on these pages, and whether each is on one line (one client rect) and set not to wrap
IDENTIFIERS_JS = """() => [...document.querySelectorAll('main .code, main .din')].map(e => ({
    text: e.textContent.trim(), rects: e.getClientRects().length,
    whiteSpace: getComputedStyle(e).whiteSpace}))"""

#: every cell of a table: its column's name (its data-label, or the words drawn before it: the rate's cell keeps its
#: bare markup), its text and where it is
CELLS_JS = """(selector) => [...document.querySelectorAll(selector + ' tbody td')].map(td => {
    const box = td.getBoundingClientRect();
    const before = getComputedStyle(td, '::before').content;
    return {label: td.dataset.label || before.replace(/^"(.*): "$/, '$1'), before: before,
            text: td.innerText.trim(), left: box.left, right: box.right, width: box.width};
})"""


def _records(live_server: Any) -> dict[str, int]:
    """A patient with a signed prescription (three bags, one a partial draw), one withdrawn, and one enrolled with
    a lot of bags in stock to calculate a dose from."""
    session = live_server.app.extensions["mscbatch.db"].new_session()
    try:
        ward = prescribed_bag(session, state="allocated", code="SLE-UC-906")
        clin, tech = user(session, "clinician"), user(session, "technician")
        gone = patient(session, clin, code="SLE-UC-902")
        withdrawal.withdraw(session, clin, PASSWORD, gone.id, reason="consent withdrawn")
        lot_with_bags(session, tech, donor(session, tech))
        dosed = patient(session, clin, code="SLE-UC-903")
        session.commit()
        return {"prescribed": ward.patient_id, "dosed": dosed.id}
    finally:
        session.close()


def _pages(ids: dict[str, int]) -> dict[str, str]:
    return {"patients": "/patients", "prescription": "/patients/prescriptions/1",
            "dose": f"/patients/{ids['dosed']}/dose"}


def _no_identifier_split(page: Any, where: str) -> list[dict[str, Any]]:
    found = page.evaluate(IDENTIFIERS_JS)
    assert found, f"{where}: no identifier marked .code or .din"
    split = [f for f in found if f["rects"] != 1 or f["whiteSpace"] != "nowrap"]
    assert not split, (where, split)
    return found


def _every_cell_on_screen_and_named(page: Any, selector: str, headers: list[str], where: str) -> list[dict[str, Any]]:
    width = page.evaluate("innerWidth")
    cells = page.evaluate(CELLS_JS, selector)
    assert cells, (where, selector)
    off = [c for c in cells if c["left"] < 0 or c["right"] > width + 0.5 or c["width"] <= 0]
    assert not off, (where, width, off)
    named = {c["label"] for c in cells}
    assert set(headers) <= named, (where, headers, named)  # every column is named on its cell
    unsaid = [c for c in cells if c["label"] and c["before"] != f'"{c["label"]}: "']
    assert not unsaid, (where, unsaid)  # the name is shown beside the value, not only in the markup
    return cells


@pytest.mark.parametrize("viewport", [PHONE, PORTRAIT_TABLET], ids=["phone-390", "tablet-768"])
def test_identifiers_keep_their_line_and_every_column_is_read_without_scrolling(
        browser: Any, live_server: Any, viewport: dict[str, int]) -> None:
    ids = _records(live_server)
    context = browser.new_context(viewport=viewport, locale="en-GB", timezone_id="Europe/London")
    context.set_default_timeout(10_000)
    page = context.new_page()
    SHOTS.mkdir(exist_ok=True)
    try:
        sign_in(page, live_server, "clinician")
        for name, path in _pages(ids).items():
            page.goto(f"{live_server.url}{path}")
            where = f"{name} at {viewport['width']} px"
            page.screenshot(path=str(SHOTS / f"test-{viewport['width']}-{name}.png"), full_page=True)
            assert page.evaluate("document.documentElement.scrollWidth <= innerWidth"), where
            texts = {f["text"] for f in _no_identifier_split(page, where)}
            if name == "patients":
                assert {"SLE-UC-906", "SLE-UC-902", "SLE-UC-903"} <= texts, texts
                assert any(t.startswith("WB-") for t in texts), texts  # the wristbands are marked too
                cells = _every_cell_on_screen_and_named(
                    page, "table.patients", ["Trial patient", "Protocol", "Initials", "Ward", "Wristband", "Status"],
                    where)
                assert any(c["label"] == "Status" and c["text"] == "withdrawn" for c in cells), cells
            elif name == "prescription":
                assert "SLE-UC-906" in texts and any(t.startswith("T-") for t in texts), texts  # code and lot
                cells = _every_cell_on_screen_and_named(
                    page, "#allocated-bags", ["DIN", "Product code", "Lot", "Expiry", "Bag", "Draw", "Infusion rate",
                                              "Cells", "Use"], where)
                uses = [c["text"] for c in cells if c["label"] == "Use"]
                assert "partial draw" in uses, uses
            else:
                assert "SLE-UC-903" in texts and any(t.startswith("T-") for t in texts), texts
                _every_cell_on_screen_and_named(page, "#draws", ["DIN", "Lot", "Bag volume", "Draw", "Cells", "Use"],
                                                where)
    finally:
        context.close()


def test_on_a_desktop_the_tables_keep_their_columns(page: Any, live_server: Any) -> None:
    """Above 800 px nothing changes: the column headings are shown and each row is one line of the table."""
    ids = _records(live_server)
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in(page, live_server, "clinician")
    for path, selector in [("/patients", "table.patients"), ("/patients/prescriptions/1", "#allocated-bags"),
                           (f"/patients/{ids['dosed']}/dose", "#draws")]:
        page.goto(f"{live_server.url}{path}")
        shown = page.evaluate(f"""() => [getComputedStyle(document.querySelector('{selector} thead')).display,
            getComputedStyle(document.querySelector('{selector} tbody tr')).display,
            getComputedStyle(document.querySelector('{selector} tbody td'), '::before').content]""")
        assert shown == ["table-header-group", "table-row", "none"], (path, shown)


def test_at_768_px_the_title_is_first_at_the_top_left_of_the_header(page: Any, live_server: Any) -> None:
    page.set_viewport_size(PORTRAIT_TABLET)
    sign_in(page, live_server, "clinician")
    page.goto(f"{live_server.url}/patients")
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "test-768-header.png"))
    brand, link = page.evaluate("""() => [document.querySelector('header .brand').getBoundingClientRect(),
        document.querySelector('header .mainnav a').getBoundingClientRect()].map(b => ({top: b.top, left: b.left,
        bottom: b.bottom}))""")
    links = page.evaluate("[...document.querySelectorAll('header .mainnav a')].map(a => a.getBoundingClientRect().top)")
    assert len(set(round(t) for t in links)) > 1, links  # the links do wrap at this width: the case under test
    assert brand["top"] <= link["top"] + 0.5, (brand, link)
    assert brand["bottom"] <= link["bottom"] + 0.5 and brand["left"] < link["left"], (brand, link)


def test_a_dose_level_that_is_not_a_number_is_refused_naming_the_field_and_the_levels(
        page: Any, live_server: Any) -> None:
    ids = _records(live_server)
    sign_in(page, live_server, "clinician")
    response = page.goto(f"{live_server.url}/patients/{ids['dosed']}/dose?level=abc")
    assert response is not None and 400 <= response.status < 500, response.status if response else None
    said = page.locator("#settings-error").inner_text()
    assert said == "Dose level: abc is not one of this protocol's dose levels (1, 2, 4 x10^6 cells/kg).", said
