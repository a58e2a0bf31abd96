"""Label layouts as data (DESIGN.md "Layout as data", issue 7): loading and validating labels/*.toml.

A layout file lists positioned text fields, static texts, symbols and rules; one renderer (render.py) draws
any layout. Lengths are millimetres from the label's top-left corner (x to the right, y downwards), font
sizes are points; every length key says its unit in its name (box_mm, width_pt). A layout is refused at load
time, with a ConfigError naming the file and the key, when a key is missing or unknown, a unit is not the
one the key names, a field is not something a label can print, a box leaves the page or two boxes overlap:
content required by 21 CFR 1271.370 and ISBT 128 labelling practice must never be hidden under another.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from pathlib import Path
from typing import Any

from reportlab.pdfbase import pdfmetrics

from mscbatch.core.configfiles import ConfigError, load_rule_file, require
from mscbatch.labels import LEADING, LabelData, fit_text
from mscbatch.paths import labels_dir

MM = 72 / 25.4
"""Points per millimetre."""
BAG_LAYOUT = "bag_100x100"
"""The layout of every bag label the unit prints (mscbatch.labelling); entry forms check their texts against it."""
PADDING_MM = 0.6
"""Inner margin of a framed or inverse (white on black) box."""
ALIGNMENTS = ("left", "center", "right")
VALIGNMENTS = ("top", "middle")
ERROR_CORRECTION_LEVELS = ("Q", "H")
"""DOMAIN.md section 7: the ward QR uses error correction Q or H, so a scuffed frozen bag still scans."""

# cell_basis goes into captions; biohazard is drawn as its symbol at the start of the warnings field (render.py)
TEXT_FIELDS = frozenset(f.name for f in fields(LabelData)) - {"token_url", "timezone_name", "cell_basis", "biohazard"}
"""What a text field can print: the LabelData fields (the expiry field prints local time and UTC)."""
SYMBOL_CONTENTS = {"qr": frozenset({"token_url"}), "code128": frozenset({"din"})}

_TOP_KEYS = {"id", "version", "name", "width_mm", "height_mm", "printer_dpi", "caption_font", "caption_pt",
             "fields", "texts", "symbols", "lines"}
_BLOCK_KEYS = {"box_mm", "font", "max_font_pt", "min_font_pt", "align", "valign", "caption", "wrap", "frame",
               "inverse"}
_FIELD_KEYS = _BLOCK_KEYS | {"field", "boxed_check_character"}
_TEXT_KEYS = _BLOCK_KEYS | {"text"}
_SYMBOL_KEYS = {"kind", "content", "box_mm", "error_correction", "min_module_mm"}
_LINE_KEYS = {"from_mm", "to_mm", "width_pt"}
_UNIT_SUFFIXES = {"_in": "inches", "_inch": "inches", "_cm": "centimetres", "_px": "pixels", "_pt": "points",
                  "_mm": "millimetres", "_dots": "dots"}
CELL_BASES = ("viable", "total")


def caption_text(caption: str, cell_basis: str) -> str:
    """A caption as printed: "{cell_basis}" names what a cell count counts, so that a viable count is never
    captioned "Total cells" (the lot's basis follows the protocol's dose basis, DOMAIN.md section 6)."""
    return caption.replace("{cell_basis}", cell_basis)


@dataclass(frozen=True)
class TextBlock:
    """A box of text: a LabelData field (`field`) or a fixed legend (`text`), shrunk to fit or refused."""

    where: str
    field: str | None
    text: str | None
    box_mm: tuple[float, float, float, float]
    font: str
    max_font_pt: float
    min_font_pt: float
    align: str = "left"
    valign: str = "top"
    caption: str | None = None
    wrap: bool = False
    frame: bool = False
    inverse: bool = False
    boxed_check_character: bool = False

    def content_box_pt(self, caption_pt: float) -> tuple[float, float, float, float]:
        """(left, top, width, height) in points from the label's top-left: inside padding, below the caption."""
        x, y, w, h = (v * MM for v in self.box_mm)
        pad = PADDING_MM * MM if (self.frame or self.inverse) else 0.0
        caption = caption_pt * LEADING if self.caption else 0.0
        return x + pad, y + pad + caption, w - 2 * pad, h - 2 * pad - caption


@dataclass(frozen=True)
class Symbol:
    """A QR code (the signed ward token) or a Code 128 (the DIN) drawn inside box_mm, quiet zones included."""

    where: str
    kind: str
    content: str
    box_mm: tuple[float, float, float, float]
    error_correction: str = "Q"
    min_module_mm: float = 0.25


@dataclass(frozen=True)
class Rule:
    from_mm: tuple[float, float]
    to_mm: tuple[float, float]
    width_pt: float = 0.5


@dataclass(frozen=True)
class LabelLayout:
    """A validated layout; `id`, `version` and `sha256` identify exactly what a print run used."""

    path: Path
    id: str
    version: str
    sha256: str
    name: str
    width_mm: float
    height_mm: float
    printer_dpi: int
    caption_font: str
    caption_pt: float
    blocks: tuple[TextBlock, ...]
    symbols: tuple[Symbol, ...]
    rules: tuple[Rule, ...]


def load_layout(name_or_path: str | Path) -> LabelLayout:
    """Load labels/<name>.toml (or a path) and validate it; ConfigError names the file and the key."""
    path = Path(name_or_path)
    if isinstance(name_or_path, str) and path.suffix != ".toml" and len(path.parts) == 1:
        path = labels_dir() / f"{name_or_path}.toml"
    if not path.is_file():
        raise ConfigError(path, "(file)", "label layout not found")
    rule_file = load_rule_file(path)
    data = rule_file.data
    _check_keys(data, _TOP_KEYS, path, "")
    width = _length(require(data, "width_mm", Decimal, path, ""), path, "width_mm")
    height = _length(require(data, "height_mm", Decimal, path, ""), path, "height_mm")
    dpi = int(data.get("printer_dpi", 300))
    if dpi not in (203, 300, 600):
        raise ConfigError(path, "printer_dpi", f"label printers print at 203, 300 or 600 dpi, not {dpi}")
    caption_font = _font(data.get("caption_font", "Helvetica"), path, "caption_font")
    caption_pt = _length(data.get("caption_pt", Decimal(5)), path, "caption_pt")
    blocks = [_text_block(item, path, f"fields[{i}]", field=True) for i, item in _tables(data, "fields", path)]
    blocks += [_text_block(item, path, f"texts[{i}]", field=False) for i, item in _tables(data, "texts", path)]
    symbols = [_symbol(item, path, f"symbols[{i}]") for i, item in _tables(data, "symbols", path)]
    rules = [_rule(item, path, f"lines[{i}]") for i, item in _tables(data, "lines", path)]
    if not blocks and not symbols:
        raise ConfigError(path, "fields", "a label layout needs at least one field or symbol")
    layout = LabelLayout(path=path, id=rule_file.id, version=rule_file.version, sha256=rule_file.sha256,
                         name=str(data.get("name", rule_file.id)), width_mm=width, height_mm=height,
                         printer_dpi=dpi, caption_font=caption_font, caption_pt=caption_pt,
                         blocks=tuple(blocks), symbols=tuple(symbols), rules=tuple(rules))
    _check_geometry(layout)
    return layout


def _tables(data: dict[str, Any], key: str, path: Path) -> list[tuple[int, dict[str, Any]]]:
    items = data.get(key, [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ConfigError(path, key, f"expected a list of tables ([[{key}]])")
    return list(enumerate(items))


def _check_keys(table: dict[str, Any], allowed: set[str], path: Path, where: str) -> None:
    for key in table:
        if key in allowed:
            continue
        dotted = f"{where}.{key}" if where else key
        stem, _, _ = key.rpartition("_")
        suffix = key[len(stem):] if stem else ""
        if suffix in _UNIT_SUFFIXES and any(k.startswith(stem + "_") for k in allowed):
            expected = next(k for k in sorted(allowed) if k.startswith(stem + "_"))
            raise ConfigError(path, dotted, f"unit {_UNIT_SUFFIXES[suffix]} is not accepted here: use {expected}")
        raise ConfigError(path, dotted, f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _length(value: Any, path: Path, key: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ConfigError(path, key, f"expected a number (the unit is in the key's name), got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(path, key, f"must be {'zero or ' if allow_zero else ''}positive, got {value}")
    return float(value)


def _lengths(value: Any, count: int, path: Path, key: str) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) != count:
        raise ConfigError(path, key, f"expected {count} numbers in mm, got {value!r}")
    return tuple(_length(v, path, key, allow_zero=i < 2 or count == 2) for i, v in enumerate(value))


def _font(value: Any, path: Path, key: str) -> str:
    if value not in pdfmetrics.standardFonts or value in ("Symbol", "ZapfDingbats"):
        raise ConfigError(path, key, f"font {value!r} is not a standard PDF text font (e.g. Helvetica-Bold)")
    return value


def _choice(table: dict[str, Any], key: str, choices: tuple[str, ...], default: str, path: Path, where: str) -> str:
    value = table.get(key, default)
    if value not in choices:
        raise ConfigError(path, f"{where}.{key}", f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def _flag(table: dict[str, Any], key: str, path: Path, where: str) -> bool:
    return bool(require(table, key, bool, path, where)) if key in table else False


def _text_block(table: dict[str, Any], path: Path, where: str, *, field: bool) -> TextBlock:
    _check_keys(table, _FIELD_KEYS if field else _TEXT_KEYS, path, where)
    source = require(table, "field" if field else "text", str, path, where)
    if field and source not in TEXT_FIELDS:
        raise ConfigError(path, f"{where}.field",
                          f"unknown field {source!r}; a label can print: {', '.join(sorted(TEXT_FIELDS))}")
    if not field and not source.strip():
        raise ConfigError(path, f"{where}.text", "empty text")
    max_pt = _length(require(table, "max_font_pt", Decimal, path, where), path, f"{where}.max_font_pt")
    min_pt = _length(require(table, "min_font_pt", Decimal, path, where), path, f"{where}.min_font_pt")
    if min_pt > max_pt:
        raise ConfigError(path, f"{where}.min_font_pt", f"larger than max_font_pt ({min_pt} > {max_pt})")
    if min_pt < 4:
        raise ConfigError(path, f"{where}.min_font_pt", "below 4 pt a printed label is not legible")
    boxed_k = _flag(table, "boxed_check_character", path, where)
    if boxed_k and source != "din":
        raise ConfigError(path, f"{where}.boxed_check_character", "only the din field has a check character")
    caption = table.get("caption")
    if caption is not None and not isinstance(caption, str):
        raise ConfigError(path, f"{where}.caption", f"expected text, got {caption!r}")
    return TextBlock(
        where=where, field=source if field else None, text=None if field else source,
        box_mm=_lengths(require(table, "box_mm", list, path, where), 4, path, f"{where}.box_mm"),  # type: ignore[arg-type]
        font=_font(require(table, "font", str, path, where), path, f"{where}.font"),
        max_font_pt=max_pt, min_font_pt=min_pt,
        align=_choice(table, "align", ALIGNMENTS, "left", path, where),
        valign=_choice(table, "valign", VALIGNMENTS, "top", path, where),
        caption=caption, wrap=_flag(table, "wrap", path, where), frame=_flag(table, "frame", path, where),
        inverse=_flag(table, "inverse", path, where), boxed_check_character=boxed_k)


def _symbol(table: dict[str, Any], path: Path, where: str) -> Symbol:
    _check_keys(table, _SYMBOL_KEYS, path, where)
    kind = _choice(table, "kind", tuple(SYMBOL_CONTENTS), "", path, where)
    content = require(table, "content", str, path, where)
    if content not in SYMBOL_CONTENTS[kind]:
        raise ConfigError(path, f"{where}.content",
                          f"a {kind} symbol carries {', '.join(sorted(SYMBOL_CONTENTS[kind]))}, not {content!r}")
    box = _lengths(require(table, "box_mm", list, path, where), 4, path, f"{where}.box_mm")
    if kind == "qr" and abs(box[2] - box[3]) > 0.01:
        raise ConfigError(path, f"{where}.box_mm", "a QR code box must be square")
    if kind != "qr" and "error_correction" in table:
        raise ConfigError(path, f"{where}.error_correction", "only a QR code has an error correction level")
    module = _length(table.get("min_module_mm", Decimal("0.25")), path, f"{where}.min_module_mm")
    return Symbol(where=where, kind=kind, content=content, box_mm=box,  # type: ignore[arg-type]
                  error_correction=_choice(table, "error_correction", ERROR_CORRECTION_LEVELS, "Q", path, where),
                  min_module_mm=module)


def _rule(table: dict[str, Any], path: Path, where: str) -> Rule:
    _check_keys(table, _LINE_KEYS, path, where)
    return Rule(from_mm=_lengths(require(table, "from_mm", list, path, where), 2, path, f"{where}.from_mm"),  # type: ignore[arg-type]
                to_mm=_lengths(require(table, "to_mm", list, path, where), 2, path, f"{where}.to_mm"),  # type: ignore[arg-type]
                width_pt=_length(table.get("width_pt", Decimal("0.5")), path, f"{where}.width_pt"))


def _check_geometry(layout: LabelLayout) -> None:
    """Every box inside the page and no two boxes overlapping (touching edges is allowed)."""
    path, placed = layout.path, [*layout.blocks, *layout.symbols]
    for item in placed:
        x, y, w, h = item.box_mm
        if x + w > layout.width_mm + 1e-6 or y + h > layout.height_mm + 1e-6:
            raise ConfigError(path, f"{item.where}.box_mm",
                              f"box [{x}, {y}, {w}, {h}] leaves the {layout.width_mm} x {layout.height_mm} mm label")
    for index, rule in enumerate(layout.rules):
        for point, key in ((rule.from_mm, "from_mm"), (rule.to_mm, "to_mm")):
            if point[0] > layout.width_mm or point[1] > layout.height_mm:
                raise ConfigError(path, f"lines[{index}].{key}", f"line end {list(point)} leaves the label")
    for i, first in enumerate(placed):
        for second in placed[i + 1:]:
            if _overlap(first.box_mm, second.box_mm):
                raise ConfigError(path, f"{second.where}.box_mm", f"overlaps {_describe(first)}")
    for block in layout.blocks:
        _, _, width, height = block.content_box_pt(layout.caption_pt)
        if block.caption and max(pdfmetrics.stringWidth(caption_text(block.caption, basis), layout.caption_font,
                                                        layout.caption_pt) for basis in CELL_BASES) > width:
            raise ConfigError(path, f"{block.where}.caption", f"caption {block.caption!r} is wider than its box")
        if height <= 0:
            raise ConfigError(path, f"{block.where}.box_mm", "no room for text below the caption")
        if block.text and fit_text([block.text], block.font, width, height, block.max_font_pt,
                                   block.min_font_pt, wrap=block.wrap) is None:
            raise ConfigError(path, f"{block.where}.text",
                              f"{block.text!r} does not fit its box even at {block.min_font_pt} pt")


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return (min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]) > 1e-6
            and min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]) > 1e-6)


def _describe(item: TextBlock | Symbol) -> str:
    if isinstance(item, Symbol):
        return f"{item.where} ({item.kind} {item.content})"
    return f"{item.where} ({item.field or repr(item.text)})"
