"""A technician registers a cord donation and enters its screening in a real browser; QA sees the
checklist all green and signs the eligibility with password re-entry (issue 3)."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from mscbatch.donors.queries import rule_sets
from mscbatch.site import site_today
from tests.browser.conftest import ARTIFACTS, PASSWORD, sign_in

pytestmark = pytest.mark.browser


def test_a_technician_enters_a_donor_and_its_screening_and_qa_signs_the_checklist(page, live_server):
    collection, sample = site_today() - timedelta(days=1), site_today() - timedelta(days=2)
    sign_in(page, live_server, "technician")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Donors").click()
    page.get_by_role("link", name="Register a donor").click()
    page.get_by_label("Tissue source and protocol").select_option("cord_eu")
    page.get_by_label("Planned collection (donation) date").fill(collection.isoformat())
    page.get_by_label("Donor initials").fill("AM")
    page.get_by_label("Date of birth").fill("1991-06-30")
    page.get_by_label("Sex", exact=True).select_option("female")
    page.get_by_label("Informed consent signed").select_option("yes")
    page.get_by_label("Consent date").fill((site_today() - timedelta(days=40)).isoformat())
    page.get_by_role("button", name="Register donor").click()
    expect(page.get_by_role("status")).to_contain_text(re.compile(r"Donor D-\d{4}-\d{4} registered"))
    code = re.search(r"D-\d{4}-\d{4}", page.get_by_role("heading", level=1).inner_text()).group(0)  # type: ignore[union-attr]
    expect(page.locator("#engine-status")).to_have_text("pending")

    for marker in (m for m in rule_sets()["cord_eu"].markers if m.required):
        page.get_by_label("Marker").select_option(marker.id)
        page.get_by_label("Negative").check()
        page.get_by_label("Sample date").fill(sample.isoformat())
        page.get_by_label("Laboratory report reference").fill(f"BIO-{marker.id}")
        page.get_by_role("button", name="Record result").click()
        expect(page.get_by_role("status")).to_contain_text(f"Result recorded: {marker.name} ({marker.method}) negative")
    for radio in page.locator("ol.questions input[value=no]").all():
        radio.check()
    page.get_by_role("button", name="Save answers").click()
    questions = len(rule_sets()["cord_eu"].questions)  # "no" to the mother's HTLV origin too: the test is not required
    expect(page.get_by_role("status")).to_contain_text(f"Questionnaire saved ({questions} answers recorded)")
    expect(page.locator("#engine-status")).to_have_text("eligible")
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, live_server, "qa")
    page.goto(f"{live_server.url}/donors?q={code}")
    page.get_by_role("link", name=code).click()
    checklist = page.locator("table.checklist")
    expect(checklist.locator("tr.check-green")).to_have_count(len(list(rule_sets()["cord_eu"].criteria())) - 1)
    expect(checklist.locator("tr.check-red, tr.check-grey")).to_have_count(0)
    expect(page.get_by_text("1991-06-30")).to_be_visible()  # QA sees the identity fields
    page.get_by_label("Donor eligibility approved").check()
    page.get_by_label("Your password (electronic signature)").fill("not-my-password")
    page.get_by_role("button", name="Sign", exact=True).click()
    expect(page.get_by_label("Your password (electronic signature)")).to_have_accessible_description(
        re.compile("Signature refused: wrong password"))
    page.get_by_label("Donor eligibility approved").check()
    page.get_by_label("Your password (electronic signature)").fill(PASSWORD)
    page.get_by_role("button", name="Sign", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Signed: Donor eligibility approved")
    expect(page.locator(".signature")).to_contain_text(re.compile(r"Signed: Qa, \d{4}-\d\d-\d\d \d\d:\d\d [A-Z]+ \((?:\d{4}-\d\d-\d\d )?\d\d:\d\d UTC\), "
                                                                  r"“Donor eligibility approved”"))
    expect(page.locator(".donor-state")).to_contain_text("approved")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "donor-page-qa.png"), full_page=True)
