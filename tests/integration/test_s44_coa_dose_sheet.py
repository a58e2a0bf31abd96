"""The demo's PDFs as a reviewer read them (S44), through the web path:

1. A cancelled prescription's dose sheet invited a bedside check (a blank signature table, alone on a page with no
   patient, prescription or page number): it now says the prescription was cancelled and nothing is to be given,
   and every page of every dose sheet names the patient, the prescription and "page x of y".
2. A completed course's dose sheet left the bedside table blank though both people's check is recorded: it prints
   who checked and who confirmed each bag, and when (site time, UTC beside it).
3. The certificate printed the "* value changed after first entry" legend with no value marked.
4. The recalled lot's certificate said only that no decision is in force for its donor: it now prints the approval
   the lot was released under, superseded since, and by what (the late reactive result behind the lookback).
"""
from __future__ import annotations

import io

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from mscbatch.auth.models import User
from mscbatch.core.identifiers import din_shown
from mscbatch.custody.models import Infusion, TwoPersonCheck
from mscbatch.demo import seed_demo
from mscbatch.donors.models import DonorLookback, EligibilityDecision, ScreeningResult
from mscbatch.lots.models import Bag, Lot
from mscbatch.patients.models import Patient, Prescription
from mscbatch.recall.models import Recall
from mscbatch.release.demo import DEMO_PASSWORD
from mscbatch.signatures.models import Signature
from mscbatch.site import local_and_utc
from tests.conftest import login


@pytest.fixture
def demo(app):  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    try:
        seed_demo(session, hash_profile="fast")
        session.rollback()
        app.config["S44_DEMO_SESSION"] = session
        yield session
    finally:
        session.close()


def _client(app, username: str):  # type: ignore[no-untyped-def]
    _release_reads(app)
    client = app.test_client()
    assert login(client, username, DEMO_PASSWORD).status_code == 302
    return client


def _release_reads(app) -> None:  # type: ignore[no-untyped-def]
    """The test's own reads end before each request: SQLite's lock would refuse the request's writes (sign-in)."""
    session = app.config.get("S44_DEMO_SESSION")
    if session is not None:
        session.rollback()


def _pages(client, url: str) -> list[str]:  # type: ignore[no-untyped-def]
    _release_reads(client.application)
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:1000]
    return [" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(response.data)).pages]


def test_a_cancelled_prescription_sheet_says_nothing_is_to_be_given_and_every_page_says_whose_it_is(
        app, demo):  # type: ignore[no-untyped-def]
    cancelled = demo.scalar(select(Prescription).where(Prescription.status == "cancelled"))
    assert cancelled is not None
    code = demo.get(Patient, cancelled.patient_id).code
    pages = _pages(_client(app, "clinician"), f"/patients/prescriptions/{cancelled.id}/dose-sheet.pdf")
    text = " ".join(pages)
    assert "Bedside check (two qualified people)" not in text, text
    assert "Second person" not in text
    assert (f"This prescription CANCELLED on {local_and_utc(cancelled.cancelled_at)}" in text
            and "no bag of it was given and nothing is to be given. No bedside check." in text), text
    for number, page in enumerate(pages, start=1):
        assert f"Dose sheet - patient {code} - prescription {cancelled.id}" in page, page
        assert f"page {number} of {len(pages)}" in page, page


def test_every_page_of_an_active_sheet_says_whose_it_is_and_keeps_the_blank_box(app, demo):  # type: ignore[no-untyped-def]
    clinician = _client(app, "clinician")
    prescriptions = list(demo.scalars(select(Prescription).order_by(Prescription.id)))
    active = [p for p in prescriptions if p.status == "active"]
    assert active
    for rx in prescriptions:
        code = demo.get(Patient, rx.patient_id).code
        pages = _pages(clinician, f"/patients/prescriptions/{rx.id}/dose-sheet.pdf")
        for number, page in enumerate(pages, start=1):
            assert f"Dose sheet - patient {code} - prescription {rx.id}" in page, page
            assert f"page {number} of {len(pages)}" in page, page
    first = " ".join(_pages(clinician, f"/patients/prescriptions/{prescriptions[0].id}/dose-sheet.pdf"))
    if prescriptions[0].status == "active" and "COMPLETED" not in first:  # the demo's first course: to give
        assert "Bedside check (two qualified people)" in first and "Second person" in first


def test_a_completed_sheet_prints_who_checked_and_confirmed_each_bag_and_when(app, demo):  # type: ignore[no-untyped-def]
    checks = list(demo.scalars(select(TwoPersonCheck).where(TwoPersonCheck.second_checker_id.is_not(None))
                               .order_by(TwoPersonCheck.id)))
    assert checks, "the demo records confirmed bedside checks"
    clinician = _client(app, "clinician")
    for check in checks:
        infusion = demo.scalar(select(Infusion).where(Infusion.check_id == check.id))
        assert infusion is not None
        rx = next(p for p in demo.scalars(select(Prescription).where(
            Prescription.patient_id == infusion.patient_id)))
        first, second = demo.get(User, check.checked_by_id), demo.get(User, check.second_checker_id)
        bag = demo.get(Bag, check.bag_id)
        text = " ".join(_pages(clinician, f"/patients/prescriptions/{rx.id}/dose-sheet.pdf"))
        assert "Bedside check recorded (two qualified people)" in text, text
        assert f"Bag {din_shown(bag)}: wristband, bag DIN and prescription match (checked)" in text, text
        row = f"(checked) {first.full_name} {local_and_utc(check.checked_at)} e-signed (check {check.id})"
        assert row in text, (row, text)
        row = f"Second person (confirmed) {second.full_name} {local_and_utc(check.confirmed_at)} e-signed (check {check.id})"
        assert row in text, (row, text)
        assert "Bedside check (two qualified people)" not in text, "no blank box: nothing is left to check"


def test_the_recalled_lots_certificate_prints_the_approval_it_was_released_under_and_why_it_was_superseded(
        app, demo):  # type: ignore[no-untyped-def]
    recall = demo.scalar(select(Recall).where(Recall.scope == "donor"))
    assert recall is not None
    lot = demo.scalar(select(Lot).where(Lot.donor_id == recall.donor_id, Lot.status == "recalled"))
    decision = demo.scalar(select(EligibilityDecision).where(EligibilityDecision.donor_id == lot.donor_id,
                                                             EligibilityDecision.superseded_at.is_not(None)))
    signature = demo.scalar(select(Signature).where(Signature.entity_type == "donor_eligibility_decision",
                                                    Signature.entity_id == str(decision.id)))
    lookback = demo.scalar(select(DonorLookback).where(DonorLookback.superseded_decision_id == decision.id))
    result = demo.get(ScreeningResult, lookback.triggering_result_id)
    text = " ".join(_pages(_client(app, "qa"), f"/release/lots/{lot.id}/certificate.pdf"))
    assert (f"Superseded donor eligibility decision {decision.id} (in force when the lot was released): "
            f"{decision.meaning} — signed by {signature.printed_name}, {local_and_utc(signature.signed_at)}; "
            f"SUPERSEDED (reopened) on {local_and_utc(decision.superseded_at)}: "
            f"{' '.join(decision.superseded_reason.split()).rstrip('.')}.") in text, text
    assert (f"Lookback {lookback.id} opened {local_and_utc(lookback.opened_at)}" in text
            and f"on the late result Anti-HIV-1/2 {result.result} ({result.method}, sample {result.sample_date}, "
                f"lab reference {result.lab_reference}" in text), text


def test_the_changed_value_legend_is_printed_only_when_a_value_is_marked(app, demo):  # type: ignore[no-untyped-def]
    qa = _client(app, "qa")
    for lot_id in demo.scalars(select(Lot.id).order_by(Lot.id)):
        text = " ".join(_pages(qa, f"/release/lots/{lot_id}/certificate.pdf"))
        marked = " *" in text.replace("* value changed", "")
        assert ("* value changed after first entry" in text) == marked, (lot_id, text)
