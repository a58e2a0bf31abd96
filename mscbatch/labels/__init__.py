"""Bag and sample labels (issue 7): what a label prints (LabelData), and the rule that text fits or fails.

Pure: plain dataclasses in, PDF bytes out (mscbatch.labels.layout loads layouts, mscbatch.labels.render draws
them). The service layer only maps a bag to a LabelData. Content follows 21 CFR 1271.370 and ISBT 128
labelling practice (DOMAIN.md section 7); nothing printed may be cut off or run into a neighbouring field,
so text shrinks down to the layout's minimum size and otherwise raises LabelOverflow.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reportlab.pdfbase import pdfmetrics

from mscbatch.core.identifiers import Din

LEADING = 1.15
"""Line pitch as a multiple of the font size."""
SHRINK_STEP_PT = 0.25


class LabelError(ValueError):
    """A label cannot be printed as asked (bad data for a label). The message says what and where."""


class LabelOverflow(LabelError):
    """A text does not fit its field even at the field's minimum font size. Names the field."""

    def __init__(self, field: str, text: str, message: str):
        self.field = field
        self.text = text
        super().__init__(message)


@dataclass(frozen=True)
class LabelData:
    """Everything one label prints, already decided by the service (no database rows in here).

    Required content per 21 CFR 1271.370 / ISBT 128 practice: DIN with boxed check character, product name,
    class and code, division ("bag 2 of 4"), lot, facilities, collection date, volume, cells and cells/mL,
    DMSO %, storage temperature, expiry (local with UTC beneath), intended recipient when directed, warnings,
    trial id. `token_url` is the signed, patient-data-free QR content (mscbatch.core.label_token).
    """

    din: Din
    product_name: str
    product_class: str
    product_code: str
    division_text: str
    lot_number: str
    collection_facility: str
    processing_facility: str
    collection_date: date
    volume_ml: Decimal
    total_cells: int
    cells_per_ml: Decimal
    dmso_percent: Decimal
    storage_temperature: str
    expiry: datetime
    timezone_name: str
    trial_id: str
    token_url: str
    intended_recipient: str | None = None
    warnings: tuple[str, ...] = ()
    reprint: bool = False
    release_marker: str | None = None
    sample_type: str | None = None
    cell_basis: str = "viable"  # what total_cells and cells_per_ml count: the lot's dose basis (viable / total)
    # the biohazard legend of 21 CFR 1271.3(h) is the biohazard symbol with the word BIOHAZARD: the renderer draws the
    # symbol at the start of the layout's warnings field for a product whose code says biohazard (collection type 3)
    biohazard: bool = False

    def __post_init__(self) -> None:
        if self.expiry.tzinfo is None or self.expiry.utcoffset() is None:
            raise LabelError(f"expiry {self.expiry.isoformat()} has no time zone: the label prints local and UTC")
        try:
            ZoneInfo(self.timezone_name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise LabelError(f"unknown time zone {self.timezone_name!r}") from exc
        if isinstance(self.warnings, str):
            raise LabelError("warnings must be a list of texts, not one text")
        object.__setattr__(self, "warnings", tuple(self.warnings))


@dataclass(frozen=True)
class FittedText:
    size_pt: float
    lines: tuple[str, ...]


def face_height(font: str, size_pt: float) -> float:
    """Ascender to descender of one line, in points."""
    return pdfmetrics.getAscent(font, size_pt) - pdfmetrics.getDescent(font, size_pt)


def fit_text(paragraphs: Sequence[str], font: str, width_pt: float, height_pt: float, max_pt: float,
             min_pt: float, *, wrap: bool, reserve_pt: Callable[[float], float] | None = None) -> FittedText | None:
    """The largest size from max_pt down to min_pt at which the text fits its box, or None.

    Each paragraph starts a new line; with `wrap`, paragraphs break between words (never inside a word: a DIN
    or lot number split across lines could be misread). `reserve_pt(size)` is width kept free on the first
    line (the boxed check character after a DIN).
    """
    size = max_pt
    while True:
        lines = _lines_at(paragraphs, font, size, width_pt, wrap, reserve_pt(size) if reserve_pt else 0.0)
        if lines is not None:
            needed = (len(lines) - 1) * size * LEADING + face_height(font, size)
            if needed <= height_pt + 1e-6:
                return FittedText(size_pt=size, lines=tuple(lines))
        if size <= min_pt:
            return None
        size = max(min_pt, size - SHRINK_STEP_PT)


def _lines_at(paragraphs: Sequence[str], font: str, size: float, width: float, wrap: bool,
              reserve: float) -> list[str] | None:
    lines: list[str] = []
    for paragraph in paragraphs:
        if not wrap:
            lines.append(paragraph)
        else:
            current = ""
            for word in paragraph.split():
                candidate = f"{current} {word}" if current else word
                room = width - (reserve if not lines else 0.0)
                if current and pdfmetrics.stringWidth(candidate, font, size) > room:
                    lines.append(current)
                    current = word
                else:
                    current = candidate
            lines.append(current)
    for index, line in enumerate(lines):
        room = width - (reserve if index == 0 else 0.0)
        if pdfmetrics.stringWidth(line, font, size) > room + 1e-6:
            return None
    return lines


# ---- can a text be printed? (the renderer's own rules, for the places where the text is entered) ------------

LABEL_ENCODING = "cp1252"
"""The standard PDF fonts a layout may name (Helvetica...) print WinAnsi (cp1252) text only."""
INTENDED_RECIPIENT_LEGEND = "For use by intended recipient only"


def printable(text: str) -> str | None:
    """Why the label fonts cannot print `text` (plain words naming each character they lack), or None.

    The renderer refuses such a text at print time (a label is never printed with a missing glyph); an entry form
    asks this first, so that a value it accepts can be printed later."""
    missing = [char for char in dict.fromkeys(str(text)) if not _encodable(char)]
    if not missing:
        return None
    shown = ", ".join(repr(char) for char in missing)
    return (f"holds {'a character' if len(missing) == 1 else 'characters'} the label fonts cannot print ({shown}): "
            "replace each with a letter the label can print (e.g. L for \u0141)")


def _encodable(char: str) -> bool:
    if unicodedata.category(char) == "Cc":  # a control character (tab, line feed, NUL) prints nothing readable
        return False
    try:
        char.encode(LABEL_ENCODING)
    except UnicodeEncodeError:
        return False
    return True


def recipient_words(code: str, initials: str, date_of_birth: date) -> str:
    """A patient as a directed product's label names the intended recipient: "SLE-UC-007 AB born 1970-01-01"."""
    return f"{code} {initials} born {date_of_birth:%Y-%m-%d}"


def recipient_lines(recipient: str | None) -> list[str]:
    """What the intended-recipient box prints: the legend and the recipient, or nothing."""
    return [INTENDED_RECIPIENT_LEGEND, f"Recipient: {recipient}"] if recipient else []


def field_problem(field: str, value: str, layout: object | None = None) -> str | None:
    """Why `value` cannot be printed in the box of LabelData field `field` of a label layout (the bag label
    unless a LabelLayout is given): a character the label fonts lack, or too long for the box even at its
    smallest font size (the renderer's fit rule, fit_text, with the same box and fonts). None when it prints.

    `value` is the field's value as a LabelData holds it (for intended_recipient: the recipient words, e.g.
    "SLE-UC-007 AB born 1970-01-01"; the legend is added here as on the label). A field the layout does not
    print is not checked for length."""
    from mscbatch.labels.layout import BAG_LAYOUT, LabelLayout, load_layout

    chosen = layout if isinstance(layout, LabelLayout) else load_layout(BAG_LAYOUT)
    text = "" if value is None else str(value)
    paragraphs = recipient_lines(text) if field == "intended_recipient" else [text]
    for paragraph in paragraphs:
        problem = printable(paragraph)
        if problem:
            return problem
    for block in chosen.blocks:
        if block.field != field:
            continue
        _left, _top, width, height = block.content_box_pt(chosen.caption_pt)
        if fit_text(paragraphs, block.font, width, height, block.max_font_pt, block.min_font_pt,
                    wrap=block.wrap) is None:
            w_mm, h_mm = block.box_mm[2], block.box_mm[3]
            how = "" if block.wrap else " on one line"
            return (f"is too long for its {w_mm:g} x {h_mm:g} mm box on the label ({chosen.id}){how}, even at "
                    f"{block.min_font_pt:g} pt: shorten it")
    return None
