"""Label printing and the QR verification page (issue 7), through the pages and the API, on both databases:
a lot's label PDF scans back (pypdfium2 at 300 dpi + zxing-cpp) to signed tokens the verification page and
API accept; an altered token is refused; a rejected lot gets no label; a reprint needs a reason and says so."""
from __future__ import annotations

import io
from typing import Any

import pypdfium2
import zxingcpp
from pypdf import PdfReader
from sqlalchemy import select

from mscbatch.labelling.models import LabelPrint, LabelPrintItem
from tests.conftest import api_token_for
from tests.integration.patient_factories import donor, lot_with_bags, user

DPI = 300


def make_lot(app: Any, *, status: str = "released", bags: int = 4, familial_for: str | None = None,
             product: str = "UC-MSC") -> tuple[int, list[tuple[int, str]]]:
    session = app.extensions["mscbatch.db"].new_session()
    try:
        tech = user(session, "technician")
        made = lot_with_bags(session, tech, donor(session, tech, familial_for=familial_for), bags=bags,
                             status=status, product=product, labelled=False)  # the tests print the first labels
        return made[0].lot_id, [(b.id, b.din + b.check_character) for b in made]
    finally:
        session.close()


def qr_codes(pdf: bytes) -> list[list[str]]:
    """Each page rasterised at 300 dpi and decoded by an independent decoder: the QR texts per page."""
    document = pypdfium2.PdfDocument(pdf)
    pages = []
    for page in document:
        image = page.render(scale=DPI / 72, grayscale=True).to_pil().convert("L")
        pages.append([code.text for code in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)])
    document.close()
    return pages


def pdf_text(pdf: bytes) -> str:
    return " ".join(" ".join((page.extract_text() or "").split()) for page in PdfReader(io.BytesIO(pdf)).pages)


def test_a_lot_label_pdf_has_one_page_per_bag_and_each_qr_opens_a_valid_verification(app, users, client_as):
    lot_id, bags = make_lot(app)
    client = client_as("technician")
    page = client.get(f"/labels/lots/{lot_id}")
    assert page.status_code == 200 and "Print labels" in page.get_data(as_text=True)
    response = client.post(f"/labels/lots/{lot_id}/print", data={"print_format": "lot"})
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    assert response.mimetype == "application/pdf"
    pdf = response.data
    assert len(PdfReader(io.BytesIO(pdf)).pages) == 4
    codes = qr_codes(pdf)
    assert [len(c) for c in codes] == [1, 1, 1, 1]
    anonymous = app.test_client()
    token = api_token_for(app, "nurse")
    for (bag_id, typed), (url,) in zip(bags, codes, strict=True):
        assert url.startswith("http://localhost/v/" + typed + "."), url
        path = url[len("http://localhost"):]
        shown = anonymous.get(path)
        assert shown.status_code == 200
        html = shown.get_data(as_text=True)
        assert "Genuine label" in html and typed[:5] in html
        assert "sign in" in html.lower() and "bag-link" not in html  # anonymous: no link to the record
        api = anonymous.get("/api/v1/labels/verify", query_string={"token": url},
                            headers={"Authorization": f"Bearer {token}"})
        assert api.status_code == 200, api.get_json()
        body = api.get_json()
        assert body["valid"] is True and body["bag_id"] == bag_id and body["bag_ref"] == typed
        assert body["lot_status"] == "released" and body["usable"] is True
    signed_in = client_as("nurse").get(codes[0][0][len("http://localhost"):])
    assert "bag-link" in signed_in.get_data(as_text=True)
    session = app.extensions["mscbatch.db"].new_session()
    job = session.scalars(select(LabelPrint)).one()
    assert (job.print_format, job.bag_count, job.reprint, job.layout_id) == ("lot", 4, False, "bag_100x100")
    assert len(job.layout_sha256) == 64 and job.printed_by_id == users["technician"].id
    assert len(session.scalars(select(LabelPrintItem)).all()) == 4
    session.close()


def test_an_altered_token_is_refused_by_the_page_and_the_api(app, users, client_as):
    lot_id, bags = make_lot(app, bags=1)
    pdf = client_as("qa").post(f"/labels/lots/{lot_id}/print", data={"print_format": "lot"}).data
    url = qr_codes(pdf)[0][0]
    path = url[len("http://localhost"):]
    signature = path.rsplit(".", 1)[1]
    altered_signature = path.rsplit(".", 1)[0] + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    other_din = bags[0][1][:-3] + ("9" if bags[0][1][-3] != "9" else "8") + bags[0][1][-2:]
    forged_bag = path.replace(bags[0][1], other_din)
    anonymous = app.test_client()
    token = api_token_for(app, "nurse")
    for bad, heading in ((altered_signature, "NOT A VALID LABEL"), (forged_bag, "NOT A VALID LABEL"),
                         # a code cut short or not a label code at all: not read, scan again (as at the bedside)
                         (path[:-3], "LABEL NOT READ"), ("/v/NOT-A-TOKEN", "LABEL NOT READ")):
        shown = anonymous.get(bad)
        assert shown.status_code == 400, bad
        html = shown.get_data(as_text=True)
        assert heading in html and "Genuine" not in html, (bad, html)
        assert ("NOT A VALID LABEL" in html) == (heading == "NOT A VALID LABEL"), bad
        api = anonymous.get("/api/v1/labels/verify", query_string={"token": "http://localhost" + bad},
                            headers={"Authorization": f"Bearer {token}"})
        assert api.status_code == 422 and api.mimetype == "application/problem+json"
        assert "refused" in api.get_json()["detail"]
    assert anonymous.get("/api/v1/labels/verify", query_string={"token": url}).status_code == 401


def test_no_label_for_a_rejected_or_recalled_lot(app, users, client_as):
    client = client_as("technician")
    for status in ("rejected", "recalled", "in_process"):
        lot_id, _bags = make_lot(app, status=status, bags=2)
        response = client.post(f"/labels/lots/{lot_id}/print", data={"print_format": "lot"})
        assert response.status_code == 409, status
        assert response.mimetype == "text/html"
        assert "printed only for bags of a lot in quarantine or released" in response.get_data(as_text=True)
    session = app.extensions["mscbatch.db"].new_session()
    assert session.scalars(select(LabelPrint)).all() == []
    session.close()


def test_a_quarantined_lot_prints_with_a_quarantine_marker_and_a_sheet_holds_four_labels(app, users, client_as):
    lot_id, _bags = make_lot(app, status="quarantine")
    client = client_as("technician")
    sheet = client.post(f"/labels/lots/{lot_id}/print", data={"print_format": "sheet"})
    assert sheet.status_code == 200
    reader = PdfReader(io.BytesIO(sheet.data))
    assert len(reader.pages) == 1
    width_mm = float(reader.pages[0].mediabox.width) / 72 * 25.4
    assert abs(width_mm - 210) < 0.5
    assert len(qr_codes(sheet.data)[0]) == 4
    assert "QUARANTINE" in pdf_text(sheet.data)


def test_a_reprint_needs_a_reason_and_is_marked_reprint(app, users, client_as):
    lot_id, bags = make_lot(app, bags=2)
    client = client_as("technician")
    bag_id = bags[0][0]
    first = client.post(f"/labels/lots/{lot_id}/print", data={"print_format": "bag", "bag_id": bag_id})
    assert first.status_code == 200 and "REPRINT" not in pdf_text(first.data)
    assert len(PdfReader(io.BytesIO(first.data)).pages) == 1
    refused = client.post(f"/labels/lots/{lot_id}/print", data={"print_format": "bag", "bag_id": bag_id})
    assert refused.status_code == 422
    assert "a reprint needs a reason" in refused.get_data(as_text=True)
    again = client.post(f"/labels/lots/{lot_id}/print",
                        data={"print_format": "bag", "bag_id": bag_id, "reason": "label smudged in the thaw bath"})
    assert again.status_code == 200 and "REPRINT" in again.headers["Content-Disposition"]
    assert "REPRINT" in pdf_text(again.data)
    whole = client.post(f"/labels/lots/{lot_id}/print", data={"print_format": "lot", "reason": "printer jam"})
    texts = [" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(whole.data)).pages]
    assert ["REPRINT" in t for t in texts] == [True, False]  # only the bag printed before is a reprint
    session = app.extensions["mscbatch.db"].new_session()
    jobs = session.scalars(select(LabelPrint).order_by(LabelPrint.id)).all()
    assert [(j.reprint, j.reason) for j in jobs] == [(False, ""), (True, "label smudged in the thaw bath"),
                                                      (True, "printer jam")]
    session.close()
    history = client.get(f"/labels/lots/{lot_id}").get_data(as_text=True)
    assert "label smudged in the thaw bath" in history


def test_directed_product_labels_name_the_recipient_but_the_public_page_shows_no_patient_data(app, users, client_as):
    lot_id, bags = make_lot(app, bags=1, familial_for="SSC-BM-042", product="BM-MSC")
    pdf = client_as("technician").post(f"/labels/lots/{lot_id}/print", data={"print_format": "lot"}).data
    text = pdf_text(pdf)
    assert "For use by intended recipient only" in text and "SSC-BM-042" in text
    url = qr_codes(pdf)[0][0]
    assert "SSC-BM-042" not in url
    html = app.test_client().get(url[len("http://localhost"):]).get_data(as_text=True)
    assert "SSC-BM-042" not in html and "Genuine label" in html


def test_clinicians_and_nurses_cannot_print(app, users, client_as):
    lot_id, _bags = make_lot(app, bags=1)
    for role in ("clinician", "nurse"):
        assert client_as(role).post(f"/labels/lots/{lot_id}/print", data={"print_format": "lot"}).status_code == 403


def test_the_openapi_document_describes_label_verification(app, users, client_as):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    operation = spec["paths"]["/api/v1/labels/verify"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"token"}
    assert set(operation["responses"]) >= {"200", "401", "422"}
    assert "usable" in spec["components"]["schemas"]["LabelVerification"]["properties"]
    lot_id, _bags = make_lot(app, bags=1)
    page = client_as("qa").get(f"/lots/{lot_id}").get_data(as_text=True)
    assert 'id="labels-link"' in page and 'id="trace-link"' in page and 'id="recall-link"' in page


def test_the_cell_count_captions_name_the_lots_basis(app, users, client_as):  # type: ignore[no-untyped-def]
    """Review finding: a viable count was captioned "Total cells" (the dose basis is viable by default)."""
    from mscbatch.audit.context import use_case
    from mscbatch.lots.models import Lot

    viable_lot, _ = make_lot(app, bags=1)
    total_lot, _ = make_lot(app, bags=1)
    session = app.extensions["mscbatch.db"].new_session()
    with use_case(session, user(session, "technician"), "test: a lot counted on total cells"):
        session.get(Lot, viable_lot).cell_basis = "viable"
        session.get(Lot, total_lot).cell_basis = "total"
    session.close()
    client = client_as("technician")
    viable = pdf_text(client.post(f"/labels/lots/{viable_lot}/print", data={"print_format": "lot"}).data)
    total = pdf_text(client.post(f"/labels/lots/{total_lot}/print", data={"print_format": "lot"}).data)
    assert "Cells (viable)" in viable and "Cells per mL (viable)" in viable and "Total cells" not in viable
    assert "Cells (total)" in total and "Cells per mL (total)" in total


def test_a_directed_bag_keeps_its_legend_when_the_product_configuration_changes_later(app, users, client_as, monkeypatch):  # type: ignore[no-untyped-def]
    """The legends follow the product code frozen on the bag (directed: collection type 2), not today's
    products.toml: a reprint after the product was reconfigured as "V" must still say who the bag is for."""
    import dataclasses

    from mscbatch.labelling import services as labelling

    lot_id, _bags = make_lot(app, bags=1, familial_for="SSC-BM-043", product="BM-MSC")
    configured = labelling.product_of
    monkeypatch.setattr(labelling, "product_of", lambda lot: dataclasses.replace(configured(lot), collection_type="V"))
    text = pdf_text(client_as("technician").post(f"/labels/lots/{lot_id}/print", data={"print_format": "lot"}).data)
    assert "For use by intended recipient only" in text and "SSC-BM-043" in text
