"""Review 8, the README walk-through clicked on a ward tablet (768 x 1024, portrait): what it showed wrong.

- An infusion given beyond its prescription is flagged MORE THAN PRESCRIBED on the infusion page and on the
  patient's page. The flag sits in a line of text, and as an inline box it broke across two lines with its red bar
  on the first piece only and its padding painted over the "12.5 mL prescribed" line above it.
- The clinician's dose page wrote a partial draw "12.5 mL" beside whole bags' "25.00 mL", in the same column, and the
  signed prescription then says "12.50 mL" for the same draw."""
from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from mscbatch.custody import infusions
from tests.browser.conftest import sign_in
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag

pytestmark = pytest.mark.browser

TABLET_PORTRAIT = {"width": 768, "height": 1024}


def _given_beyond_its_prescription(live_server: Any) -> tuple[int, int]:
    """A partial-draw bag (12.5 mL prescribed of its 25 mL) given at 20 mL, with the nurse's reason: (infusion, patient)."""
    session = live_server.app.extensions["mscbatch.db"].new_session()
    try:
        ward = prescribed_bag(session, last=True)
        checked_and_confirmed(session, ward)
        nurse = user(session, "nurse")
        infusion = infusions.start_infusion(session, nurse, ward.bag_id, wristband=ward.wristband,
                                            bag_scan=ward.token, label_key=KEY)
        infusions.end_infusion(session, nurse, infusion.id, volume_ml="20",
                               reason="pump programmed for 20 mL by mistake; clinician told")
        return infusion.id, ward.patient_id
    finally:
        session.close()


def _one_box_below(page: Any, flag: Any, above: Any) -> None:
    """The flag is one rectangle (not pieces of a broken line) and starts below the line above it."""
    expect(flag).to_be_visible()
    assert flag.evaluate("el => el.getClientRects().length") == 1, "the flag broke across lines"
    flag_box, above_box = flag.bounding_box(), above.bounding_box()
    assert flag_box is not None and above_box is not None
    assert flag_box["y"] >= above_box["y"] + above_box["height"] - 0.5, (flag_box, above_box)


def test_more_than_prescribed_is_one_box_on_the_infusion_and_the_patient_pages(page, live_server):
    infusion_id, patient_id = _given_beyond_its_prescription(live_server)
    page.set_viewport_size(TABLET_PORTRAIT)
    sign_in(page, live_server, "nurse")

    page.goto(f"{live_server.url}/ward/infusions/{infusion_id}")
    flag = page.locator("#over-prescription")
    expect(flag).to_have_text("MORE THAN PRESCRIBED: tell the clinician")
    _one_box_below(page, flag, page.locator("#prescribed-volume"))

    page.goto(f"{live_server.url}/patients/{patient_id}")
    row = page.locator("table.infusions tbody tr").first
    flag = row.locator(".volume-outside")
    expect(flag).to_have_text("MORE THAN PRESCRIBED")
    _one_box_below(page, flag, row.get_by_text("12.5 mL prescribed"))


def test_the_dose_page_writes_every_draw_with_two_decimals_as_the_signed_prescription_does(page, live_server):
    session = live_server.app.extensions["mscbatch.db"].new_session()
    try:
        tech = user(session, "technician")
        lot_with_bags(session, tech, donor(session, tech))  # three 50 x10^6 bags of 25 mL
        patient_id = patient(session, user(session, "clinician")).id  # 62.5 kg at 2 x10^6/kg: 125 x10^6
    finally:
        session.close()
    sign_in(page, live_server, "clinician")
    page.goto(f"{live_server.url}/patients/{patient_id}/dose")
    draws = page.locator("#draws tbody tr")
    expect(draws).to_have_count(3)
    expect(draws.locator("td:nth-child(4)")).to_have_text(["25.00 mL", "25.00 mL", "12.50 mL"])
    expect(draws.locator("td:nth-child(6)")).to_have_text(["whole bag", "whole bag", "partial draw"])


def test_on_a_tablet_in_portrait_each_infusion_is_a_card_that_does_not_scroll_sideways(page, live_server):
    """At 768 px the infusions table (seven columns) scrolled sideways past the reactions: each infusion is now a
    card, each cell with its column's name, and at a desktop's width it is a table again."""
    _infusion_id, patient_id = _given_beyond_its_prescription(live_server)
    page.set_viewport_size(TABLET_PORTRAIT)
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/patients/{patient_id}")
    table = page.locator("table.infusions")
    assert table.evaluate("t => t.scrollWidth <= t.clientWidth"), "the infusions scroll sideways"
    assert page.evaluate("document.documentElement.scrollWidth") <= TABLET_PORTRAIT["width"]
    cells = table.locator("tbody tr").first.locator("td")
    labels = cells.evaluate_all("tds => tds.map(td => getComputedStyle(td, '::before').content)")
    assert labels == ['"Bag: "', '"Lot: "', '"Started: "', '"Ended: "', '"Volume: "', '"Who: "',
                      '"Reactions (CTCAE): "'], labels
    reactions = cells.nth(6).bounding_box()
    assert reactions is not None and reactions["x"] + reactions["width"] <= TABLET_PORTRAIT["width"]

    page.set_viewport_size({"width": 1280, "height": 900})
    assert cells.first.evaluate("td => getComputedStyle(td).display") == "table-cell"
    expect(table.locator("thead")).to_be_visible()
