"""Rendering labels: a whole lot's PDF scans back, with an independent decoder, to the right token and DIN."""
from __future__ import annotations

import dataclasses
import io
import re
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pypdfium2
import pytest
import zxingcpp
from PIL import Image
from pypdf import PdfReader

from mscbatch.core.identifiers import make_din, parse_din
from mscbatch.core.label_token import make_token_url, verify_token
from mscbatch.labels import LabelData, LabelError, LabelOverflow, fit_text
from mscbatch.labels.layout import MM, load_layout
from mscbatch.labels.render import render_labels, render_sheet
from mscbatch.labels.symbols import isbt128_din
from mscbatch.settings import DEMO_LABEL_KEY

KEY = b"test-label-key-0123456789abcdef"
BASE = "https://mscbatch.example.org"
DPI = 300
FORMATS = (zxingcpp.BarcodeFormat.QRCode, zxingcpp.BarcodeFormat.Code128)


def bag_label(sequence: int = 1, **changes: object) -> LabelData:
    din = make_din("X9999", 26, sequence)
    data = LabelData(
        din=din, product_name="Umbilical cord MSC", product_class="MSC(WJ)", product_code="SX001V00",
        division_text="bag 2 of 4", lot_number="MSC-2026-0001", collection_facility="Demo Maternity Unit",
        processing_facility="Demo Cell Therapy Unit", collection_date=date(2026, 1, 15),
        volume_ml=Decimal("20.0"), total_cells=100_000_000, cells_per_ml=Decimal("5000000"),
        dmso_percent=Decimal("10"), storage_temperature="-150 °C or colder",
        expiry=datetime(2027, 1, 15, 12, 0, tzinfo=UTC), timezone_name="Europe/Paris",
        trial_id="NCT03562065", token_url=make_token_url(BASE, din.typed, KEY))
    return dataclasses.replace(data, **changes)


def page_texts(pdf: bytes) -> list[str]:
    return [" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages]


def decode_pages(pdf: bytes) -> list[dict[str, list[str]]]:
    """Rasterise each page at 300 dpi (pypdfium2) and decode it with zxing-cpp: {format name: [texts]}."""
    document = pypdfium2.PdfDocument(pdf)
    found = []
    for page in document:
        image = page.render(scale=DPI / 72, grayscale=True).to_pil().convert("L")
        symbols: dict[str, list[str]] = {}
        for barcode in zxingcpp.read_barcodes(image, formats=FORMATS):
            symbols.setdefault(barcode.format.name, []).append(barcode.text)
        found.append(symbols)
    document.close()
    return found


def test_every_label_of_a_100_bag_lot_decodes_to_its_token_and_din() -> None:
    """THE key test (issue 7): 100 pages, each rasterised at 300 dpi and decoded by an independent decoder."""
    labels = [bag_label(n, division_text=f"bag {n} of 100") for n in range(1, 101)]
    started = time.perf_counter()
    pdf = render_labels(load_layout("bag_100x100"), labels)
    rendered = time.perf_counter()
    decoded = decode_pages(pdf)
    finished = time.perf_counter()
    assert len(decoded) == 100
    for data, symbols in zip(labels, decoded, strict=True):
        assert symbols.get("QRCode") == [data.token_url], data.din.text
        assert symbols.get("Code128") == ["=" + data.din.text + "00"], data.din.text  # ISBT 128 DIN, structure 001
        assert verify_token(symbols["QRCode"][0], KEY) == data.din.typed
    assert len({data.token_url for data in labels}) == 100
    print(f"\n100-bag lot: render {rendered - started:.2f} s, rasterise + decode {finished - rendered:.2f} s")
    assert finished - started < 60


def test_pages_are_the_size_of_the_label_for_label_printers() -> None:
    pdf = render_labels(load_layout("bag_100x100"), [bag_label(1), bag_label(2)])
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 2
    box = reader.pages[0].mediabox
    assert float(box.width) == pytest.approx(100 * MM) and float(box.height) == pytest.approx(100 * MM)


def test_the_label_text_carries_din_boxed_k_product_division_and_expiry_in_local_time_and_utc() -> None:
    data = bag_label(1)
    text = page_texts(render_labels(load_layout("bag_100x100"), [data]))[0]
    assert re.search(rf"X9999 26 000001 ?{re.escape(data.din.check_character)}", text)
    for expected in ("MSC(WJ)", "Umbilical cord MSC", "SX001V00", "bag 2 of 4", "MSC-2026-0001",
                     "Demo Maternity Unit", "Demo Cell Therapy Unit", "2026-01-15", "20 mL", "100 x10^6",
                     "5 x10^6 /mL", "10 % (v/v)", "-150 °C or colder", "2027-01-15 13:00 CET",
                     "2027-01-15 12:00 UTC", "Do not irradiate", "Do not use a leukocyte-reduction filter",
                     "For clinical trial use only", "NCT03562065"):
        assert expected in text, expected
    for absent in ("REPRINT", "For use by intended recipient only", "RELEASE"):
        assert absent not in text


def test_a_directed_reprinted_conditionally_released_bag_shows_recipient_reprint_and_marker() -> None:
    data = bag_label(1, intended_recipient="SSC-BM-014", reprint=True, release_marker="Conditional release",
                     warnings=("Biohazard",))
    text = page_texts(render_labels(load_layout("bag_100x100"), [data]))[0]
    for expected in ("For use by intended recipient only", "SSC-BM-014", "REPRINT", "CONDITIONAL RELEASE",
                     "Biohazard"):
        assert expected in text, expected


def test_summer_expiry_shows_summer_time_with_utc_beneath() -> None:
    data = bag_label(1, expiry=datetime(2027, 7, 1, 8, 30, tzinfo=UTC))
    text = page_texts(render_labels(load_layout("bag_100x100"), [data]))[0]
    assert "2027-07-01 10:30 CEST 2027-07-01 08:30 UTC" in text


def test_a_product_class_too_long_for_its_fixed_field_fails_naming_the_field() -> None:
    data = bag_label(1, product_class="MSC(WJ) umbilical cord Wharton's jelly expanded")
    with pytest.raises(LabelOverflow) as caught:
        render_labels(load_layout("bag_100x100"), [data])
    assert caught.value.field == "product_class"
    assert "product_class" in str(caught.value) and "does not fit" in str(caught.value)


def test_a_product_name_far_too_long_fails_and_a_moderately_long_one_shrinks() -> None:
    layout = load_layout("bag_100x100")
    with pytest.raises(LabelOverflow) as caught:
        render_labels(layout, [bag_label(1, product_name="Umbilical cord mesenchymal stromal cells " * 4)])
    assert caught.value.field == "product_name"
    moderate = "Umbilical cord MSC (Wharton's jelly), cryopreserved in 10 % DMSO"
    block = next(b for b in layout.blocks if b.field == "product_name")
    _, _, width, height = block.content_box_pt(layout.caption_pt)
    fitted = fit_text([moderate], block.font, width, height, block.max_font_pt, block.min_font_pt, wrap=True)
    assert fitted is not None and block.min_font_pt <= fitted.size_pt < block.max_font_pt
    text = page_texts(render_labels(layout, [bag_label(1, product_name=moderate)]))[0]
    assert moderate in text


def test_a_cryovial_label_decodes_and_shows_din_lot_and_sample_type() -> None:
    data = bag_label(7, sample_type="QC sample: sterility")
    pdf = render_labels(load_layout("cryovial_small"), [data])
    assert decode_pages(pdf)[0] == {"QRCode": [data.token_url]}
    text = page_texts(pdf)[0]
    assert re.search(rf"X9999 26 000007 ?{re.escape(data.din.check_character)}", text)
    assert "MSC-2026-0001" in text and "QC sample: sterility" in text


def test_an_a4_sheet_tiles_four_bag_labels_per_page_and_every_code_still_scans() -> None:
    labels = [bag_label(n) for n in range(1, 6)]
    pdf = render_sheet(load_layout("bag_100x100"), labels, paper="A4")
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 2
    assert float(reader.pages[0].mediabox.width) == pytest.approx(210 * MM)
    decoded = decode_pages(pdf)
    assert sorted(decoded[0]["QRCode"] + decoded[1]["QRCode"]) == sorted(d.token_url for d in labels)
    assert sorted(decoded[0]["Code128"] + decoded[1]["Code128"]) == sorted(isbt128_din(d.din) for d in labels)


def test_a_sheet_of_cryovial_labels_fits_many_per_page() -> None:
    labels = [bag_label(n, sample_type="Retained sample") for n in range(1, 13)]
    pdf = render_sheet(load_layout("cryovial_small"), labels, paper="A4", margin_mm=10, gap_mm=2)
    assert len(PdfReader(io.BytesIO(pdf)).pages) == 1
    assert sorted(decode_pages(pdf)[0]["QRCode"]) == sorted(d.token_url for d in labels)


def test_the_same_labels_give_the_same_pdf_bytes() -> None:
    layout = load_layout("bag_100x100")
    assert render_labels(layout, [bag_label(3)]) == render_labels(layout, [bag_label(3)])


@pytest.mark.parametrize(("change", "words"), [
    ({"lot_number": "MSC-2026-0001 Ω"}, "cannot print"),
    ({"paper": "A3"}, "paper"),
])
def test_unprintable_requests_are_refused(change: dict[str, str], words: str) -> None:
    layout = load_layout("bag_100x100")
    with pytest.raises(LabelError, match=words):
        if "paper" in change:
            render_sheet(layout, [bag_label(1)], paper=change["paper"])
        else:
            render_labels(layout, [bag_label(1, **change)])


def test_nothing_to_print_and_a_naive_expiry_are_refused() -> None:
    with pytest.raises(LabelError, match="no labels"):
        render_labels(load_layout("bag_100x100"), [])
    with pytest.raises(LabelError, match="time zone"):
        bag_label(1, expiry=datetime(2027, 1, 15, 12, 0))
    with pytest.raises(LabelError, match="time zone"):
        bag_label(1, timezone_name="Mars/Olympus")


def test_a_qr_that_cannot_keep_its_minimum_module_size_fails_loudly() -> None:
    with pytest.raises(LabelOverflow) as caught:
        render_labels(load_layout("cryovial_small"), [bag_label(1, token_url=BASE + "/v/" + "A" * 200)])
    assert caught.value.field == "token_url"


@pytest.mark.parametrize(("total", "per_ml", "written"), [
    (100_000_000, Decimal("5000000"), ("100 x10^6", "5 x10^6 /mL")),
    (Decimal("50125000"), Decimal("2506250"), ("50.12 x10^6", "2.51 x10^6 /mL"))])
def test_cell_counts_are_written_as_the_screens_write_them(total: Decimal | int, per_ml: Decimal,
                                                           written: tuple[str, str]) -> None:
    """In millions, "x10^6", as the lot page, the dose sheet and the ward pages: a nurse comparing the bag with the
    dose sheet must not have to turn "1.00 × 10^8" into "100 x10^6" in her head."""
    [text] = page_texts(render_labels(load_layout("bag_100x100"), [bag_label(total_cells=total, cells_per_ml=per_ml)]))
    assert all(words in text for words in written), text
    assert "×" not in text and "10^8" not in text and "10^7" not in text


@pytest.mark.parametrize(("fin", "year", "sequence"), [
    ("X9999", 26, 1), ("G1234", 17, 654321), ("W0000", 9, 123456), ("19999", 26, 999999), ("A9999", 99, 0)])
def test_the_code_128_is_the_isbt_128_din_data_structure_and_fits_its_box(fin: str, year: int, sequence: int) -> None:
    """ISBT 128 ST-001 data structure 001: "=" + the 13-character DIN + 2 flag characters ("00": unused). The
    check character K is printed in its box for typing, never encoded. A FIN starting with a digit makes the
    longest symbol (15 digits in a row): it still fits the 45 mm box at the layout's minimum module."""
    din = make_din(fin, year, sequence)
    assert isbt128_din(din) == f"={din.text}00" and len(isbt128_din(din)) == 16
    [symbols] = decode_pages(render_labels(load_layout("bag_100x100"), [bag_label(1, din=din)]))
    assert symbols["Code128"] == [f"={din.text}00"]
    assert parse_din(symbols["Code128"][0][1:14]) == din


def test_isbt_din_flags_are_two_characters() -> None:
    din = make_din("X9999", 26, 1)
    assert isbt128_din(din, "A1") == "=X999926000001A1"
    for bad in ("0", "000", "0 ", "é0"):
        with pytest.raises(ValueError, match="2 characters"):
            isbt128_din(din, bad)


def test_the_demo_label_png_in_the_docs_is_a_300_dpi_label_that_scans() -> None:
    image = Image.open(Path(__file__).resolve().parents[2] / "docs" / "label-demo.png").convert("L")
    assert image.size in {(1181, 1181), (1182, 1182)}  # 100 mm at 300 dpi
    symbols = {b.format.name: b.text for b in zxingcpp.read_barcodes(image, formats=FORMATS)}
    code = symbols["Code128"]  # ISBT 128 data structure 001: "=" + DIN + flags (layout 3)
    assert code.startswith("=") and len(code) == 16
    din = parse_din(code[1:14])
    assert verify_token(symbols["QRCode"], DEMO_LABEL_KEY) == din.typed
