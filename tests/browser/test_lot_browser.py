"""A technician records a lot from an eligible donor in a real browser: collection, isolation, passages,
harvest, cryopreservation into 4 bags with their DINs, and places the bags in a box (issue 4). The donor and
the storage tree are set up through the services first, as the demo does."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from mscbatch.site import site_today
from tests.browser.conftest import ARTIFACTS, sign_in
from tests.integration.lot_factories import approved_adipose_donor, box

pytestmark = pytest.mark.browser


def option_value(page, number: int) -> str:  # type: ignore[no-untyped-def]
    return page.locator("#store-bag_id option", has_text=f"bag {number} of 4 ").get_attribute("value")


def test_a_technician_records_a_lot_through_cryopreservation_into_4_bags_stored_in_a_box(page, live_server):
    with live_server.app.app_context():
        session = live_server.app.extensions["mscbatch.db"].new_session()
        try:
            donor_id = approved_adipose_donor(session, days_ago=13)  # the lot below is collected 14 days ago
            box_id = box(session, rows=4, columns=4)
        finally:
            session.close()
    start = site_today() - timedelta(days=14)
    sign_in(page, live_server, "technician")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Lots").click()
    page.get_by_role("link", name="Start a lot").click()
    page.get_by_label("Donor").select_option(str(donor_id))
    page.get_by_label("Product").select_option("AT-MSC")
    page.get_by_label("Collection date and time (site time)").fill(f"{start.isoformat()}T09:30")
    page.get_by_label("Collection site").fill("Theatre 3")
    page.get_by_label("Tissue amount").fill("52.5")
    page.get_by_role("button", name="Start lot").click()
    expect(page.get_by_role("status")).to_contain_text(re.compile(r"Lot MSC-\d{4}-\d{4} started\."))
    lot_number = re.search(r"MSC-\d{4}-\d{4}", page.get_by_role("heading", level=1).inner_text()).group(0)  # type: ignore[union-attr]

    page.get_by_label("Isolation date").fill(start.isoformat())
    page.get_by_role("button", name="Record isolation").click()
    expect(page.get_by_role("status")).to_contain_text("Isolation recorded.")
    for number, (seeded, harvested, viability) in enumerate([("2", "16", "96"), ("4", "130", "94.5")]):
        page.get_by_label("Harvest date of the passage").fill((start + timedelta(days=5 * (number + 1))).isoformat())
        page.get_by_label("Cells seeded (x10^6 cells)").fill(seeded)
        page.get_by_label("Cells harvested (x10^6 cells)").fill(harvested)
        page.locator("#passage-viability_percent").fill(viability)
        page.get_by_label("Days in culture").fill("5")
        page.get_by_role("button", name="Record passage").click()
        expect(page.get_by_role("status")).to_contain_text(f"Passage P{number} recorded")
    expect(page.locator("table.steps")).to_contain_text("8.02")  # 3.00 + log2(32.5) = 5.02 (harvest 120 of the 130 counted)
    expect(page.locator("svg.pd-plot")).to_be_visible()

    yesterday = (site_today() - timedelta(days=1)).isoformat()  # fixed hours today could lie in the future
    page.get_by_label("Harvest date and time (site time)").fill(f"{yesterday}T08:00")
    page.get_by_label("Total cells (x10^6 cells)").fill("120")
    page.locator("#harvest-viability_percent").fill("92")
    page.get_by_role("button", name="Record harvest").click()
    expect(page.locator("#viable-cells")).to_have_text("110.4 x10^6")

    page.get_by_label("Freezing date and time (site time)").fill(f"{yesterday}T09:00")
    page.get_by_label("Number of bags").fill("4")
    page.get_by_label("Volume per bag (mL)").fill("25")
    page.get_by_label("Viable cells per mL (x10^6 cells)").fill("1.1")
    page.get_by_role("button", name="Cryopreserve").click()
    expect(page.get_by_role("status")).to_contain_text("Cryopreserved into 4 bags; DINs allocated.")
    bags = page.locator("table.bags tbody tr")
    expect(bags).to_have_count(4)
    expect(bags.nth(1)).to_contain_text("bag 2 of 4")
    expect(bags.nth(1).locator(".k-box")).to_have_text(re.compile(r"^[0-9A-Z*]$"))

    for number, position in zip(range(1, 5), ("A1", "A2", "A3", "A4"), strict=True):
        expect(page.get_by_label("Bag", exact=True)).to_have_value(option_value(page, number))  # next unplaced
        page.get_by_label("Position (e.g. A1)").fill(position)
        page.get_by_role("button", name="Store bag").click()
        expect(page.get_by_role("status")).to_contain_text(re.compile(rf"Bag stored in Box .+, position {position}\."))
        expect(page.locator(f"tr[data-bag='{number}'] .position")).to_have_text(position)
    page.get_by_label("Bag", exact=True).select_option(option_value(page, 1))
    page.get_by_label("Position (e.g. A1)").fill("A2")  # bag 1 onto bag 2's position: refused, said why
    page.get_by_label("Reason (required for a move)").fill("testing")
    page.get_by_role("button", name="Store bag").click()
    expect(page.get_by_label("Position (e.g. A1)")).to_have_accessible_description(
        re.compile("Position A2 of Box 1 is occupied by bag X9999"))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "lot-page-technician.png"), full_page=True)

    page.goto(f"{live_server.url}/storage/{box_id}")
    expect(page.locator("#occupancy")).to_have_text("4 of 16 positions occupied")
    expect(page.locator("td.slot.occupied")).to_have_count(4)
    expect(page.locator("td[data-position='A3']")).to_contain_text(lot_number)
    page.screenshot(path=str(ARTIFACTS / "box-view.png"), full_page=True)
