"""The trial id prints in full and legibly on every layout that prints it, for the ids a trial really has.

config/products.toml's `trial` is any non-empty text (mscbatch/core/site_config.py, _trial). A US trial has an
NCT number (11 characters), a UK one an ISRCTN (14), a European one an EU CT number (17, "2023-503456-12-00";
the older EudraCT numbers have 14) and a trial in both registries may name both. Each must fit its box at the
label's minimum size (6 pt): the renderer refuses, never cuts off, a text that does not fit, so a layout that
is too narrow leaves a product without any label. Checked on the PDF itself: the id's characters, read back
with pdfium, all lie inside the trial box at 6 pt or more, the text layer holds the whole id, and the QR code
(and the Code 128) still decode with an independent decoder.
"""
from __future__ import annotations

import pypdfium2
import pytest

from mscbatch.labels import LabelOverflow
from mscbatch.labels.layout import MM, LabelLayout, TextBlock, load_layout
from mscbatch.labels.render import render_labels
from mscbatch.paths import labels_dir
from tests.unit.test_label_render import bag_label, decode_pages, page_texts

EU_CT = "2023-503456-12-00"
TRIAL_IDS = [
    pytest.param(EU_CT, id="eu-ct"),  # EU CT number (CTR 536/2014, CTIS): the longest single registry id
    pytest.param("2019-001234-56", id="eudract"),
    pytest.param("ISRCTN12345678", id="isrctn"),
    pytest.param("NCT03562065", id="nct"),
    pytest.param("EU CT " + EU_CT, id="eu-ct-named"),  # the registry named before the number
    pytest.param("NCT03562065 / " + EU_CT, id="nct-and-eu-ct"),  # one trial in both registries
]
LEGIBLE_PT = 6.0
INK_OVERHANG_PT = 0.3
"""A glyph's ink may pass its advance width by a hair (Helvetica's "/" by 0.1 pt at 6 pt): 0.1 mm of slack."""


def layouts_printing_the_trial() -> list[str]:
    found = [path.stem for path in sorted(labels_dir().glob("*.toml"))
             if any(block.field == "trial_id" for block in load_layout(path).blocks)]
    assert "bag_100x100" in found  # the bag label prints it (21 CFR 1271.370: "For clinical trial use only")
    return found


def trial_block(layout: LabelLayout) -> TextBlock:
    return next(block for block in layout.blocks if block.field == "trial_id")


def text_in_box(pdf: bytes, layout: LabelLayout, block: TextBlock) -> list[tuple[str, float]]:
    """The characters pdfium finds inside the block's box on page 1, in drawing order, with their font size."""
    x, y, w, h = (v * MM for v in block.box_mm)
    ink = INK_OVERHANG_PT
    top = layout.height_mm * MM - y + ink
    left, right, bottom = x - ink, x + w + ink, top - h - 2 * ink
    document = pypdfium2.PdfDocument(pdf)
    try:
        text_page = document[0].get_textpage()
        found = []
        for index in range(text_page.count_chars()):
            char = text_page.get_text_range(index, 1)
            if not char.strip():
                continue
            c_left, c_bottom, c_right, c_top = text_page.get_charbox(index)
            centre_x, centre_y = (c_left + c_right) / 2, (c_bottom + c_top) / 2
            if left <= centre_x <= right and bottom <= centre_y <= top:
                assert left <= c_left and c_right <= right and bottom <= c_bottom and c_top <= top, \
                    f"{char!r} of the {block.field} box is drawn across the box's edge"
                found.append((char, pypdfium2.raw.FPDFText_GetFontSize(text_page.raw, index)))
        return found
    finally:
        document.close()


@pytest.mark.parametrize("layout_id", layouts_printing_the_trial())
@pytest.mark.parametrize("trial_id", TRIAL_IDS)
def test_a_realistic_trial_id_prints_whole_inside_its_box_at_6_pt_and_the_codes_still_scan(
        layout_id: str, trial_id: str) -> None:
    layout = load_layout(layout_id)
    data = bag_label(1, trial_id=trial_id, sample_type="Retained sample")
    pdf = render_labels(layout, [data])  # the defect: LabelOverflow for an EU CT number
    assert trial_id in page_texts(pdf)[0]
    block = trial_block(layout)
    inside = text_in_box(pdf, layout, block)
    caption = (block.caption or "").replace(" ", "")
    assert "".join(char for char, _ in inside) == caption + trial_id.replace(" ", "")  # all of it, nothing else
    assert all(size >= LEGIBLE_PT - 0.01 for _, size in inside[len(caption):]), inside
    symbols = decode_pages(pdf)[0]
    assert symbols["QRCode"] == [data.token_url]
    if any(symbol.kind == "code128" for symbol in layout.symbols):
        assert symbols["Code128"] == ["=" + data.din.text + "00"]


def test_on_the_bag_label_a_single_registry_id_stays_on_one_line_well_above_the_minimum() -> None:
    """The EU CT number, the longest single id, is not squeezed to the minimum: 7 pt or more, on one line."""
    layout = load_layout("bag_100x100")
    inside = text_in_box(render_labels(layout, [bag_label(1, trial_id=EU_CT)]), layout, trial_block(layout))
    sizes = {size for char, size in inside[len("Trial"):]}
    assert "".join(char for char, _ in inside) == "Trial" + EU_CT and min(sizes) >= 7


@pytest.mark.parametrize("layout_id", layouts_printing_the_trial())
def test_a_trial_id_no_label_can_hold_is_refused_naming_the_field_never_cut_off(layout_id: str) -> None:
    """The configuration accepts any non-empty text as a trial id; past what a box holds the label is refused
    (LabelOverflow names trial_id, the print page shows it), it never prints part of the id."""
    too_long = f"NCT03562065 / {EU_CT} / ISRCTN12345678 / 2019-001234-56"
    with pytest.raises(LabelOverflow) as caught:
        render_labels(load_layout(layout_id), [bag_label(1, trial_id=too_long, sample_type="Retained sample")])
    assert caught.value.field == "trial_id" and caught.value.text == too_long
