"""A clinician enrols a patient, records a weight, prescribes and prints the dose sheet (issue 6)."""
from __future__ import annotations

import io

import pytest
from playwright.sync_api import expect

from mscbatch.core.identifiers import din_shown
from mscbatch.site import site_today
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD
from tests.integration.patient_factories import SLE_OK, donor, lot_with_bags, user

pytestmark = pytest.mark.browser


def test_a_clinician_enrols_weighs_prescribes_and_prints_the_dose_sheet(live_server, page):
    from pypdf import PdfReader

    session = live_server.app.extensions["mscbatch.db"].new_session()
    tech = user(session, "technician")
    dins = [din_shown(b) for b in lot_with_bags(session, tech, donor(session, tech))]
    session.close()
    sign_in(page, live_server, "clinician")
    page.goto(f"{live_server.url}/patients/new")
    page.get_by_label("Trial protocol").select_option("protocol-sle-uc")
    page.get_by_label("Initials").fill("LM")
    page.get_by_label("Date of birth").fill("1988-06-14")
    page.get_by_label("Sex").select_option("female")
    page.get_by_label("Ward", exact=True).fill("Internal medicine")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name="Patient SLE-UC-001")).to_be_visible()
    page.get_by_role("link", name="Check the enrolment criteria").click()
    for parameter, value in SLE_OK.items():
        field = page.locator(f"[name={parameter}]")
        if value in ("yes", "no"):
            field.select_option(value)
        else:
            field.fill(value)
    page.get_by_role("button", name="Check the criteria").click()
    expect(page.locator("#check-status")).to_have_text("eligible")
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Sign the enrolment").click()
    expect(page.get_by_text("Signed: Patient enrolled in the trial").first).to_be_visible()
    page.get_by_label("Weight (kg)").fill("62.5")
    page.get_by_label("Measured on").fill(site_today().isoformat())
    page.get_by_role("button", name="Record the weight").click()
    page.get_by_role("link", name="Calculate the dose").click()
    expect(page.locator("#target")).to_contain_text("125,000,000")
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Sign the prescription").click()
    expect(page.get_by_text("the bags are allocated")).to_be_visible()
    with page.expect_download() as download:
        page.locator("#dose-sheet-link").click()
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(open(download.value.path(), "rb").read())).pages).split())
    assert "SLE-UC-001" in text and all(din in text for din in dins)
