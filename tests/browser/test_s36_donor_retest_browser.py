"""The donor form offers "Negative retest 180 days" only for a protocol whose sample window the retest widens
(session 36): the page's script shows and hides it as the technician changes the protocol, and a date typed in
another format is kept in its field with the format to use."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser

RETEST = "Negative retest 180 days after donation documented"


def test_the_retest_field_follows_the_protocol_chosen(page, live_server):
    sign_in(page, live_server, "technician")
    page.goto(f"{live_server.url}/donors/new")
    retest = page.get_by_label(RETEST)
    protocol = page.get_by_label("Tissue source and protocol")
    protocol.select_option("cord_eu")
    expect(retest).to_be_hidden()
    protocol.select_option("adipose_at_don")
    expect(retest).to_be_visible()
    expect(page.locator("#retest-field")).to_contain_text("-30 to +7 days")
    protocol.select_option("marrow_ssc_bm")
    expect(retest).to_be_hidden()


def test_a_date_typed_in_another_format_is_kept_and_its_format_said(page, live_server):
    sign_in(page, live_server, "technician")
    page.goto(f"{live_server.url}/donors/new")
    page.get_by_label("Tissue source and protocol").select_option("cord_eu")
    page.evaluate("document.getElementById('consent_date').type = 'text'")  # typed without the date picker
    page.get_by_label("Consent date").fill("31/02/2026")
    page.get_by_role("button", name="Register donor").click()
    consent = page.get_by_label("Consent date")
    expect(consent).to_have_value("31/02/2026")
    expect(page.locator("#consent_date-error")).to_contain_text("type it as YYYY-MM-DD")
