"""Review 9, release page "Enter one result" in a real browser: the unit starts at "choose the unit", choosing a test
chooses its own unit (static/js/result-unit.js, no inline script under the CSP), and the endotoxin result "< 0.05"
is recorded at the first try; a unit left unchosen is refused naming the unit."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from mscbatch.site import site_today
from tests.browser.conftest import sign_in
from tests.integration.test_release_support import seed_quarantine_lot

pytestmark = pytest.mark.browser


def test_choosing_the_test_chooses_its_unit_and_the_endotoxin_result_is_recorded(page, live_server, monkeypatch):
    with live_server.app.app_context():
        lot_id = seed_quarantine_lot(live_server.app, monkeypatch)
    sign_in(page, live_server, "technician")
    page.goto(f"{live_server.url}/release/lots/{lot_id}")
    one = page.locator("#one-result form")
    test, unit = one.get_by_label("Test", exact=True), one.get_by_label("Unit", exact=True)
    expect(unit).to_have_value("")  # not "%" whatever the test
    test.select_option("endotoxin")
    expect(unit).to_have_value("EU/mL")
    test.select_option("sterility")
    expect(unit).to_have_value("none")
    test.select_option("viability")
    expect(unit).to_have_value("%")
    test.select_option("")
    expect(unit).to_have_value("")

    # left unchosen: refused, naming the unit and the test's own
    test.select_option("endotoxin")
    unit.select_option("")
    one.get_by_label("Value", exact=True).fill("< 0.05")
    one.get_by_label("Analyst").fill("Tom QC")
    one.get_by_label("Test date").fill(site_today().isoformat())
    one.get_by_role("button", name="Record result").click()
    expect(page.locator("#result-unit-error")).to_contain_text("Unit: choose the unit of the result")
    expect(page.locator("#result-unit-error")).to_contain_text("Endotoxin is reported in EU/mL")

    one = page.locator("#one-result form")
    one.get_by_label("Test", exact=True).select_option("endotoxin")  # the script chooses EU/mL again
    expect(one.get_by_label("Unit", exact=True)).to_have_value("EU/mL")
    one.get_by_label("Analyst").fill("Tom QC")
    one.get_by_label("Test date").fill(site_today().isoformat())
    one.get_by_role("button", name="Record result").click()
    expect(page.get_by_role("status")).to_contain_text("Result recorded.")
    expect(page.locator("tr[data-test='endotoxin'] td").nth(1)).to_contain_text("< 0.05 EU/mL")
