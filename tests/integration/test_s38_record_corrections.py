"""Printouts and QA's review show whether the manufacturing record changed after first entry (EU GMP Annex 11 8.2;
DOMAIN.md section 9), on SQLite and PostgreSQL: a passage corrected on the lot page (15 -> 14 x10^6 cells
harvested at P0) is listed, with its old and new values, who, when and why, on the release review page QA signs
from, on the certificate of analysis and on the lot's trace PDF; a bag's content corrected in quarantine after QA
opened the review page refuses the signature posted from it (release.release.page_fingerprint)."""
from __future__ import annotations

import html
import io
from typing import Any

from pypdf import PdfReader
from sqlalchemy import func, select

from mscbatch.lots import corrections
from mscbatch.lots.models import Bag, Lot, ProcessStep
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import LotDisposition
from tests.conftest import PASSWORD
from tests.integration.test_release_support import seed_quarantine_lot, user
from tests.integration.test_s37_release_seen import seen

HEADING = "Manufacturing record corrected after first entry"
REASON = "P0 count copied from the wrong line: 14 & not 15 <sheet 3>"


def _pdf_text(pdf: bytes) -> str:
    return " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(pdf)).pages)


def _in_process_p0(app: Any) -> tuple[int, int, str]:
    """The demo cord lot in process with its P0 (2 -> 15 x10^6 cells): lot id, P0's id, lot number."""
    with app.extensions["mscbatch.db"].new_session() as session:
        p0 = session.scalar(select(ProcessStep).join(Lot, Lot.id == ProcessStep.lot_id).where(
            Lot.status == "in_process", ProcessStep.kind == "passage", ProcessStep.harvested_cells == 15_000_000))
        lot = session.get(Lot, p0.lot_id)
        assert p0.harvested_cells == 15_000_000, p0.harvested_cells
        return lot.id, p0.id, lot.lot_number


def test_s38_a_passage_corrected_is_listed_on_the_review_page_the_certificate_and_the_trace_pdf(  # type: ignore[no-untyped-def]
        app, users, monkeypatch, client_as):
    seed_quarantine_lot(app, monkeypatch)
    lot_id, p0, number = _in_process_p0(app)
    qa, tech = client_as("qa"), client_as("technician")
    untouched = html.unescape(qa.get(f"/release/lots/{lot_id}").get_data(as_text=True))
    assert f"{HEADING}: none" in untouched
    with app.extensions["mscbatch.db"].new_session() as session:
        step = session.get(ProcessStep, p0)
        form = {f"fix{p0}-performed_on": step.performed_on.isoformat(), f"fix{p0}-seeded_cells": "2",
                f"fix{p0}-harvested_cells": "14", f"fix{p0}-viability_percent": str(step.viability_percent),
                f"fix{p0}-days_in_culture": str(step.days_in_culture or ""), f"fix{p0}-reason": REASON}
    done = tech.post(f"/lots/{lot_id}/passages/{p0}/correction", data=form)
    assert done.status_code == 302, done.get_data(as_text=True)[:3000]

    page = qa.get(f"/release/lots/{lot_id}")
    assert page.status_code == 200
    raw = page.get_data(as_text=True)
    assert "<sheet 3>" not in raw  # escaped
    section = html.unescape(raw.split('id="record-corrections"')[1].split("</section>")[0])
    assert f"{HEADING}: 1 correction" in section, section
    assert "Passage P0 corrected by Technician" in section and REASON in section, section
    assert "cells harvested 15 x10^6 cells → 14 x10^6 cells" in section, section
    assert "UTC" in section  # local time with UTC

    coa = qa.get(f"/release/lots/{lot_id}/certificate.pdf")
    assert coa.status_code == 200
    text = _pdf_text(coa.data)
    assert f"{HEADING}: 1 correction" in text, text
    assert "Passage P0" in text and "14 & not 15 <sheet 3>" in text, text
    assert "15 x10^6 cells -> 14 x10^6 cells" in text, text

    trace = qa.get(f"/trace/lots/{lot_id}.pdf")
    assert trace.status_code == 200
    text = _pdf_text(trace.data)
    assert f"Lot {number}" in text and f"{HEADING}: 1 correction" in text, text
    assert "Passage P0" in text and "14 & not 15 <sheet 3>" in text and "15 x10^6 cells -> 14 x10^6 cells" in text


def test_s38_a_bag_corrected_in_quarantine_after_qa_opened_the_page_refuses_the_signature(  # type: ignore[no-untyped-def]
        app, users, monkeypatch, client_as):
    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id)
    qa = client_as("qa")
    shown = seen(qa, lot_id)
    assert shown["seen"]
    assert f"{HEADING}: none" in _pdf_text(qa.get(f"/release/lots/{lot_id}/certificate.pdf").data)
    with app.extensions["mscbatch.db"].new_session() as session:
        bag = session.scalar(select(Bag).where(Bag.lot_id == lot_id).order_by(Bag.bag_number))
        corrections.correct_bag_content(session, user(session, "technician"), lot_id, bag.id,
                                        volume_ml=bag.volume_ml, cells_per_ml=bag.cells_per_ml - 100_000,
                                        dmso_percent=bag.dmso_percent, reason="cells per mL misread")
        session.commit()
    refused = qa.post(f"/release/lots/{lot_id}/release", data={"action": "release", "release-password": PASSWORD,
                                                                 **shown})
    text = html.unescape(refused.get_data(as_text=True))
    assert refused.status_code == 409, text[:3000]
    assert ("The lot's record changed since you opened this page (its manufacturing record's corrections after "
            "first entry changed): review it again; nothing was signed") in text, text[:3000]
    assert f"{HEADING}: 1 correction" in text and "Bag 1 of" in text and "cells per mL misread" in text
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Lot, lot_id).status == "quarantine"
        assert session.scalar(select(func.count()).select_from(LotDisposition)) == 0
    signed = qa.post(f"/release/lots/{lot_id}/release", data={"action": "release", "release-password": PASSWORD,
                                                                **seen(qa, lot_id)})
    assert signed.status_code == 302, signed.get_data(as_text=True)[:3000]
    text = _pdf_text(qa.get(f"/release/lots/{lot_id}/certificate.pdf").data)
    assert f"{HEADING}: 1 correction" in text and "cells per mL misread" in text, text


def test_s38_the_review_page_leads_qa_to_the_lots_whole_audit_trail(app, users, client_as,  # type: ignore[no-untyped-def]
                                                                    monkeypatch):
    """The inspector's review: no link led from the release review to the lot's audit trail; QA (who may read the
    trail) now has one, to the trail filtered to the lot and everything of it; a technician is not offered it."""
    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        number = session.get(Lot, lot_id).lot_number
    page = client_as("qa").get(f"/release/lots/{lot_id}").get_data(as_text=True)
    link = f'href="/audit?lot={number}" id="lot-trail-link"'
    assert link in page, page[:2000]
    trail = client_as("qa").get(f"/audit?lot={number}")
    assert trail.status_code == 200 and number in trail.get_data(as_text=True)
    assert 'id="lot-trail-link"' not in client_as("technician").get(f"/release/lots/{lot_id}").get_data(as_text=True)
