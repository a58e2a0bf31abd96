"""Review 7 of the bag label against DOMAIN.md section 7, through the web print path on both databases.

Finding: a biohazard product (collection type 3) printed the word BIOHAZARD alone, at 5-7 pt in the shared
warnings line; 21 CFR 1271.3(h)'s biohazard legend is the biohazard symbol with that word. The renderer now draws
the symbol at the start of the warnings field, the word beside it, and only on a biohazard bag."""
from __future__ import annotations

from typing import Any

import pypdfium2
import zxingcpp
from stdnum.iso7064 import mod_37_2

from mscbatch.audit.context import use_case
from mscbatch.lots.models import Bag
from tests.integration.patient_factories import user
from tests.integration.test_labelling import make_lot, pdf_text

DPI = 300
SYMBOL_BOX_MM = (52.5, 84.5, 6.5, 6.5)  # the start of the warnings field of labels/bag_100x100.toml


def _page_image(pdf: bytes) -> Any:
    document = pypdfium2.PdfDocument(pdf)
    image = document[0].render(scale=DPI / 72, grayscale=True).to_pil().convert("L")
    document.close()
    return image


def _dark_fraction(image: Any, box_mm: tuple[float, float, float, float]) -> float:
    per_mm = DPI / 25.4
    x, y, w, h = box_mm
    region = image.crop((round(x * per_mm), round(y * per_mm), round((x + w) * per_mm), round((y + h) * per_mm)))
    histogram = region.histogram()  # 256 grey levels ("L"): the dark half counted, as a scanner thresholds
    return sum(histogram[:128]) / sum(histogram)


def _make_biohazard(app: Any, bag_ids: list[int]) -> None:
    session = app.extensions["mscbatch.db"].new_session()
    try:
        with use_case(session, user(session, "technician"), "test: a directed product with a biohazard (type 3)"):
            for bag_id in bag_ids:
                bag = session.get(Bag, bag_id)
                bag.product_code = bag.product_code[:5] + "3" + bag.product_code[6:]
    finally:
        session.close()


def test_a_biohazard_bag_label_carries_the_biohazard_symbol_beside_the_word(app, users, client_as):  # type: ignore[no-untyped-def]
    lot_id, bags = make_lot(app, bags=1, familial_for="SSC-BM-077", product="BM-MSC")
    _make_biohazard(app, [bags[0][0]])
    response = client_as("technician").post(f"/labels/lots/{lot_id}/print", data={"print_format": "lot"})
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    text = pdf_text(response.data)
    assert "BIOHAZARD" in text and "For use by intended recipient only" in text and "SSC-BM-077" in text
    image = _page_image(response.data)
    assert _dark_fraction(image, SYMBOL_BOX_MM) > 0.15  # the symbol, not the first letters of a word
    assert _dark_fraction(image, (70, 84.5, 4, 6.5)) > 0.05  # the word beside it, not over it
    codes = {code.format: code.text for code in zxingcpp.read_barcodes(image)}
    din = bags[0][1][:13]
    assert codes[zxingcpp.BarcodeFormat.Code128] == f"={din}00"
    assert codes[zxingcpp.BarcodeFormat.QRCode].endswith(f"/v/{din}{mod_37_2.calc_check_digit(din)}." +
                                                         codes[zxingcpp.BarcodeFormat.QRCode].rsplit(".", 1)[1])


def test_a_label_without_a_biohazard_has_no_symbol_and_no_word(app, users, client_as):  # type: ignore[no-untyped-def]
    lot_id, _bags = make_lot(app, bags=1)
    response = client_as("technician").post(f"/labels/lots/{lot_id}/print", data={"print_format": "lot"})
    assert response.status_code == 200
    assert "BIOHAZARD" not in pdf_text(response.data)
    assert _dark_fraction(_page_image(response.data), SYMBOL_BOX_MM) < 0.01
