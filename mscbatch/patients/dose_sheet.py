"""The ward's dose sheet (PDF, ReportLab): patient, prescription, the bags with their DINs as their labels print
them ("X9999 26 000005 P", the check character K boxed, in one column), the volumes to draw, the calculation and the signatures (DOMAIN.md sections 6, 7, 9).

Built in two steps: dose_sheet_data() reads everything into plain values (also shown on the prescription
page), render_dose_sheet() draws them. The sheet carries no more identity than the wristband check needs
(trial code, initials, date of birth, wristband identifier).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from functools import partial
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.core.culture import format_cells
from mscbatch.core.dosing import (
    cells_per_kg_words,
    endotoxin_words,
    per_kg_words,
    stored_dmso_window_words,
    stored_endotoxin_limit_words,
)
from mscbatch.core.identifiers import din_shown, din_words
from mscbatch.core.pdf_pages import NumberedCanvas
from mscbatch.core.protocols import format_cells_per_kg
from mscbatch.custody.checks import course_short_words
from mscbatch.custody.queries import course_short
from mscbatch.labels.render import expiry_lines
from mscbatch.lots.models import Bag, Lot
from mscbatch.patients.course import COMPLETED_WORDS, bag_outcomes, course_completed, stop_words
from mscbatch.patients.endotoxin import unknown_load_words
from mscbatch.patients.infusion_rate import course_rate
from mscbatch.patients.models import Patient, Prescription
from mscbatch.patients.queries import (
    CONDITIONAL_WORDS,
    allocations_of,
    lot_state_words,
    protocols,
    signatures_for,
    weight_change_of,
)
from mscbatch.site import local_and_utc, site_config

#: the fact that gives the course's infusion rate (infusion_rate.CourseRate.total_words), on the page and the sheet
RATE_LABEL = "Infusion rate"


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
    conditional: bool  # the lot is conditionally released NOW (not when the bag was allocated)
    state: str = "to_give"  # course.BagOutcome.state: given, to_give, not_given
    outcome: str = ""  # what became of it (course.BagOutcome.words): empty while it is still to give
    given_cells: Decimal = Decimal(0)
    infused_ml: Decimal | None = None  # the volume recorded at the end of its infusion (given, ended)
    donor_code: str = ""  # the donor of its lot
    bag_id: int = 0
    #: the lot's current state beside the bag (queries.lot_state_words): "LOT RECALLED (R-2)", "LOT REJECTED",
    #: "LOT EXPIRED", "conditionally released" while it still is, else empty
    lot_state: str = ""
    #: the rate to set for this bag (infusion_rate: "25 mL over 20 min = 75.0 mL/h"); empty when it is not given
    rate: str = ""
    #: the same for the sheet's narrow column: ("75.0 mL/h", "20 min"), None when not given or no time is known
    rate_parts: tuple[str, str] | None = None

    @property
    def lot_ended(self) -> bool:
        return self.lot_state.startswith("LOT ")

    @property
    def shown(self) -> str:
        """The DIN as its label prints it, with K: "X9999 26 000005 P" (identifiers.din_shown)."""
        return din_words(self.din, self.check_character)

    @property
    def din_display(self) -> str:
        """The DIN without its K ("X9999 26 000005"), for the pages' boxed K (lots/_macros.html din)."""
        return self.shown.removesuffix(self.check_character).rstrip() if self.check_character else self.shown


@dataclass(frozen=True)
class BedsideRecord:
    """A bag's confirmed bedside check as recorded (custody.models.TwoPersonCheck, read only): who scanned and
    checked it, who confirmed it as the second person, and when (site time, UTC beside it)."""

    din: str  # as the label prints it, with K
    check_id: int
    checked_by: str
    checked_at: str
    confirmed_by: str
    confirmed_at: str


@dataclass(frozen=True)
class DoseSheet:
    patient: Patient
    prescription: Prescription
    trial: str
    facts: list[tuple[str, str]]
    bags: list[SheetBag]
    signatures: list[str]
    warnings: list[str]
    #: (headline, the rest) when a weight recorded since makes the prescription's bags give a dose outside it
    #: (WeightSincePrescription.no_longer_fits: the patient's page's words), said first on the page and the sheet
    weight_warning: tuple[str, str] | None = None
    #: every bag of the course given (derived: no stored status): "completed", not "stopped" nor "active"
    completed: bool = False
    #: the bedside checks confirmed for the prescription's bags, printed in the bedside box instead of blank rows
    bedside: tuple[BedsideRecord, ...] = ()
    #: the bags (as shown) still to be checked at the bedside: a blank box for them; none once nothing is to be given
    unchecked: tuple[str, ...] = ()
    #: why nothing (more) is to be given, in the words the prescription's page and sheet use for its state (a cancelled
    #: or stopped course): said in place of an invitation to a bedside check; empty for an active course
    closed_words: str = ""

    @property
    def status_label(self) -> str:
        """The course's state word of the page's badge: COMPLETED_WORDS, as the patient page's list says it."""
        return COMPLETED_WORDS if self.completed else str(self.prescription.status)

    @property
    def status_words(self) -> str:
        """The course's state as the page and the sheet say it: a course whose every bag was given is completed."""
        return "completed" if self.completed else str(self.prescription.status)


def infusion_planned(prescription: Prescription) -> bool:
    """Whether the clinician gave a planned infusion: without one, planned_at holds the minute of signing, which
    no page or report may show as a planned administration (the dose sheet, the recall's patients to notify)."""
    planned = prescription.calculation.get("infusion_planned")
    if planned is None:  # signed before the flag was stored: a planned day is the site's 23:59, never the signing
        planned = abs((prescription.planned_at - prescription.prescribed_at).total_seconds()) > 60
    return bool(planned)


def planned_words(prescription: Prescription) -> str:
    """The planned infusion as the clinician gave it; without a planned day, the sheet says so instead of printing
    the minute of signing as a deadline (the bags were judged in date, and the weight recent, at that moment; the
    bedside check judges both again when the bag is scanned)."""
    if not infusion_planned(prescription):
        return ("not planned: give as prescribed (bags in date and weight recent when signed; the bedside check "
                "judges both again when each bag is scanned)")
    return "by " + " (".join(expiry_lines(prescription.planned_at, site_config().timezone)) + ")"


#: the given fact's heading while no infusion runs, and while one does (its bag counted as prescribed until its end)
GIVEN_LABEL = "Delivered (infused)"
RUNNING_LABEL = "Given or running"
RUNNING_NOTE = "the running bag counted as prescribed until its end is recorded"


def running(bags: list[SheetBag]) -> list[SheetBag]:
    """The bags whose infusion started and whose end is not yet recorded."""
    return [b for b in bags if b.state == "given" and b.infused_ml is None]


def _given_words(prescription: Prescription, bags: list[SheetBag], weight: Decimal) -> str:
    """What the bags given delivered; while an infusion runs, its bag counts as prescribed (core.dosing.cells_given)
    and the words say so, so that a running bag never reads as fully given."""
    given = [b for b in bags if b.state == "given"]
    cells = sum((b.given_cells for b in given), Decimal(0))
    if not given:
        return ("nothing: cancelled before any bag was given" if prescription.status == "cancelled"
                else "nothing yet")
    note = ""
    if running(bags):
        note = f" ({RUNNING_NOTE.replace('bag', 'bags', 1) if len(running(bags)) > 1 else RUNNING_NOTE})"
    return (f"{millions(cells)} cells = {cells_per_kg_words(cells, weight)}{note}{_over_words(prescription, cells)}: "
            + "; ".join(f"bag {din_shown(b)} ({b.outcome.removeprefix('GIVEN: ')})" for b in given))


def _lot_warning(bag: SheetBag) -> str | None:
    """The warning a bag's lot state calls for now: a recalled, rejected or expired lot in capitals with what to
    do for this bag; a lot still conditionally released (a test pending); nothing for a released lot."""
    if bag.lot_ended:
        if bag.state == "given" and bag.infused_ml is None:
            todo = "its infusion is RUNNING: stop it now, tell the prescriber and follow the patient up"
        elif bag.state == "given":
            todo = "this bag was given to the patient: follow the patient up"
        elif bag.state == "to_give":
            todo = "do not give it"
        else:
            todo = "it was not given: never give it"
        return f"Bag {din_shown(bag)}: {bag.lot_state}: {todo}."
    if bag.conditional and bag.state != "not_given":
        return (f"Bag {din_shown(bag)}: lot {CONDITIONAL_WORDS} (a test is pending); the clinician is notified of "
                "any late out-of-specification result.")
    return None


def _over_words(prescription: Prescription, cells: Decimal) -> str:
    """" - ABOVE the prescription's range (+20 % from its target)" when the bags given delivered more than the
    band's upper end (a bag infused beyond its prescribed draw counts its cells in proportion), else nothing."""
    calc = prescription.calculation
    target, high = Decimal(calc["target_cells"]), Decimal(calc["high_cells"])
    if cells <= high or target <= 0:
        return ""
    percent = ((cells - target) * 100 / target).quantize(Decimal("0.1")).normalize()
    return (f" - ABOVE the prescription's range (+{percent:f} % from its target {millions(target)} cells; "
            f"upper end {millions(high)})")


def _infused_endotoxin_words(calc: dict[str, Any], bags: list[SheetBag], weight: Decimal) -> str | None:
    """The endotoxin actually infused, as the plan computes it (the volume x the lot's EU/mL, from the signed draw:
    its EU over its volume), from the volumes recorded at the end of each infusion; None before any bag ended."""
    ended = [b for b in bags if b.state == "given" and b.infused_ml is not None]
    if not ended:
        return None
    draws = {str(d["bag_id"]): d for d in calc.get("draws", [])}
    known, unknown = Decimal(0), []
    for b in ended:
        draw = draws.get(str(b.bag_id))
        if draw is None or draw.get("endotoxin_eu") is None or Decimal(draw["volume_ml"]) <= 0:
            unknown.append(din_shown(b))
            continue
        known += b.infused_ml * Decimal(draw["endotoxin_eu"]) / Decimal(draw["volume_ml"])
    limit = Decimal(calc["endotoxin_limit_eu"])
    volume = sum((b.infused_ml for b in ended if b.infused_ml is not None), Decimal(0))
    if len(unknown) == len(ended):
        return (f"not known: no endotoxin result for bag {', '.join(unknown)} ({volume.normalize():f} mL infused; "
                f"limit {limit.normalize():f} EU)")
    per_kg = (known / weight).quantize(Decimal("0.01"), ROUND_CEILING)
    words = (f"{endotoxin_words(known, limit)} EU = {per_kg:f} EU/kg in {volume.normalize():f} mL infused "
             f"(limit {limit.normalize():f} EU)")
    if unknown:
        words = "at least " + words + f"; no endotoxin result for bag {', '.join(unknown)}"
    if known > limit:
        words += ": ABOVE THE LIMIT"
    return words


def dose_sheet_data(session: Session, prescription: Prescription) -> DoseSheet:
    patient = session.get(Patient, prescription.patient_id)
    assert patient is not None
    protocol = protocols().get(prescription.protocol_id)
    trial = f"{protocol.short_name} ({protocol.trial_id})" if protocol else prescription.protocol_id
    calc = prescription.calculation
    weight = Decimal(prescription.weight_kg)
    limit, caution = stored_endotoxin_limit_words(calc)  # the infusion time the limit assumes is on the sheet
    endotoxin = (f"{endotoxin_words(Decimal(calc['endotoxin_eu']), Decimal(calc['endotoxin_limit_eu']))} EU ({limit}). {caution}" if calc.get("endotoxin_eu")
                 else f"{unknown_load_words(calc['draws'], Decimal(calc['endotoxin_limit_eu']))}; {limit} "
                      f"({Decimal(calc['endotoxin_limit_eu_per_ml']).quantize(Decimal('0.01'))} EU/mL "
                      f"for {calc['infused_volume_ml']} mL). {caution}")
    bags: list[SheetBag] = []
    rows = allocations_of(session, prescription.id)
    outcomes = bag_outcomes(session, prescription, rows)
    donors = _donor_codes(session, rows)
    rate = course_rate(calc, prescription.protocol_id, protocol.short_name if protocol else prescription.protocol_id,
                       [row.volume_ml for row in rows])
    for row in rows:
        bag = session.get(Bag, row.bag_id)
        assert bag is not None
        lot = session.get(Lot, bag.lot_id)
        assert lot is not None
        outcome = outcomes[row.id]
        bags.append(SheetBag(bag.din, bag.check_character, bag.product_code, lot.lot_number,
                             tuple(expiry_lines(bag.expires_at, site_config().timezone)),
                             f"{bag.volume_ml}", f"{row.volume_ml}",
                             millions(row.cells), row.partial, lot.status == "conditional_release",
                             outcome.state, outcome.words, outcome.cells, outcome.infused_ml,
                             donors.get(lot.donor_id, "?"), bag.id, lot_state_words(session, lot),
                             "" if outcome.state == "not_given" else rate.bag_words(Decimal(row.volume_ml)),
                             None if outcome.state == "not_given" else rate.bag_rate(Decimal(row.volume_ml))))
    completed = prescription.status in ("active", "stopped") and course_completed(outcomes.values())
    status = COMPLETED_WORDS if completed else prescription.status
    facts = [
        ("Dose level", format_cells_per_kg(Decimal(prescription.dose_level_cells_per_kg))
         + f" ({calc['dose_basis']} cells)"),
        ("Weight used", f"{weight.normalize():f} kg, measured {prescription.weight_measured_on}"),
        ("Target", f"{millions(calc['target_cells'])} cells (band {millions(calc['low_cells'])} - "
                   f"{millions(calc['high_cells'])}, +/- {calc['tolerance_percent']} %)"),
        ("Prescribed", f"{millions(calc['delivered_cells'])} cells = "
                       f"{per_kg_words(Decimal(calc['delivered_cells_per_kg']))} "
                       f"({calc['deviation_percent']} % from target) in {_bags(calc['bag_count'])}, "
                       f"{calc['total_volume_ml']} mL"),
        (RATE_LABEL, rate.total_words()),
        (RUNNING_LABEL if running(bags) else GIVEN_LABEL, _given_words(prescription, bags, weight)),
        ("DMSO", stored_dmso_window_words(calc)  # with the DMSO already given in the 24 hours before, if any
         or f"{Decimal(calc['dmso_g']).quantize(Decimal('0.01'))} g = {calc['dmso_g_per_kg']} g/kg "
            f"(limit {calc['max_dmso_g_per_kg']} g/kg/day)"),
        ("Endotoxin", endotoxin),
        *([("Endotoxin infused", infused_endotoxin)] if (infused_endotoxin := _infused_endotoxin_words(
            calc, bags, weight)) else []),
        ("Protocol", f"{prescription.protocol_id} v{prescription.protocol_version} "
                     f"(SHA-256 {prescription.protocol_sha256[:12]}...)"),
        ("Planned infusion", planned_words(prescription)),
        ("Status", status),
    ]
    repeat = calc.get("repeat_course")
    if repeat:  # signed with the prescription (prescriptions._signed_calculation)
        facts.insert(4, ("Repeat course", f"{repeat['reason']}. Given before it: {repeat['already_infused_words']}; "
                                          "this dose is in addition"))
    signed = signatures_for(session, "prescription", [prescription.id]).get(prescription.id, [])
    signatures = [f"{s.printed_name}, {local_and_utc(s.signed_at)}: \"{s.meaning}\"" for s in signed]
    # the lot's state NOW: a recalled (rejected, expired) lot first, in capitals; "conditionally released" only
    # while the lot still is (the allocation's flag is the state when it was allocated)
    ended = [w for b in bags if b.lot_ended and (w := _lot_warning(b)) is not None]
    warnings = [w for b in bags if not b.lot_ended and (w := _lot_warning(b)) is not None]
    short = _course_short(session, prescription)
    if short is not None:
        warnings.insert(0, short)
    donor_codes = sorted({b.donor_code for b in bags if b.state != "not_given"})
    if len(donor_codes) > 1:  # the sponsor decides whether a dose may mix donors: said, not refused
        warnings.append(f"This dose comes from {len(donor_codes)} donors: {', '.join(donor_codes)}.")
    given_cells = sum((b.given_cells for b in bags if b.state == "given"), Decimal(0))
    over = _over_words(prescription, given_cells)
    if over:
        warnings.insert(0, f"Delivered {millions(given_cells)} cells = {cells_per_kg_words(given_cells, weight)}"
                        + over.replace(" - ABOVE", ": ABOVE", 1) + ". Tell the prescriber.")
    closed_words = ""
    if prescription.status != "active":
        stop = stop_words(session, prescription)
        when = local_and_utc(stop["at"]) if stop["at"] is not None else "?"
        label = ("Closed" if completed else "Stopped") if prescription.status == "stopped" else "Cancelled"
        facts.insert(facts.index(("Status", status)), (label, f"{when} by {stop['by']}: {stop['reason']}"))
        if completed:
            warnings.insert(0, f"This course is COMPLETED: every bag of it was given. Closed on {when} by "
                               f"{stop['by']} ({stop['reason']}).")
            closed_words = (f"This course is COMPLETED: every bag of it was given. Closed on {when} by {stop['by']}. "
                            "Nothing is left to infuse.")
        else:
            what = "course STOPPED" if prescription.status == "stopped" else "prescription CANCELLED"
            not_given = [din_shown(b) for b in bags if b.state != "given"]
            warnings.insert(0, f"This {what} on {when} by {stop['by']} ({stop['reason']}). "
                            + (f"Do not infuse {_bags(len(not_given), 'bag')} not given: {', '.join(not_given)}."
                               if not_given else "Every bag of it was given."))
            closed_words = (f"This {what} on {when} by {stop['by']}: "
                            + ("nothing more is to be given; no further bedside check."
                               if any(b.state == "given" for b in bags) else
                               "no bag of it was given and nothing is to be given. No bedside check."))
    elif completed:
        warnings.insert(0, "This course is COMPLETED: every bag of it was given. Nothing is left to infuse.")
        closed_words = "This course is COMPLETED: every bag of it was given. Nothing is left to infuse."
    warnings[:0] = ended  # a recalled (rejected, expired) lot is said first, before the course's state
    change = weight_change_of(session, prescription)
    weight_warning = change.no_longer_fits if change is not None and change.problems else None
    bedside = _bedside_records(session, prescription, bags)
    checked = {r.din for r in bedside}
    unchecked = () if closed_words else tuple(b.shown for b in bags if b.state == "to_give" and b.shown not in checked)
    return DoseSheet(patient, prescription, trial, facts, bags, signatures, warnings, weight_warning, completed,
                     tuple(bedside), unchecked, closed_words)


def _bedside_records(session: Session, prescription: Prescription, bags: list[SheetBag]) -> list[BedsideRecord]:
    """Each bag's confirmed bedside check for this patient: the check its infusion started on, else (a bag checked
    and not yet started) its newest confirmed MATCHES check since the prescription was signed. Read only."""
    from mscbatch.auth.models import User
    from mscbatch.custody.models import Infusion, TwoPersonCheck

    records = []
    for bag in bags:
        if bag.state == "not_given":
            continue
        check = None
        infusion = session.scalar(select(Infusion).where(Infusion.bag_id == bag.bag_id,
                                                         Infusion.patient_id == prescription.patient_id))
        if infusion is not None:
            check = session.get(TwoPersonCheck, infusion.check_id)
        if check is None and bag.state == "to_give":
            check = session.scalar(select(TwoPersonCheck).where(
                TwoPersonCheck.bag_id == bag.bag_id, TwoPersonCheck.patient_id == prescription.patient_id,
                TwoPersonCheck.result == "matches", TwoPersonCheck.second_checker_id.is_not(None),
                TwoPersonCheck.checked_at >= prescription.prescribed_at)
                .order_by(TwoPersonCheck.id.desc()).limit(1))
        if check is None or check.second_checker_id is None or check.confirmed_at is None:
            continue
        first, second = session.get(User, check.checked_by_id), session.get(User, check.second_checker_id)
        records.append(BedsideRecord(bag.shown, check.id, first.full_name if first is not None else "?",
                                     local_and_utc(check.checked_at),
                                     second.full_name if second is not None else "?",
                                     local_and_utc(check.confirmed_at)))
    return records


def _donor_codes(session: Session, rows: list[Any]) -> dict[int, str]:
    """donor id -> donor code, for the lots of the prescription's bags."""
    from mscbatch.donors.models import Donor

    lots = {bag.lot_id for r in rows if (bag := session.get(Bag, r.bag_id)) is not None}
    donor_ids = {lot.donor_id for lot_id in lots if (lot := session.get(Lot, lot_id)) is not None}
    return {d.id: d.code for d in (session.get(Donor, i) for i in donor_ids if i is not None) if d is not None}


def _course_short(session: Session, prescription: Prescription) -> str | None:
    """A signed course still standing that a lost bag (discarded, returned, its lot recalled) has left unable to
    give its band: the bedside check answers STOP for its other bags (custody.checks, course_short), so the page and
    the sheet say it first, to the prescriber, with what must be done."""
    if prescription.status != "active" or prescription.locked_at is None:
        return None
    short = course_short(session, prescription)
    if short is None or not short.lost:
        return None
    return (f"{course_short_words(short)} Do not give its bags: the prescriber must cancel this prescription (or stop "
            "the course, once a bag was given) and prescribe again.")


def _bags(count: Any, word: str = "bag") -> str:
    count = int(count)
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


#: the bag table's columns (mm, 180 in all: A4 less its margins), with 3 pt padding: the DIN with its boxed K as the
#: label prints it ("X9999 26 000005 P", one column: a nurse compares it to the label at a glance), a lot number such
#: as MSC-2026-0003 (22 mm) and an expiry in local time over UTC ("2027-09-30 18:21 CEST": 32.5 mm) each fit on one
#: line; a longer one wraps inside its own column. "Rate, time": the mL/h to set over the bag's share of the course's
#: infusion time ("62.5 mL/h" over "24 min", infusion_rate), the course's rate being in the facts
BAG_COLUMNS_MM = {"DIN": 30.5, "Product code": 17.8, "Lot": 24.2, "Expiry": 34.7, "Bag mL": 9.8, "Draw mL": 9.8,
                  "Rate, time": 15.5, "Cells": 14.4, "Use": 23.3}


def _table(rows: list[list[Any]], widths: list[float], header: bool = True) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1 if header else 0)
    style = [("GRID", (0, 0), (-1, -1), 0.4, colors.grey), ("VALIGN", (0, 0), (-1, -1), "TOP"),
             ("FONTSIZE", (0, 0), (-1, -1), 8.5)]
    if header:
        style += [("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef4")), ("FONTNAME", (0, 0), (-1, 0),
                                                                                 "Helvetica-Bold")]
    table.setStyle(TableStyle(style))
    return table


def bedside_headings() -> tuple[str, ...]:
    """The bedside box's headings: the time written by hand is the site's local time, its zone named (a sheet read
    beside a UTC record, or by a monitor elsewhere, must not leave the zone to guess)."""
    return ("Bedside check (two qualified people)", "Name", f"Date / time (local time, {site_config().tz.key})",
            "Signature")


class DinWithK(Flowable):
    """The DIN as the label prints it, on one line: "X9999 26 000005 " then its check character K in a box; a
    reader copying the line, or reading the PDF's text, gets "X9999 26 000005 P" (identifiers.din_shown)."""

    def __init__(self, display: str, check: str, size: float = 8.5) -> None:
        super().__init__()
        self.display, self.check, self.size = display + " ", check, size

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return available_width, self.size + 3

    def draw(self) -> None:
        canvas, pad = self.canv, 1.6
        base = 2.4  # the box's frame within the flowable's height, its baseline near the other cells' first line
        canvas.setFont("Helvetica", self.size)
        canvas.drawString(0, base, self.display)
        x = pdfmetrics.stringWidth(self.display, "Helvetica", self.size)
        width = pdfmetrics.stringWidth(self.check, "Helvetica-Bold", self.size) + 2 * pad
        canvas.setLineWidth(1.2)
        canvas.rect(x, base - 2.2, width, self.size + 2.6, stroke=1, fill=0)
        canvas.setFont("Helvetica-Bold", self.size)
        canvas.drawString(x + pad, base, self.check)


def _din_cell(bag: SheetBag) -> Any:
    """The DIN as the label prints it, in one cell, its check character K boxed."""
    return DinWithK(bag.din_display, bag.check_character) if bag.check_character else bag.shown


def render_dose_sheet(sheet: DoseSheet) -> bytes:
    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=8.5, leading=10.5)
    out = io.BytesIO()
    p, rx = sheet.patient, sheet.prescription
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                            bottomMargin=15 * mm, title=f"Dose sheet {p.code} prescription {rx.id}",
                            author="mscbatch")
    story: list[Any] = [Paragraph(f"MSC dose sheet - prescription {rx.id}", styles["Title"]),
                        Paragraph(f"For clinical trial use only: {escape(sheet.trial)}", styles["Heading4"])]
    if sheet.weight_warning is not None:
        headline, rest = (escape(words) for words in sheet.weight_warning)
        story.append(Paragraph(f"<font color='#b00020'><b>{headline}</b> {rest}</font>", small))
    for warning in sheet.warnings:
        story.append(Paragraph(f"<font color='#b00020'><b>{escape(warning)}</b></font>", small))
    story += [Paragraph("Patient", styles["Heading3"]), _table([
        ["Trial patient", "Initials", "Date of birth", "Sex", "Ward", "Wristband"],
        [p.code, p.initials, str(p.date_of_birth), p.sex, p.ward, p.wristband_id]], [32 * mm, 20 * mm, 26 * mm,
                                                                                    16 * mm, 40 * mm, 46 * mm])]
    story += [Paragraph("Prescription and calculation", styles["Heading3"]),
              _table([[k, Paragraph(escape(v), small)] for k, v in sheet.facts], [38 * mm, 142 * mm], header=False)]
    # every cell a paragraph, so that a long lot number or a heading wraps inside its column instead of running
    # into the next (a lot number printed over its expiry read "MSC-2026-00032027-12-02")
    head = small.clone("head", fontName="Helvetica-Bold")
    rows: list[list[Any]] = [[Paragraph(h, head) for h in BAG_COLUMNS_MM]]
    for b in sheet.bags:
        use = b.outcome or ("PARTIAL draw" if b.partial else "whole bag")
        expiry = "<br/>".join(escape(line) for line in b.expiry)
        rows.append([_din_cell(b), Paragraph(escape(b.product_code), small),
                     Paragraph(escape(b.lot_number), small), Paragraph(expiry, small), b.bag_volume_ml,
                     b.draw_volume_ml, Paragraph("<br/>".join(escape(x) for x in b.rate_parts) if b.rate_parts else
                                                 "not given" if b.state == "not_given" else "ask the prescriber", small),
                     Paragraph(escape(b.cells), small),
                     Paragraph(escape(use) + (f" ({escape(b.lot_state)})" if b.lot_ended else
                                              " (cond.)" if b.conditional else ""), small)])
    bag_table = _table(rows, [BAG_COLUMNS_MM[name] * mm for name in BAG_COLUMNS_MM])
    bag_table.setStyle(TableStyle([("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3)]))
    story += [Paragraph("Bags", styles["Heading3"]), bag_table,
              Paragraph("DIN as the label prints it: its last character, boxed, is the keyboard check character K "
                        "(ISO/IEC 7064 MOD 37-2).", small)]
    story += [Paragraph("Signatures", styles["Heading3"])]
    story += [Paragraph(escape(s), small) for s in sheet.signatures] or [Paragraph("Not signed.", small)]
    story += _bedside_box(sheet, small, head)
    footer = f"Dose sheet - patient {p.code} - prescription {rx.id}"
    doc.build(story, canvasmaker=partial(NumberedCanvas, footer=footer, margin=15 * mm, font_size=7.5))
    return out.getvalue()


#: the bedside box's columns (mm): what is checked, name, date and time, signature
BEDSIDE_COLUMNS_MM = (66, 37, 42, 35)


def _bedside_box(sheet: DoseSheet, small: Any, head: Any) -> list[Any]:
    """The bedside checks: each one confirmed in the system, with who checked and confirmed it and when; a blank
    box to sign by hand only for the bags still to be checked; and for a course with nothing (more) to give, the
    words that say so instead of an invitation to check a bag."""
    widths = [w * mm for w in BEDSIDE_COLUMNS_MM]
    out: list[Any] = []
    if sheet.bedside:
        rows: list[list[Any]] = [[Paragraph(h, head) for h in (
            "Bedside check recorded (two qualified people)", "Name", "Date / time (site time, UTC)", "Signature")]]
        for r in sheet.bedside:
            rows += [[Paragraph(escape(f"Bag {r.din}: wristband, bag DIN and prescription match (checked)"), small),
                      Paragraph(escape(r.checked_by), small), Paragraph(escape(r.checked_at), small),
                      Paragraph(f"e-signed (check {r.check_id})", small)],
                     [Paragraph("Second person (confirmed)", small), Paragraph(escape(r.confirmed_by), small),
                      Paragraph(escape(r.confirmed_at), small), Paragraph(f"e-signed (check {r.check_id})", small)]]
        out.append(KeepTogether([Spacer(1, 6 * mm), _table(rows, widths)]))
    if sheet.closed_words:
        out.append(KeepTogether([Spacer(1, 4 * mm), Paragraph(
            f"<font color='#b00020'><b>{escape(sheet.closed_words)}</b></font>", small)]))
    elif sheet.unchecked:
        what = "Wristband, bag DINs and prescription match"
        if sheet.bedside:  # the bags the blank box is for, the others being recorded above
            what += ": " + ", ".join(sheet.unchecked)
        # the bedside box whole on one page: its two rows are signed together, never one on each page
        out.append(KeepTogether([Spacer(1, 6 * mm), _table([[Paragraph(h, head) for h in bedside_headings()],
                                                            [Paragraph(escape(what), small), "", "", ""],
                                                            ["Second person", "", "", ""]], widths)]))
    return out
