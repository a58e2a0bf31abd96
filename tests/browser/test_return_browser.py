"""QA assesses a bag returned from the ward in a real browser: the list, the bag's page with its time out and
logger, a restock refused for a logger reading warmer than the product's limit (said beside the field), then the
signed restock; the list is empty after."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from mscbatch.core.identifiers import parse_din
from mscbatch.lots.models import Bag
from tests.browser.conftest import ARTIFACTS, sign_in
from tests.conftest import PASSWORD
from tests.integration.test_return_assessment import returned

pytestmark = pytest.mark.browser


def test_qa_puts_a_returned_bag_back_into_stock_with_a_signed_assessment(page, live_server):
    with live_server.app.app_context():
        session = live_server.app.extensions["mscbatch.db"].new_session()
        try:
            ward = returned(session)
            din = session.get(Bag, ward.bag_id).din
            session.commit()
        finally:
            session.close()
    sign_in(page, live_server, "qa")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Returned bags").click()
    shown = parse_din(din).display  # as the bag's label prints it, with K
    expect(page.get_by_role("row", name=shown)).to_contain_text("infusion postponed: fever")
    page.get_by_role("link", name=f"Assess bag {shown}").click()
    expect(page.locator("#return-facts")).to_contain_text("TL-0042")
    page.get_by_label("Back into stock").check()
    page.get_by_label("Warmest logger temperature").fill("-120")
    page.get_by_label("Bag, overwrap and label seen intact").check()
    page.get_by_label("Rationale: what you checked (logger record, bag, label) and why").fill(
        "Logger TL-0042 read from dispatch to return; bag and label intact.")
    page.get_by_label("Your password (electronic signature)").fill(PASSWORD)
    page.get_by_role("button", name="Sign the assessment").click()
    expect(page.locator("#logger_max_c-error")).to_contain_text("cannot go back into stock")
    page.screenshot(path=str(ARTIFACTS / "return-assess-refused.png"), full_page=True)
    page.get_by_label("Warmest logger temperature").fill("-171.5")
    page.get_by_label("Your password (electronic signature)").fill(PASSWORD)
    page.get_by_role("button", name="Sign the assessment").click()
    expect(page.get_by_role("status")).to_contain_text(f"Bag {shown} is back in stock (assessment signed)")
    expect(page.locator("#no-returns")).to_be_visible()
