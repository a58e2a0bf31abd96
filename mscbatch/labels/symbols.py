"""Machine-readable symbols on labels: the ward QR code and the Code 128 of the DIN (DOMAIN.md section 7).

ISBT 128 practice puts the DIN on the container label as a Code 128 symbol for standard scanners, in its data
structure 001 (ST-001): the data identifier "=" then the 13-character DIN then two flag characters, "00" when
the flags are not used (isbt128_din); our QR code is an extra, signed, patient-data-free token for phones at the
bedside (error correction Q or H). Module sizes are snapped to whole printer dots, so a 300 dpi thermal printer
draws every bar and module the same width (uneven modules are the usual cause of a label that prints but does
not scan), and quiet zones (4 modules for QR, ISO/IEC 18004; 10 modules for Code 128, ISO/IEC 15417) are kept
inside the symbol's box.
"""
from __future__ import annotations

import math

import qrcode
from qrcode.constants import ERROR_CORRECT_H, ERROR_CORRECT_Q
from reportlab.graphics.barcode.code128 import Code128
from reportlab.pdfgen.canvas import Canvas

from mscbatch.core.identifiers import ISBT128_DIN_IDENTIFIER, ISBT128_FLAGS_UNUSED, Din
from mscbatch.labels import LabelOverflow

MM = 72 / 25.4
QR_QUIET_MODULES = 4
CODE128_QUIET_MODULES = 10
_LEVELS = {"Q": ERROR_CORRECT_Q, "H": ERROR_CORRECT_H}




def isbt128_din(din: Din, flags: str = ISBT128_FLAGS_UNUSED) -> str:
    """The ISBT 128 Donation Identification Number data structure (001): "=" + the 13-character DIN + 2 flag
    characters, e.g. "=X99992600000100". The keyboard check character K is not part of it (it is printed in its
    box for typing, never encoded). Flags other than "00" (unused) are ICCBBA-defined: none are printed yet."""
    if len(flags) != 2 or not flags.isascii() or not flags.isalnum():
        raise ValueError(f"ISBT 128 DIN flags are 2 characters, got {flags!r}")
    return f"{ISBT128_DIN_IDENTIFIER}{din.text}{flags}"


def qr_matrix(text: str, error_correction: str = "Q") -> list[list[bool]]:
    """The QR modules (True = dark), smallest version that holds `text`, without quiet zone."""
    if error_correction not in _LEVELS:
        raise ValueError(f"QR error correction must be Q or H, not {error_correction!r}")
    code = qrcode.QRCode(version=None, error_correction=_LEVELS[error_correction], border=0, box_size=1)
    code.add_data(text)
    code.make(fit=True)
    return [list(row) for row in code.get_matrix()]


def module_pt(available_pt: float, modules: int, printer_dpi: int) -> float:
    """The largest module width that is a whole number of printer dots and fits `modules` in the space."""
    dot = 72 / printer_dpi
    return math.floor(available_pt / modules / dot + 1e-9) * dot


def snap(value_pt: float, printer_dpi: int) -> float:
    dot = 72 / printer_dpi
    return round(value_pt / dot) * dot


def draw_qr(canvas: Canvas, text: str, box_pt: tuple[float, float, float, float], *, error_correction: str,
            min_module_mm: float, printer_dpi: int, field: str = "token_url") -> float:
    """Draw a QR code centred in box (x, y bottom-left, width, height in points); return the module in mm."""
    matrix = qr_matrix(text, error_correction)
    count = len(matrix)
    x, y, width, height = box_pt
    module = module_pt(min(width, height), count + 2 * QR_QUIET_MODULES, printer_dpi)
    if module <= 0 or module < min_module_mm * MM - 1e-6:
        raise LabelOverflow(field, text,
                            f"QR code of {count} x {count} modules does not fit {width / MM:.1f} mm with modules "
                            f"of at least {min_module_mm} mm: shorten the base URL or enlarge the symbol")
    side = count * module
    left = snap(x + (width - side) / 2, printer_dpi)
    top = snap(y + (height + side) / 2, printer_dpi)
    path = canvas.beginPath()
    for row_index, row in enumerate(matrix):
        column = 0
        while column < count:
            if not row[column]:
                column += 1
                continue
            start = column
            while column < count and row[column]:
                column += 1
            path.rect(left + start * module, top - (row_index + 1) * module, (column - start) * module, module)
    canvas.saveState()
    canvas.setFillGray(0)
    canvas.drawPath(path, stroke=0, fill=1)
    canvas.restoreState()
    return module / MM


def draw_code128(canvas: Canvas, value: str, box_pt: tuple[float, float, float, float], *, min_module_mm: float,
                 printer_dpi: int, field: str = "din") -> float:
    """Draw a Code 128 symbol (no human-readable line) centred in box; return the module width in mm."""
    x, y, width, height = box_pt
    modules = round(Code128(value, barWidth=1, quiet=0).width) + 2 * CODE128_QUIET_MODULES
    module = module_pt(width, modules, printer_dpi)
    if module <= 0 or module < min_module_mm * MM - 1e-6:
        raise LabelOverflow(field, value,
                            f"Code 128 of {value!r} needs {modules} modules of at least {min_module_mm} mm "
                            f"({modules * min_module_mm:.1f} mm with quiet zones); its box is {width / MM:.1f} mm")
    symbol = Code128(value, barWidth=module, barHeight=height, quiet=0, humanReadable=0)
    left = snap(x + (width - symbol.width) / 2, printer_dpi)
    symbol.drawOn(canvas, left, y)
    return module / MM


def draw_biohazard(canvas: Canvas, box_pt: tuple[float, float, float, float]) -> None:
    """The biohazard symbol of the biohazard legend (21 CFR 1271.3(h)), black, centred in box (x, y bottom-left,
    width, height in points): three open crescents round a broken ring and a central hole, in the classic
    proportions (units of a symbol 50 wide): lobes of radius 15 at 11 from the centre, cut by circles of radius 11
    at 15.5, a ring of radius 11.25 and width 2.5, a hole of radius 3, gaps 1 wide."""
    x, y, width, height = box_pt
    unit = min(width, height) / 50
    cx = x + width / 2
    cy = y + height / 2 - 2.75 * unit  # the symbol reaches 26 units up and 20.5 down from its centre
    angles = (90.0, 210.0, 330.0)

    def at(angle: float, distance: float) -> tuple[float, float]:
        return cx + distance * unit * math.cos(math.radians(angle)), cy + distance * unit * math.sin(math.radians(angle))

    canvas.saveState()
    canvas.setFillGray(0)
    for angle in angles:
        canvas.circle(*at(angle, 11), 15 * unit, stroke=0, fill=1)
    canvas.setFillGray(1)
    for angle in angles:
        canvas.circle(*at(angle, 15.5), 11 * unit, stroke=0, fill=1)
    canvas.setStrokeGray(0)
    canvas.setLineWidth(2.5 * unit)
    canvas.circle(cx, cy, 11.25 * unit, stroke=1, fill=0)
    canvas.circle(cx, cy, 3 * unit, stroke=0, fill=1)
    canvas.setStrokeGray(1)
    canvas.setLineWidth(1 * unit)
    for angle in angles:
        canvas.line(*at(angle, 3), *at(angle, 13))
    canvas.restoreState()
