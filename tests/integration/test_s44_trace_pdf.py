"""S44: the traceability PDFs (/trace/*.pdf) and the recall report on the demo's data (`make run`: seed-demo), on
SQLite and PostgreSQL: a completed prescription in the patient page's words, the allocation's instant as the pages
say it (site time, UTC beside), "page x of y" and the report's title on every page, no stray line above the lot's
corrections, and tables inside the right margin."""
from __future__ import annotations

import io
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_raw
import pytest
from pypdf import PdfReader
from reportlab.lib.units import mm
from sqlalchemy import select

from mscbatch.lots.models import Bag, Lot, ReagentLot
from mscbatch.patients.course import COMPLETED_WORDS, course_summaries
from mscbatch.patients.models import Allocation, Patient, Prescription
from mscbatch.recall.models import Recall
from mscbatch.site import local_and_utc
from tests.conftest import login

DEMO_PASSWORD = "mscbatch-demo"
MARGIN = 12 * mm


@pytest.fixture
def demo(app):  # type: ignore[no-untyped-def]
    """The demo's data (what `make run` serves) and a client signed in as its QA."""
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    client = app.test_client()
    assert login(client, "qa", DEMO_PASSWORD).status_code == 302
    return client


def _session(app: Any) -> Any:
    return app.extensions["mscbatch.db"].new_session()


def _pages(pdf: bytes) -> list[str]:
    return [" ".join((page.extract_text() or "").split()) for page in PdfReader(io.BytesIO(pdf)).pages]


def _get_pdf(client: Any, url: str) -> bytes:
    response = client.get(url)
    assert response.status_code == 200 and response.mimetype == "application/pdf", url
    return bytes(response.data)


def _trace_urls(app: Any) -> list[str]:
    session = _session(app)
    try:
        patients = list(session.scalars(select(Allocation.patient_id).distinct()))
        lots = list(session.scalars(select(Lot.id)))
        reagents = list(session.scalars(select(ReagentLot.id)))
        donors = list(session.scalars(select(Lot.donor_id).distinct()))
    finally:
        session.close()
    return ([f"/trace/patients/{i}.pdf" for i in sorted(patients)] + [f"/trace/lots/{i}.pdf" for i in sorted(lots)]
            + [f"/trace/reagents/{i}.pdf" for i in sorted(reagents)] + [f"/trace/donors/{i}.pdf" for i in sorted(donors)])


def test_s44_a_completed_course_is_said_as_the_patient_page_says_it(app, demo):  # type: ignore[no-untyped-def]
    session = _session(app)
    try:
        prescriptions = list(session.scalars(select(Prescription).order_by(Prescription.id)))
        courses = course_summaries(session, prescriptions)
        completed = [p for p in prescriptions if courses[p.id].state_words == COMPLETED_WORDS]
        assert completed, "the demo has a completed course"
        others = [p for p in prescriptions if courses[p.id].state_words == p.status and
                  session.scalar(select(Allocation.id).where(Allocation.prescription_id == p.id).limit(1))]
        shown = [(p.id, p.patient_id, str(p.status)) for p in completed]
        other = [(p.id, p.patient_id, str(p.status)) for p in others]
    finally:
        session.close()
    for prescription_id, patient_id, status in shown:
        page = demo.get(f"/patients/{patient_id}").get_data(as_text=True)
        assert COMPLETED_WORDS in page  # the patient page's words
        text = " ".join(_pages(_get_pdf(demo, f"/trace/patients/{patient_id}.pdf")))
        assert f"#{prescription_id} {COMPLETED_WORDS}" in text, text
        assert f"#{prescription_id} {status}" not in text.replace(f"#{prescription_id} {COMPLETED_WORDS}", "")
    for prescription_id, patient_id, status in other:  # a course not completed keeps its status
        text = " ".join(_pages(_get_pdf(demo, f"/trace/patients/{patient_id}.pdf")))
        assert f"#{prescription_id} {status}" in text, text


def test_s44_the_allocation_is_printed_with_its_time_in_the_site_zone_and_utc(app, demo):  # type: ignore[no-untyped-def]
    session = _session(app)
    try:
        rows = list(session.execute(select(Allocation, Patient.code, Bag.lot_id)
                                    .join(Patient, Patient.id == Allocation.patient_id)
                                    .join(Bag, Bag.id == Allocation.bag_id).order_by(Allocation.id)))
        allocations = [(a.patient_id, code, lot_id, local_and_utc(a.allocated_at)) for a, code, lot_id in rows]
    finally:
        session.close()
    assert allocations
    for patient_id, code, lot_id, when in allocations:
        patient_text = " ".join(_pages(_get_pdf(demo, f"/trace/patients/{patient_id}.pdf")))
        assert when in patient_text, patient_text
        lot_text = " ".join(_pages(_get_pdf(demo, f"/trace/lots/{lot_id}.pdf")))
        assert f"{code} (" in lot_text and f"allocated {when}" in lot_text, lot_text
        # the web trace page shows the same instant, in the same two parts
        local, utc = when.removesuffix(")").split(" (")
        page = demo.get(f"/trace/lots/{lot_id}").get_data(as_text=True)
        assert local in page and utc in page


def test_s44_every_page_of_a_trace_pdf_has_its_title_and_page_x_of_y(app, demo):  # type: ignore[no-untyped-def]
    session = _session(app)
    try:
        reagents = [(r.id, f"Forward trace: reagent lot {r.name} {r.lot_number}")
                    for r in session.scalars(select(ReagentLot).order_by(ReagentLot.id))]
    finally:
        session.close()
    multi = 0
    for reagent_id, title in reagents:
        pages = _pages(_get_pdf(demo, f"/trace/reagents/{reagent_id}.pdf"))
        multi += len(pages) > 1
        for number, text in enumerate(pages, start=1):
            assert f"page {number} of {len(pages)}" in text, (reagent_id, number, text)
            assert title in text, (reagent_id, number, text)  # the running header, page 2 as page 1
    assert multi, "the demo has a reagent lot whose trace runs over more than one page"
    for url in _trace_urls(app):
        pages = _pages(_get_pdf(demo, url))
        assert all(f"page {n} of {len(pages)}" in text for n, text in enumerate(pages, start=1)), url


def test_s44_the_lot_trace_heads_its_corrections_with_a_heading_not_a_stray_line(app, demo):  # type: ignore[no-untyped-def]
    session = _session(app)
    try:
        lots = [(lot.id, lot.lot_number) for lot in session.scalars(select(Lot).order_by(Lot.id))]
    finally:
        session.close()
    for lot_id, number in lots:
        reader = PdfReader(io.BytesIO(_get_pdf(demo, f"/trace/lots/{lot_id}.pdf")))
        lines = [line.strip() for page in reader.pages for line in (page.extract_text() or "").splitlines()]
        assert f"Lot {number}" not in lines, lines  # no bare line naming the lot
        corrections = next(i for i, line in enumerate(lines)
                           if line.startswith("Manufacturing record corrected after first entry"))
        assert lines[corrections - 1] == f"Lot {number}: manufacturing record", lines  # the section's heading


def _path_extent(pdf: bytes) -> list[tuple[float, float, float]]:
    """Each page's width and the leftmost and rightmost x of its drawn lines (table grids)."""
    out = []
    document = pdfium.PdfDocument(pdf)
    try:
        for page in document:
            width, _height = page.get_size()
            bounds = [obj.get_bounds() for obj in page.get_objects(max_depth=5)
                      if obj.type == pdfium_raw.FPDF_PAGEOBJ_PATH]
            if bounds:
                out.append((width, min(b[0] for b in bounds), max(b[2] for b in bounds)))
    finally:
        document.close()
    return out


def test_s44_tables_stay_inside_the_margins(app, demo):  # type: ignore[no-untyped-def]
    session = _session(app)
    try:
        recalls = list(session.scalars(select(Recall.id)))
    finally:
        session.close()
    assert recalls
    urls = _trace_urls(app) + [f"/recalls/{i}/report.pdf" for i in recalls]
    for url in urls:
        extents = _path_extent(_get_pdf(demo, url))
        assert extents, url
        for width, left, right in extents:
            # 0.5 pt: half the grid's line width drawn on the margin
            assert right <= width - MARGIN + 0.5, (url, right, width - MARGIN)
            assert left >= MARGIN - 0.5, (url, left)



def test_s44_the_certificates_tables_stay_inside_the_margins(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    """The certificate's tables were summed to the margins by hand, forgetting the frame's own 6 pt padding: its
    corrections table reached 12 pt past the right margin (the same defect as the trace reports')."""
    from mscbatch.lots import corrections
    from mscbatch.lots.models import Bag
    from tests.integration.test_release_support import seed_quarantine_lot, user

    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:  # a correction: the certificate lists it in a table
        bag = session.scalar(select(Bag).where(Bag.lot_id == lot_id).order_by(Bag.bag_number))
        corrections.correct_bag_content(session, user(session, "technician"), lot_id, bag.id,
                                        volume_ml=bag.volume_ml, cells_per_ml=bag.cells_per_ml - 100_000,
                                        dmso_percent=bag.dmso_percent, reason="cells per mL misread")
        session.commit()
    pdf = _get_pdf(client_as("qa"), f"/release/lots/{lot_id}/certificate.pdf")
    assert "corrected after first entry: 1 correction" in " ".join(_pages(pdf))
    for width, left, right in _path_extent(pdf):
        assert right <= width - MARGIN + 0.5, (right, width - MARGIN)
        assert left >= MARGIN - 0.5, left
