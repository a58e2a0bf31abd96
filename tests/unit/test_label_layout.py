"""Label layouts as data: shipped layouts load; a broken layout is refused naming its file and key."""
from __future__ import annotations

from pathlib import Path

import pytest

from mscbatch.core.configfiles import ConfigError
from mscbatch.labels import fit_text
from mscbatch.labels.layout import MM, TEXT_FIELDS, load_layout
from mscbatch.paths import labels_dir

BASE = """
id = "test"
version = "1"
width_mm = 50
height_mm = 30

[[fields]]
field = "lot_number"
caption = "Lot"
box_mm = [2, 2, 30, 8]
font = "Helvetica-Bold"
max_font_pt = 10
min_font_pt = 6

[[texts]]
text = "Do not irradiate"
box_mm = [2, 12, 30, 5]
font = "Helvetica"
max_font_pt = 8
min_font_pt = 6

[[symbols]]
kind = "qr"
content = "token_url"
box_mm = [34, 2, 14, 14]
error_correction = "Q"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_bag_label_is_100_by_100_mm_with_all_required_fields() -> None:
    layout = load_layout("bag_100x100")
    assert (layout.width_mm, layout.height_mm) == (100, 100)
    printed = {block.field for block in layout.blocks if block.field}
    assert printed == TEXT_FIELDS - {"sample_type"}
    texts = {block.text for block in layout.blocks if block.text}
    assert texts == {"Do not irradiate", "Do not use a leukocyte-reduction filter", "For clinical trial use only"}
    assert {(s.kind, s.content) for s in layout.symbols} == {("qr", "token_url"), ("code128", "din")}
    assert len(layout.sha256) == 64 and layout.version == "4"  # 3: ISBT 128 DIN data structure in the Code 128; 4: wider trial box


def test_the_shipped_cryovial_label_holds_din_lot_sample_type_and_a_qr() -> None:
    layout = load_layout("cryovial_small")
    assert (layout.width_mm, layout.height_mm) == (38, 13)
    assert {b.field for b in layout.blocks} == {"din", "lot_number", "sample_type"}
    assert [s.kind for s in layout.symbols] == ["qr"]


def test_every_layout_in_the_labels_folder_loads() -> None:
    files = sorted(labels_dir().glob("*.toml"))
    assert len(files) >= 2
    for path in files:
        assert load_layout(path).id == path.stem


def test_a_layout_loads_from_a_path(tmp_path: Path) -> None:
    layout = load_layout(write(tmp_path, BASE))
    assert layout.blocks[0].field == "lot_number"
    assert layout.symbols[0].error_correction == "Q"


@pytest.mark.parametrize(("old", "new", "key", "words"), [
    ('field = "lot_number"', 'field = "lot_nr"', "fields[0].field", "unknown field 'lot_nr'"),
    ('field = "lot_number"', 'field = "token_url"', "fields[0].field", "unknown field"),
    ("max_font_pt = 10\n", "", "fields[0].max_font_pt", "missing"),
    ('box_mm = [2, 2, 30, 8]', 'box_mm = [20, 2, 20, 8]', "symbols[0].box_mm", "overlaps fields[0]"),
    ('box_mm = [2, 12, 30, 5]', 'box_mm = [2, 27, 30, 5]', "texts[0].box_mm", "leaves the 50.0 x 30.0 mm"),
    ('box_mm = [34, 2, 14, 14]', 'box_mm = [40, 2, 14, 14]', "symbols[0].box_mm", "leaves"),
    ('box_mm = [2, 2, 30, 8]', 'box_in = [0.1, 0.1, 1, 0.3]', "fields[0].box_in", "inches"),
    ("max_font_pt = 10", "max_font_mm = 3", "fields[0].max_font_mm", "use max_font_pt"),
    ("width_mm = 50", 'width_mm = "50mm"', "width_mm", "expected"),
    ("width_mm = 50", "width_cm = 5", "width_cm", "centimetres"),
    ("height_mm = 30\n", "", "height_mm", "missing"),
    ('box_mm = [2, 2, 30, 8]', 'box_mm = [2, 2, 30]', "fields[0].box_mm", "4 numbers"),
    ('box_mm = [2, 2, 30, 8]', 'box_mm = [2, 2, -30, 8]', "fields[0].box_mm", "positive"),
    ('error_correction = "Q"', 'error_correction = "L"', "symbols[0].error_correction", "Q, H"),
    ('content = "token_url"', 'content = "din"', "symbols[0].content", "carries token_url"),
    ('box_mm = [34, 2, 14, 14]', 'box_mm = [34, 2, 14, 12]', "symbols[0].box_mm", "square"),
    ('font = "Helvetica-Bold"', 'font = "Comic Sans"', "fields[0].font", "standard PDF"),
    ("min_font_pt = 6\n\n[[texts]]", "min_font_pt = 12\n\n[[texts]]", "fields[0].min_font_pt", "larger"),
    ("min_font_pt = 6\n\n[[texts]]", "min_font_pt = 3\n\n[[texts]]", "fields[0].min_font_pt", "legible"),
    ('text = "Do not irradiate"', 'text = "Do not use a leukocyte-reduction filter, ever, at all"',
     "texts[0].text", "does not fit"),
    ('caption = "Lot"', 'caption = "Lot number as assigned by the processing laboratory"',
     "fields[0].caption", "wider"),
    ('caption = "Lot"', 'align = "justify"', "fields[0].align", "left, center"),
    ('id = "test"', 'id = "test"\ncolour = "red"', "colour", "unknown key"),
    ('id = "test"\n', "", "id", "missing"),
    ('field = "lot_number"', 'field = "lot_number"\nboxed_check_character = true',
     "fields[0].boxed_check_character", "only the din"),
    ("width_mm = 50", "width_mm = 50\nprinter_dpi = 72", "printer_dpi", "203, 300 or 600"),
])
def test_a_broken_layout_is_refused_naming_the_file_and_the_key(tmp_path: Path, old: str, new: str, key: str,
                                                                 words: str) -> None:
    assert old in BASE
    path = write(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(ConfigError) as caught:
        load_layout(path)
    assert caught.value.file == str(path)
    assert caught.value.key == key
    assert words in caught.value.problem


def test_a_layout_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_layout(write(tmp_path, "id = \n"))


def test_an_unknown_layout_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_layout("no_such_layout")


def test_text_shrinks_to_fit_and_reports_none_when_it_cannot() -> None:
    width, height = 30 * MM, 5 * MM
    fitted = fit_text(["Umbilical cord MSC"], "Helvetica-Bold", width, height, 10, 6, wrap=False)
    assert fitted is not None and 6 <= fitted.size_pt < 10
    assert fit_text(["Umbilical cord mesenchymal stromal cells, cryopreserved in 10 % DMSO"],
                    "Helvetica-Bold", width, height, 10, 6, wrap=False) is None


def test_wrapped_text_breaks_between_words_never_inside_a_word() -> None:
    fitted = fit_text(["For use by intended recipient only"], "Helvetica", 25 * MM, 10 * MM, 8, 6, wrap=True)
    assert fitted is not None and len(fitted.lines) == 2
    assert " ".join(fitted.lines) == "For use by intended recipient only"
    assert fit_text(["X999926000001X999926000001"], "Helvetica", 15 * MM, 20 * MM, 8, 6, wrap=True) is None
