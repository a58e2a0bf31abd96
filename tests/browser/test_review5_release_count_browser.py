"""Review 5 (labqa), in a real browser: the technician types the viable cell count in x10^6 cells, as every other
count of the lab record, and QA sees a count above the harvest's viable cells as a release blocker, beside the
manufacturing record's count; the release refusal is said above the form, not under the password field."""
from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from mscbatch.site import site_today
from tests.browser.conftest import ARTIFACTS, sign_in
from tests.integration.test_release_support import seed_quarantine_lot

pytestmark = pytest.mark.browser


def test_a_count_typed_in_millions_above_the_harvest_is_a_blocker_qa_sees(page, live_server, monkeypatch):
    with live_server.app.app_context():
        lot_id = seed_quarantine_lot(live_server.app, monkeypatch)  # harvest: 123.42 x10^6 viable cells
    review_url = f"{live_server.url}/release/lots/{lot_id}"
    sign_in(page, live_server, "technician")
    page.goto(review_url)
    one = page.locator("#one-result form")
    one.get_by_label("Test", exact=True).select_option("viable_cell_count")
    one.get_by_label("Value", exact=True).fill("500")
    one.get_by_label("Unit", exact=True).select_option("x10^6 cells")
    one.get_by_label("Analyst").fill("Tom QC")
    one.get_by_label("Test date").fill((site_today() - timedelta(days=1)).isoformat())
    one.get_by_role("button", name="Record result").click()
    expect(page.get_by_role("status")).to_contain_text("Result recorded.")
    row = page.locator("tr[data-test='viable_cell_count']")
    expect(row).to_contain_text("500 x10^6 cells")
    expect(row).to_contain_text("Manufacturing record: 123.42 x10^6 viable cells at harvest")

    page.context.clear_cookies()
    sign_in(page, live_server, "qa")
    page.goto(review_url)
    expect(page.locator("#blocking")).to_contain_text(
        "Viable cell count 500 x10^6 cells is more than the 123.42 x10^6 viable cells of the lot's harvest")
    # session 35: a release the page already knows the service would refuse (here: the count, and every other test
    # still awaited) is not offered: the button is disabled with the reason beside it, nothing to type a password for
    # (a forged post is still refused by the service, above the form: test_review5_release_counts)
    release_form = page.locator("#release-form")
    expect(release_form.get_by_role("button", name="Sign: Released for clinical use")).to_be_disabled()
    expect(page.locator("#release-blocked")).to_contain_text("Cannot be signed yet: see the blockers above.")
    expect(page.locator("#release-password-error")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "review5-release-count-blocker.png"), full_page=True)
