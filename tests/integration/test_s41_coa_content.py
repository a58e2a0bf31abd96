"""The certificate of analysis as a QP reads it (S41 QA review, items 1 and 2).

1. An informative result that misses its informative limit (potency 19.9 % against >= 20 %) printed a blue
   "INFORMATIVE" alone, while the review page said "does not meet its informative limit": the certificate now says
   "INFORMATIVE – does not meet >= 20 %", from the same judgement (core.verdicts.judge_test's meets_limit).
2. The certificate left out the content of each bag (DIN with its check character, cells, volume, cells/mL,
   DMSO %), the culture summary (passage at harvest, cumulative population doublings, harvest viability), QA's
   signed donor eligibility decision (who, when, rule set) and the number of pages ("page x" alone): all printed now,
   and only what the record holds.
"""
from __future__ import annotations

import io

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from mscbatch.core.culture import format_cells
from mscbatch.core.identifiers import din_shown
from mscbatch.donors.models import EligibilityDecision
from mscbatch.lots.models import Bag, Lot, ProcessStep
from mscbatch.signatures.models import Signature
from mscbatch.site import local_and_utc, site_today
from tests.integration.test_release_support import seed_quarantine_lot


@pytest.fixture
def lot_id(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    return seed_quarantine_lot(app, monkeypatch)


def _pages(client, lot_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    pdf = client.get(f"/release/lots/{lot_id}/certificate.pdf")
    assert pdf.status_code == 200
    return [" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(pdf.data)).pages]


def _text(client, lot_id: int) -> str:  # type: ignore[no-untyped-def]
    return " ".join(_pages(client, lot_id))


def _enter(client, lot_id: int, test_id: str, value: str, unit: str) -> None:  # type: ignore[no-untyped-def]
    response = client.post(f"/release/lots/{lot_id}/results", data={
        "result-test_id": test_id, "result-value": value, "result-unit": unit, "result-analyst": "Tom QC",
        "result-tested_on": site_today().isoformat()})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]


def test_an_informative_result_below_its_limit_says_so_on_the_certificate_as_on_the_review_page(
        client_as, lot_id):  # type: ignore[no-untyped-def]
    _enter(client_as("technician"), lot_id, "potency_pbmc", "19.9", "%")
    qa = client_as("qa")
    review = " ".join(qa.get(f"/release/lots/{lot_id}").get_data(as_text=True).split())
    assert "does not meet its informative limit" in review
    text = _text(qa, lot_id)
    assert "INFORMATIVE – does not meet >= 20 %" in text, text
    assert "19.9" in text


def test_an_informative_result_within_its_limit_prints_informative_alone(client_as, lot_id):  # type: ignore[no-untyped-def]
    _enter(client_as("technician"), lot_id, "potency_pbmc", "48", "%")
    text = _text(client_as("qa"), lot_id)
    assert "INFORMATIVE" in text and "does not meet" not in text


def test_the_certificate_gives_each_bag_the_culture_and_the_donor_decision(app, client_as, lot_id):  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        lot = session.get(Lot, lot_id)
        bags = list(session.scalars(select(Bag).where(Bag.lot_id == lot_id).order_by(Bag.bag_number)))
        last = session.scalars(select(ProcessStep).where(ProcessStep.lot_id == lot_id, ProcessStep.kind == "passage")
                               .order_by(ProcessStep.id.desc())).first()
        decision = session.scalars(select(EligibilityDecision).where(
            EligibilityDecision.donor_id == lot.donor_id, EligibilityDecision.superseded_at.is_(None))
            .order_by(EligibilityDecision.id.desc())).first()
        signature = session.scalar(select(Signature).where(Signature.entity_type == "donor_eligibility_decision",
                                                           Signature.entity_id == str(decision.id)))
        viability, total = lot.harvest_viability_percent, lot.harvest_total_cells
        facts = (last.label, last.cumulative_pd, decision.id, decision.meaning, decision.ruleset_id,
                 decision.ruleset_version, signature.printed_name, local_and_utc(signature.signed_at))
    assert bags and viability is not None
    label, cumulative, decision_id, meaning, ruleset, version, signer, signed_at = facts
    text = _text(client_as("qa"), lot_id)

    assert "Content of each bag" in text
    assert "Bag DIN and check character Cells in the bag Volume Cells per mL DMSO" in text
    for bag in bags:
        row = (f"{bag.bag_number} of {bag.bag_count} {din_shown(bag)} {format_cells(bag.total_cells)} cells "
               f"{bag.volume_ml} mL {format_cells(bag.cells_per_ml)}/mL {bag.dmso_percent} %")
        assert row in text, (row, text)

    assert (f"Culture: passage at harvest {label}; cumulative population doublings {cumulative}; harvest viability "
            f"{viability} % ({format_cells(total)} cells harvested") in text, text

    assert f"Donor eligibility decision {decision_id}: {meaning} — signed by {signer}, {signed_at}" in text, text
    assert f"with rule set {ruleset} version {version} (sha256 " in text


def test_a_lot_in_process_says_what_is_not_recorded_yet_and_invents_nothing(app, client_as, lot_id):  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:  # the demo cord lot: P0, donor pending
        cord = session.scalar(select(Lot.id).where(Lot.status == "in_process", Lot.product_id == "UC-MSC"))
    assert cord is not None
    text = _text(client_as("qa"), cord)
    assert "Culture: last passage recorded P0;" in text and "harvest not recorded yet." in text, text
    assert "Donor eligibility decision: no signed decision of QA in force for donor" in text
    assert "Content of each bag" not in text and "Bags (0), DIN and check character: none yet" in text


def test_every_page_says_page_x_of_y(client_as, lot_id):  # type: ignore[no-untyped-def]
    pages = _pages(client_as("qa"), lot_id)
    assert len(pages) > 1
    for number, text in enumerate(pages, start=1):
        assert f"page {number} of {len(pages)}" in text, text
