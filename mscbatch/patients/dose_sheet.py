"""The ward's dose sheet (PDF, ReportLab): patient, prescription, the bags with their DINs and boxed check
characters K, the volumes to draw, the calculation and the signatures (DOMAIN.md sections 6, 7, 9).

Built in two steps: dose_sheet_data() reads everything into plain values (also shown on the prescription
page), render_dose_sheet() draws them. The sheet carries no more identity than the wristband check needs
(trial code, initials, date of birth, wristband identifier).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlalchemy.orm import Session

from mscbatch.core.culture import format_cells
from mscbatch.core.dosing import stored_endotoxin_limit_words
from mscbatch.core.protocols import format_cells_per_kg
from mscbatch.labels.render import expiry_lines
from mscbatch.lots.models import Bag, Lot
from mscbatch.patients.models import Patient, Prescription
from mscbatch.patients.queries import allocations_of, protocols, signatures_for
from mscbatch.site import site_config


def millions(cells: Any) -> str:
    """As the label and the lot page write cells (one rule: culture.format_cells)."""
    return format_cells(Decimal(str(cells)))


@dataclass(frozen=True)
class SheetBag:
    din: str
    check_character: str
    product_code: str
    lot_number: str
    expiry: tuple[str, ...]  # the site's local time, then UTC (two lines, as the bag label prints it)
    bag_volume_ml: str
    draw_volume_ml: str
    cells: str
    partial: bool
    conditional: bool


@dataclass(frozen=True)
class DoseSheet:
    patient: Patient
    prescription: Prescription
    trial: str
    facts: list[tuple[str, str]]
    bags: list[SheetBag]
    signatures: list[str]
    warnings: list[str]


def dose_sheet_data(session: Session, prescription: Prescription) -> DoseSheet:
    patient = session.get(Patient, prescription.patient_id)
    assert patient is not None
    protocol = protocols().get(prescription.protocol_id)
    trial = f"{protocol.short_name} ({protocol.trial_id})" if protocol else prescription.protocol_id
    calc = prescription.calculation
    weight = Decimal(prescription.weight_kg)
    limit, caution = stored_endotoxin_limit_words(calc)  # the infusion time the limit assumes is on the sheet
    endotoxin = (f"{calc['endotoxin_eu']} EU ({limit}). {caution}" if calc.get("endotoxin_eu")
                 else f"no result on the bags; {limit} "
                      f"({Decimal(calc['endotoxin_limit_eu_per_ml']).quantize(Decimal('0.01'))} EU/mL "
                      f"for {calc['infused_volume_ml']} mL). {caution}")
    facts = [
        ("Dose level", format_cells_per_kg(Decimal(prescription.dose_level_cells_per_kg))
         + f" ({calc['dose_basis']} cells)"),
        ("Weight used", f"{weight.normalize():f} kg, measured {prescription.weight_measured_on}"),
        ("Target", f"{millions(calc['target_cells'])} cells (band {millions(calc['low_cells'])} - "
                   f"{millions(calc['high_cells'])}, +/- {calc['tolerance_percent']} %)"),
        ("Delivered", f"{millions(calc['delivered_cells'])} cells = {millions(calc['delivered_cells_per_kg'])}/kg "
                      f"({calc['deviation_percent']} % from target)"),
        ("Bags", f"{calc['bag_count']}; total volume {calc['total_volume_ml']} mL"),
        ("DMSO", f"{Decimal(calc['dmso_g']).quantize(Decimal('0.01'))} g = {calc['dmso_g_per_kg']} g/kg "
                 f"(limit {calc['max_dmso_g_per_kg']} g/kg/day)"),
        ("Endotoxin", endotoxin),
        ("Protocol", f"{prescription.protocol_id} v{prescription.protocol_version} "
                     f"(SHA-256 {prescription.protocol_sha256[:12]}...)"),
        ("Planned infusion", "by " + " (".join(expiry_lines(prescription.planned_at, site_config().timezone)) + ")"),
        ("Status", prescription.status),
    ]
    repeat = calc.get("repeat_course")
    if repeat:  # signed with the prescription (prescriptions._signed_calculation)
        facts.insert(4, ("Repeat course", f"{repeat['reason']}. Given before it: {repeat['already_infused_words']}; "
                                          "this dose is in addition"))
    bags = []
    for row in allocations_of(session, prescription.id):
        bag = session.get(Bag, row.bag_id)
        assert bag is not None
        lot = session.get(Lot, bag.lot_id)
        assert lot is not None
        bags.append(SheetBag(bag.din, bag.check_character, bag.product_code, lot.lot_number,
                             tuple(expiry_lines(bag.expires_at, site_config().timezone)),
                             f"{bag.volume_ml}", f"{row.volume_ml}",
                             millions(row.cells), row.partial, row.conditional_release))
    signed = signatures_for(session, "prescription", [prescription.id]).get(prescription.id, [])
    signatures = [f"{s.printed_name}, {s.signed_at:%Y-%m-%d %H:%M} UTC: \"{s.meaning}\"" for s in signed]
    warnings = [f"Bag {b.din}: lot conditionally released (a test is pending); the clinician is notified of any "
                "late out-of-specification result." for b in bags if b.conditional]
    if prescription.status != "active":
        warnings.insert(0, f"This prescription is {prescription.status.upper()}: do not infuse.")
    return DoseSheet(patient, prescription, trial, facts, bags, signatures, warnings)


#: the bag table's columns (mm, 180 in all: A4 less its margins), with 3 pt padding: the DIN (22 mm at 8.5 pt), a lot
#: number such as MSC-2026-0003 (22 mm) and an expiry in local time over UTC ("2027-09-30 18:21 CEST": 32.5 mm)
#: each fit on one line; a longer one wraps inside its own column
BAG_COLUMNS_MM = {"DIN": 25, "K": 7, "Product code": 18, "Lot": 26, "Expiry": 37, "Bag mL": 12, "Draw mL": 13,
                  "Cells": 18, "Use": 24}


def _table(rows: list[list[Any]], widths: list[float], header: bool = True) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1 if header else 0)
    style = [("GRID", (0, 0), (-1, -1), 0.4, colors.grey), ("VALIGN", (0, 0), (-1, -1), "TOP"),
             ("FONTSIZE", (0, 0), (-1, -1), 8.5)]
    if header:
        style += [("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef4")), ("FONTNAME", (0, 0), (-1, 0),
                                                                                 "Helvetica-Bold")]
    table.setStyle(TableStyle(style))
    return table


def render_dose_sheet(sheet: DoseSheet) -> bytes:
    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=8.5, leading=10.5)
    out = io.BytesIO()
    p, rx = sheet.patient, sheet.prescription
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                            bottomMargin=15 * mm, title=f"Dose sheet {p.code} prescription {rx.id}",
                            author="mscbatch")
    story: list[Any] = [Paragraph(f"MSC dose sheet - prescription {rx.id}", styles["Title"]),
                        Paragraph(f"For clinical trial use only: {sheet.trial}", styles["Heading4"])]
    for warning in sheet.warnings:
        story.append(Paragraph(f"<font color='#b00020'><b>{warning}</b></font>", small))
    story += [Paragraph("Patient", styles["Heading3"]), _table([
        ["Trial patient", "Initials", "Date of birth", "Sex", "Ward", "Wristband"],
        [p.code, p.initials, str(p.date_of_birth), p.sex, p.ward, p.wristband_id]], [32 * mm, 20 * mm, 26 * mm,
                                                                                    16 * mm, 40 * mm, 46 * mm])]
    story += [Paragraph("Prescription and calculation", styles["Heading3"]),
              _table([[k, Paragraph(v, small)] for k, v in sheet.facts], [38 * mm, 142 * mm], header=False)]
    # every cell a paragraph, so that a long lot number or a heading wraps inside its column instead of running
    # into the next (a lot number printed over its expiry read "MSC-2026-00032027-12-02")
    head = small.clone("head", fontName="Helvetica-Bold")
    rows: list[list[Any]] = [[Paragraph(h, head) for h in ("DIN", "K", "Product code", "Lot", "Expiry", "Bag mL",
                                                             "Draw mL", "Cells", "Use")]]
    for b in sheet.bags:
        use = "PARTIAL draw" if b.partial else "whole bag"
        expiry = "<br/>".join(escape(line) for line in b.expiry)
        rows.append([b.din, b.check_character, Paragraph(escape(b.product_code), small),
                     Paragraph(escape(b.lot_number), small), Paragraph(expiry, small), b.bag_volume_ml,
                     b.draw_volume_ml, Paragraph(b.cells, small),
                     Paragraph(use + (" (cond.)" if b.conditional else ""), small)])
    bag_table = _table(rows, [BAG_COLUMNS_MM[name] * mm for name in BAG_COLUMNS_MM])
    bag_table.setStyle(TableStyle([("BOX", (1, 1), (1, -1), 1.4, colors.black),
                                   ("FONTNAME", (1, 1), (1, -1), "Helvetica-Bold"),
                                   ("ALIGN", (1, 0), (1, -1), "CENTER"),
                                   ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3)]))
    story += [Paragraph("Bags", styles["Heading3"]), bag_table,
              Paragraph("K: keyboard check character (ISO/IEC 7064 MOD 37-2) printed boxed on the label.", small)]
    story += [Paragraph("Signatures", styles["Heading3"])]
    story += [Paragraph(s, small) for s in sheet.signatures] or [Paragraph("Not signed.", small)]
    story += [Spacer(1, 6 * mm), _table([["Bedside check (two qualified people)", "Name", "Date / time", "Signature"],
                                          ["Wristband, bag DINs and prescription match", "", "", ""],
                                          ["Second person", "", "", ""]], [70 * mm, 40 * mm, 35 * mm, 35 * mm])]
    doc.build(story)
    return out.getvalue()
