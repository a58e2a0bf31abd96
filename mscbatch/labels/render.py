"""One ReportLab renderer for every label layout (DESIGN.md "Layout as data", issue 7).

Labels carry the content 21 CFR 1271.370 and ISBT 128 practice require (DOMAIN.md section 7). Text is never
allowed to overflow: each field shrinks from its maximum to its minimum font size (measured with
pdfmetrics.stringWidth, wrapped when the field allows) and otherwise raises LabelOverflow naming the field.
Output: render_labels gives one label per page sized to the label (label printers); render_sheet tiles
labels on office paper. PDFs are built with ReportLab's invariant mode, so the same input gives the same bytes.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas

from mscbatch.core.culture import format_cells
from mscbatch.labels import (
    LEADING,
    LabelData,
    LabelError,
    LabelOverflow,
    face_height,
    fit_text,
    printable,
    recipient_lines,
)
from mscbatch.labels.layout import MM, LabelLayout, TextBlock, caption_text
from mscbatch.labels.symbols import draw_biohazard, draw_code128, draw_qr, isbt128_din

PAPER_MM = {"A4": (210.0, 297.0), "letter": (215.9, 279.4)}
FRAME_PT = 0.8
GUIDE_GREY = 0.75


def _plain(value: Decimal | int) -> str:
    return f"{Decimal(value).normalize():f}"


def expiry_lines(expiry: datetime, timezone_name: str) -> list[str]:
    """Expiry as local date and time with UTC beneath (DOMAIN.md section 7: shipments cross time zones)."""
    local = expiry.astimezone(ZoneInfo(timezone_name))
    zone = local.tzname() or timezone_name
    if zone[:1] in "+-":
        zone = f"UTC{zone}"
    utc = expiry.astimezone(ZoneInfo("UTC"))
    return [f"{local:%Y-%m-%d %H:%M} {zone}", f"{utc:%Y-%m-%d %H:%M} UTC"]


_FORMATTERS: dict[str, Callable[[LabelData], list[str]]] = {
    "din": lambda d: [f"{d.din.fin} {d.din.year:02d} {d.din.sequence:06d}"],
    "collection_date": lambda d: [d.collection_date.isoformat()],
    "volume_ml": lambda d: [f"{_plain(d.volume_ml)} mL"],
    "total_cells": lambda d: [format_cells(d.total_cells)],  # as the lot, dose and ward pages write it
    "cells_per_ml": lambda d: [f"{format_cells(d.cells_per_ml)} /mL"],
    "dmso_percent": lambda d: [f"{_plain(d.dmso_percent)} % (v/v)"],
    "expiry": lambda d: expiry_lines(d.expiry, d.timezone_name),
    "intended_recipient": lambda d: recipient_lines(d.intended_recipient),
    "warnings": lambda d: [w for w in d.warnings if w.strip()],
    "reprint": lambda d: ["REPRINT"] if d.reprint else [],
    "release_marker": lambda d: [d.release_marker.upper()] if d.release_marker else [],
}


def field_paragraphs(data: LabelData, field: str) -> list[str]:
    """What a field prints, one string per forced line; an empty list leaves the field (and its box) blank."""
    formatter = _FORMATTERS.get(field)
    if formatter is not None:
        return formatter(data)
    value = getattr(data, field)
    return [str(value)] if value not in (None, "") else []


def render_labels(layout: LabelLayout, labels: Sequence[LabelData]) -> bytes:
    """One label per page, the page the size of the label: for label printers (one bag or a whole lot)."""
    _require_labels(labels)
    buffer = io.BytesIO()
    canvas = _canvas(buffer, layout, (layout.width_mm * MM, layout.height_mm * MM))
    for data in labels:
        draw_label(canvas, layout, data, (0.0, 0.0))
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def render_sheet(layout: LabelLayout, labels: Sequence[LabelData], paper: str = "A4", *, margin_mm: float = 5.0,
                 gap_mm: float = 0.0, cut_guides: bool = True) -> bytes:
    """Labels tiled on office paper (row by row, centred, within the printer margin), with grey cut guides."""
    _require_labels(labels)
    if paper not in PAPER_MM:
        raise LabelError(f"paper {paper!r} is not known; use one of {', '.join(PAPER_MM)}")
    paper_w, paper_h = PAPER_MM[paper]
    columns = int((paper_w - 2 * margin_mm + gap_mm + 1e-6) // (layout.width_mm + gap_mm))
    rows = int((paper_h - 2 * margin_mm + gap_mm + 1e-6) // (layout.height_mm + gap_mm))
    if columns < 1 or rows < 1:
        raise LabelError(f"a {layout.width_mm} x {layout.height_mm} mm label does not fit on {paper} "
                         f"with {margin_mm} mm margins")
    grid_w = columns * layout.width_mm + (columns - 1) * gap_mm
    grid_h = rows * layout.height_mm + (rows - 1) * gap_mm
    left, top = (paper_w - grid_w) / 2, (paper_h + grid_h) / 2
    buffer = io.BytesIO()
    canvas = _canvas(buffer, layout, (paper_w * MM, paper_h * MM))
    per_page = columns * rows
    for index, data in enumerate(labels):
        if index and index % per_page == 0:
            canvas.showPage()
        row, column = divmod(index % per_page, columns)
        x = (left + column * (layout.width_mm + gap_mm)) * MM
        y = (top - row * (layout.height_mm + gap_mm) - layout.height_mm) * MM
        if cut_guides:
            canvas.saveState()
            canvas.setStrokeGray(GUIDE_GREY)
            canvas.setLineWidth(0.25)
            canvas.rect(x, y, layout.width_mm * MM, layout.height_mm * MM, stroke=1, fill=0)
            canvas.restoreState()
        draw_label(canvas, layout, data, (x, y))
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def draw_label(canvas: Canvas, layout: LabelLayout, data: LabelData, origin_pt: tuple[float, float]) -> None:
    """Draw one label with its bottom-left corner at origin_pt (page coordinates, points)."""
    ox, oy = origin_pt
    page_top = oy + layout.height_mm * MM
    if data.biohazard and not any(block.field == "warnings" for block in layout.blocks):
        raise LabelError(f"label {layout.id} has no warnings field: a biohazard product's label carries the biohazard "
                         "legend there (21 CFR 1271.3(h)); print it on a layout that has one")
    canvas.saveState()
    for rule in layout.rules:
        canvas.setLineWidth(rule.width_pt)
        canvas.line(ox + rule.from_mm[0] * MM, page_top - rule.from_mm[1] * MM,
                    ox + rule.to_mm[0] * MM, page_top - rule.to_mm[1] * MM)
    for block in layout.blocks:
        _draw_block(canvas, layout, block, data, ox, page_top)
    for symbol in layout.symbols:
        x, y, w, h = (v * MM for v in symbol.box_mm)
        box = (ox + x, page_top - y - h, w, h)
        if symbol.kind == "qr":
            draw_qr(canvas, data.token_url, box, error_correction=symbol.error_correction,
                    min_module_mm=symbol.min_module_mm, printer_dpi=layout.printer_dpi)
        else:
            draw_code128(canvas, isbt128_din(data.din), box, min_module_mm=symbol.min_module_mm,
                         printer_dpi=layout.printer_dpi)
    canvas.restoreState()


def _draw_block(canvas: Canvas, layout: LabelLayout, block: TextBlock, data: LabelData, ox: float,
                page_top: float) -> None:
    paragraphs = field_paragraphs(data, block.field) if block.field else [block.text or ""]
    if not paragraphs:
        return
    name = block.field or repr(block.text)
    for paragraph in paragraphs:
        problem = printable(paragraph)  # the rule entry forms ask first (mscbatch.labels.field_problem)
        if problem:
            raise LabelError(f"{name}: {paragraph!r} {problem}")
    check = data.din.check_character if block.boxed_check_character else ""
    reserve = (lambda size: _k_box(block.font, size, check)[0]) if check else None
    left, top, width, height = block.content_box_pt(layout.caption_pt)
    symbol = _biohazard_side(block, data, width, height)
    if symbol:  # the biohazard legend (21 CFR 1271.3(h)): the symbol, then the word, never the word alone
        left, width = left + symbol + BIOHAZARD_GAP_MM * MM, width - symbol - BIOHAZARD_GAP_MM * MM
    fitted = fit_text(paragraphs, block.font, width, height, block.max_font_pt, block.min_font_pt,
                      wrap=block.wrap, reserve_pt=reserve)
    if fitted is None:
        x, y, w, h = block.box_mm
        raise LabelOverflow(block.field or "text", " / ".join(paragraphs),
                            f"label {layout.id}: {block.where} ({name}): {' / '.join(paragraphs)!r} does not fit "
                            f"its {w} x {h} mm box even at {block.min_font_pt} pt")
    x_mm, y_mm, w_mm, h_mm = block.box_mm
    if block.inverse or block.frame:
        canvas.setLineWidth(FRAME_PT)
        canvas.rect(ox + x_mm * MM, page_top - (y_mm + h_mm) * MM, w_mm * MM, h_mm * MM,
                    stroke=1, fill=1 if block.inverse else 0)
    canvas.setFillGray(1 if block.inverse else 0)
    canvas.setStrokeGray(1 if block.inverse else 0)
    if block.caption:
        caption = caption_text(block.caption, data.cell_basis)
        canvas.setFont(layout.caption_font, layout.caption_pt)
        caption_top = top - layout.caption_pt * LEADING
        caption_w = pdfmetrics.stringWidth(caption, layout.caption_font, layout.caption_pt)
        caption_x = {"left": 0.0, "center": (width - caption_w) / 2, "right": width - caption_w}[block.align]
        canvas.drawString(ox + left + caption_x,
                          page_top - caption_top - pdfmetrics.getAscent(layout.caption_font, layout.caption_pt),
                          caption)
    size = fitted.size_pt
    needed = (len(fitted.lines) - 1) * size * LEADING + face_height(block.font, size)
    slack = (height - needed) / 2 if block.valign == "middle" or symbol else 0.0
    if symbol:
        symbol_left = ox + left - symbol - BIOHAZARD_GAP_MM * MM
        draw_biohazard(canvas, (symbol_left, page_top - top - (height + symbol) / 2, symbol, symbol))
        canvas.setFillGray(1 if block.inverse else 0)
    baseline = page_top - top - slack - pdfmetrics.getAscent(block.font, size)
    canvas.setFont(block.font, size)
    for index, line in enumerate(fitted.lines):
        extra = _k_box(block.font, size, check)[0] if check and index == 0 else 0.0
        line_w = pdfmetrics.stringWidth(line, block.font, size) + extra
        x = ox + left + {"left": 0.0, "center": (width - line_w) / 2, "right": width - line_w}[block.align]
        canvas.drawString(x, baseline, line)
        if extra:
            _draw_k(canvas, block.font, size, check, x + line_w - extra, baseline)
        baseline -= size * LEADING
    canvas.setFillGray(0)
    canvas.setStrokeGray(0)


BIOHAZARD_GAP_MM = 1.0


def _biohazard_side(block: TextBlock, data: LabelData, width: float, height: float) -> float:
    """The side of the biohazard symbol drawn at the start of the warnings field (points), 0 when none: the box's
    height, at most a third of its width (the word BIOHAZARD keeps the rest)."""
    if block.field != "warnings" or not data.biohazard:
        return 0.0
    return min(height, width / 3)


def _k_box(font: str, size: float, check: str) -> tuple[float, float, float]:
    """(total width kept after the DIN, gap before the box, box width) for the boxed check character K."""
    gap, pad = 0.35 * size, 0.22 * size
    box_w = pdfmetrics.stringWidth(check, font, size) + 2 * pad
    return gap + box_w + FRAME_PT, gap, box_w


def _draw_k(canvas: Canvas, font: str, size: float, check: str, x: float, baseline: float) -> None:
    """ISBT 128 keyboard check character: printed after the DIN, in a box, so nobody scans it as part of the DIN."""
    _, gap, box_w = _k_box(font, size, check)
    left = x + gap
    canvas.setLineWidth(FRAME_PT)
    canvas.rect(left, baseline - 0.14 * size, box_w, 0.98 * size, stroke=1, fill=0)
    canvas.drawCentredString(left + box_w / 2, baseline, check)


def _canvas(buffer: io.BytesIO, layout: LabelLayout, pagesize: tuple[float, float]) -> Canvas:
    canvas = Canvas(buffer, pagesize=pagesize, invariant=1, pageCompression=1)
    canvas.setTitle(f"{layout.name}")
    canvas.setCreator("mscbatch")
    canvas.setSubject(f"layout {layout.id} version {layout.version} sha256 {layout.sha256}")
    return canvas


def _require_labels(labels: Sequence[LabelData]) -> None:
    if not labels:
        raise LabelError("no labels to print")
