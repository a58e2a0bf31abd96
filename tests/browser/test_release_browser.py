"""QC enters a full release panel in a real browser, QA (who entered nothing) reviews the specification against
the results, signs the release with the password and downloads the certificate of analysis (issue 5). The
approved donor and the quarantined lot (manufacture recorded by the demo technician) are set up through the
services first, as tests/integration/test_release_support.py does."""
from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from mscbatch.release.demo import PASSING_PANEL
from mscbatch.release.specs import FLOW_PANEL
from mscbatch.site import site_today
from tests.browser.conftest import ARTIFACTS, sign_in
from tests.conftest import PASSWORD
from tests.integration.test_release_support import seed_quarantine_lot

pytestmark = pytest.mark.browser

UNIT_CHOICE = {"%": "%", "cells": "x10^6 cells", "EU/mL": "EU/mL", "": "none"}  # the result form's unit select values
SIGNED = re.compile(r"Signed: Qa, \d{4}-\d{2}-\d{2} \d{2}:\d{2} [A-Z]+ \((?:\d{4}-\d{2}-\d{2} )?\d{2}:\d{2} UTC\), “Released for clinical use”")


def _as_typed(value: str, unit: str) -> str:
    """A result as the page takes and shows it: counts in x10^6, as the specification's limits are written."""
    return str(int(value) // 10**6) if unit == "cells" else value


def _spec_tests(live_server, lot_id):  # type: ignore[no-untyped-def]
    """(test id, name, blocking) of every test of the lot's specification, as the review page lists them."""
    from mscbatch.release.review import review_of

    with live_server.app.app_context():
        session = live_server.app.extensions["mscbatch.db"].new_session()
        try:
            review = review_of(session, lot_id, None)
            return review.lot.lot_number, [(t.id, t.name, t.blocking) for t in review.spec.tests]
        finally:
            session.close()


def test_qc_enters_a_full_panel_and_qa_signs_the_release_and_downloads_the_certificate(page, live_server,
                                                                                      monkeypatch):
    from pypdf import PdfReader

    with live_server.app.app_context():
        lot_id = seed_quarantine_lot(live_server.app, monkeypatch)
    lot_number, tests = _spec_tests(live_server, lot_id)
    assert {t for t, _n, _b in tests} == set(PASSING_PANEL)  # the passing values cover the whole specification
    tested_on = (site_today() - timedelta(days=1)).isoformat()
    review_url = f"{live_server.url}/release/lots/{lot_id}"

    # QC: the flow cytometry panel at once, then every other test one by one
    sign_in(page, live_server, "technician")
    page.goto(review_url)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Release review — lot {lot_number}")
    panel = page.locator("#panel form")
    flow_ids = {test_id for _field, test_id, _label in FLOW_PANEL}
    for _field, test_id, label in FLOW_PANEL:
        panel.get_by_label(f"{label} (% positive)").fill(PASSING_PANEL[test_id][0])
    panel.get_by_label("Analyst").fill("Tom QC")
    panel.get_by_label("Test date").fill(tested_on)
    panel.get_by_label("Instrument").fill("FC-1")
    panel.get_by_label("Reagent lot").fill("AB-PANEL-1")
    panel.get_by_label(re.compile(r"^Attachment")).set_input_files(files=[{
        "name": "panel-export.csv", "mimeType": "text/csv", "buffer": b"marker,percent\nCD73,99.1\n"}])
    panel.get_by_role("button", name="Record panel").click()
    expect(page.get_by_role("status")).to_contain_text("Flow cytometry panel recorded (8 markers).")
    expect(page.locator("table.release-tests")).to_contain_text("panel-export.csv")

    for test_id, (value, unit) in PASSING_PANEL.items():
        if test_id in flow_ids:
            continue
        value = _as_typed(value, unit)
        one = page.locator("#one-result form")
        one.get_by_label("Test", exact=True).select_option(test_id)
        one.get_by_label("Value", exact=True).fill(value)
        one.get_by_label("Unit", exact=True).select_option(UNIT_CHOICE[unit])
        one.get_by_label("Analyst").fill("Tom QC")
        one.get_by_label("Test date").fill(tested_on)
        one.get_by_role("button", name="Record result").click()
        expect(page.get_by_role("status")).to_contain_text("Result recorded.")
        expect(page.locator(f"tr[data-test='{test_id}'] td").nth(1)).to_contain_text(value)
    page.get_by_role("button", name="Sign out").click()

    # QA, who entered nothing, reviews: every test side by side with its specification, all passing
    sign_in(page, live_server, "qa")
    page.goto(review_url)
    rows = page.locator("table.release-tests tbody tr")
    expect(rows).to_have_count(len(tests))
    for test_id, name, blocking in tests:
        row = page.locator(f"tr[data-test='{test_id}']")
        expect(row.locator("th")).to_contain_text(name)
        expect(row.locator("td").nth(1)).to_contain_text(_as_typed(*PASSING_PANEL[test_id]))
        expect(row).to_have_class(re.compile(r"\bverdict-pass\b") if blocking
                                  else re.compile(r"\bverdict-(pass|informative)\b"))
    expect(page.locator("#donor-gate")).to_contain_text("approved")
    expect(page.locator("#ready")).to_have_text("Nothing blocks the release.")
    expect(page.locator("#panel")).to_have_count(0)  # QA cannot enter results

    release_form = page.locator("#release-form")
    release_form.get_by_label("Your password (electronic signature)").fill(PASSWORD)
    release_form.get_by_role("button", name="Sign: Released for clinical use").click()
    expect(page.get_by_role("status")).to_contain_text("Lot released for clinical use (signed).")
    disposition = page.locator("#disposition")
    expect(disposition).to_contain_text("Released for clinical use")
    expect(disposition.locator("p.signature")).to_have_text(SIGNED)
    expect(page.locator("#release-form")).to_have_count(0)  # the lot is locked
    expect(page.locator("#blocking li")).to_have_count(0)  # the releaser's own signature is not "manufacture"
    expect(page.locator("header.lot-head .status")).to_have_text("released")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "release-review.png"), full_page=True)

    # the certificate of analysis
    with page.expect_download() as info:
        page.locator("#coa-link").click()
    download = info.value
    assert download.suggested_filename == f"CoA-{lot_number}.pdf"
    with open(download.path(), "rb") as handle:
        pdf = handle.read()
    assert pdf.startswith(b"%PDF")
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    flat = re.sub(r"\s+", " ", text)
    assert lot_number in flat
    for _test_id, name, _blocking in tests:
        assert re.sub(r"\s+", " ", name) in flat, name
    assert "Released for clinical use" in flat
    assert re.search(r"Qa \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} CES?T \((?:\d{4}-\d{2}-\d{2} )?\d{2}:\d{2}:\d{2} UTC\) Released for clinical use", flat), flat[-800:]
