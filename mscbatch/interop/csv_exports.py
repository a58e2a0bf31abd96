"""CSV exports for statisticians: lots, bags, release results and infusions.

One definition per export (columns, rows, who may take it) serves both the page download and the API.
UTF-8 with a header row; dates and times in ISO 8601 (times in UTC with their offset); numbers as plain
decimals. No patient identity: the only person codes are the pseudonymised donor and trial patient codes.
A text cell starting with =, +, -, @, a tab or a carriage return (OWASP, CSV injection), or with any other space
or line break before one of =, +, -, @, is prefixed with a single quote so that a spreadsheet never evaluates it
as a formula: LibreOffice and Excel's text import trim leading spaces and then read "=..." as a formula, and a
line break leaves the formula alone on the cell's line. Numbers from the database are written as they are, so
negative values stay numbers; so is a text that is a plain number ("-0.5", a result value stored as typed): a
spreadsheet reads it as that number, never as a formula, and a quote would turn it into text.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mscbatch.core.states import effective_bag_status
from mscbatch.custody.checks import thawed_at
from mscbatch.custody.models import Infusion, InfusionReaction
from mscbatch.database import utcnow
from mscbatch.donors.models import Donor
from mscbatch.interop.fhir import post_thaw_words
from mscbatch.lots.models import Bag, Lot
from mscbatch.lots.queries import bag_status, known_gates
from mscbatch.patients.api import READERS as PATIENT_PAGE_READERS
from mscbatch.patients.models import Patient
from mscbatch.recall.queries import is_held
from mscbatch.release.models import ReleaseResult
from mscbatch.release.queries import has_late_oos

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
FORMULA_STARTS = ("=", "+", "-", "@")  # after leading spaces and line breaks, which spreadsheets trim
#: a plain decimal number, ASCII digits only: read by a spreadsheet as a number, not a formula (no operator after
#: the sign, no function, no reference)
PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
BATCH = 500  # rows fetched per round trip (yield_per): the export streams, it never holds every row


def cell(value: Any) -> str | int:
    """One CSV cell: ISO dates, plain decimals, true/false, and text defused against formula injection."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    text = str(value)
    if PLAIN_NUMBER.fullmatch(text):
        return text
    formula = text.startswith(FORMULA_PREFIXES) or text.lstrip().startswith(FORMULA_STARTS)
    return "'" + text if formula else text


@dataclass(frozen=True)
class Export:
    name: str
    title: str
    description: str
    roles: frozenset[str] | None  # None: any signed-in user (same rule as the pages showing this data)
    columns: tuple[str, ...]
    rows: Callable[[Session], Iterable[tuple[Any, ...]]]

    @property
    def filename(self) -> str:
        return f"mscbatch-{self.name}.csv"

    def allowed(self, user: Any) -> bool:
        return self.roles is None or user.has_role(*self.roles)


def _lot_rows(session: Session) -> Iterator[tuple[Any, ...]]:
    query = (select(Lot, Donor.code).join(Donor, Donor.id == Lot.donor_id).order_by(Lot.id)
             .execution_options(yield_per=BATCH))
    for batch in session.execute(query).partitions():
        known_gates(session, [lot for lot, _code in batch])  # the donor gate now, as the lot list and API give it
        for lot, donor_code in batch:
            yield _lot_row(lot, donor_code)


def _lot_row(lot: Lot, donor_code: str) -> tuple[Any, ...]:
    return (lot.lot_number, lot.product_id, lot.product_name, lot.product_class, donor_code, lot.gate_now,
            lot.donor_gate, lot.status, lot.collection_at, lot.collection_site, lot.tissue_amount, lot.tissue_unit,
            lot.harvested_at, lot.harvest_total_cells, lot.harvest_viability_percent, lot.harvest_viable_cells,
            lot.cell_basis, lot.frozen_at, lot.expires_at)


def _bag_rows(session: Session) -> Iterator[tuple[Any, ...]]:
    """`usable` says what the FHIR export's productStatus says (interop.fhir): not for a bag on hold by a recall, of a
    donor reopened by new information or a lot failed late, expired, or thawed longer ago than its post-thaw limit,
    which the bedside check refuses."""
    query = (select(Bag, Lot, Donor.status, has_late_oos(Lot.id).label("late"), is_held(Bag.id).label("held"),
                    thawed_at(Bag.id).label("thawed"))
             .join(Lot, Lot.id == Bag.lot_id).join(Donor, Donor.id == Lot.donor_id)
             .order_by(Lot.id, Bag.bag_number).execution_options(yield_per=BATCH))
    now = utcnow()
    for bag, lot, donor_status, late, held, thawed in session.execute(query):
        effective = (effective_bag_status(lot.status, bag.status, on_hold=True, placed=bag.box_id is not None)
                     if held else bag_status(bag, lot))
        usable = (effective.usable and not late and donor_status == "approved" and bag.expires_at > now
                  and post_thaw_words(bag, lot, thawed, now) is None)
        yield (bag.din, bag.check_character, lot.lot_number, lot.product_id, bag.product_code, bag.division,
               bag.bag_number, bag.bag_count, bag.volume_ml, bag.cells_per_ml, bag.total_cells, bag.dmso_percent,
               lot.frozen_at, bag.expires_at, bag.status, effective.status, usable)


def _result_rows(session: Session) -> Iterator[tuple[Any, ...]]:
    query = (select(ReleaseResult, Lot).join(Lot, Lot.id == ReleaseResult.lot_id)
             .order_by(Lot.id, ReleaseResult.id).execution_options(yield_per=BATCH))
    for result, lot in session.execute(query):
        yield (lot.lot_number, lot.product_id, result.test_id, result.value, result.unit, result.method,
               result.analyst, result.tested_on, result.instrument, result.reagent_lot, result.spec_id,
               result.spec_version, result.entered_at, result.corrected_count, result.corrected_at,
               result.invalidated_at is not None, result.invalidated_at)


def _infusion_rows(session: Session) -> Iterator[tuple[Any, ...]]:
    """One row per infusion; the patient by pseudonymised trial code only (no initials, no date of birth)."""
    reactions = (select(InfusionReaction.infusion_id, func.count().label("n"), func.max(InfusionReaction.grade)
                        .label("worst")).group_by(InfusionReaction.infusion_id).subquery())
    query = (select(Infusion, Patient.code, Patient.protocol_id, Bag, Lot, reactions.c.n, reactions.c.worst)
             .join(Patient, Patient.id == Infusion.patient_id).join(Bag, Bag.id == Infusion.bag_id)
             .join(Lot, Lot.id == Bag.lot_id).outerjoin(reactions, reactions.c.infusion_id == Infusion.id)
             .order_by(Infusion.started_at, Infusion.id).execution_options(yield_per=BATCH))
    for infusion, patient_code, protocol_id, bag, lot, count, worst in session.execute(query):
        yield (infusion.id, patient_code, protocol_id, bag.din, lot.lot_number, lot.product_id, bag.product_code,
               bag.volume_ml, bag.total_cells, infusion.started_at, infusion.ended_at,
               "ended" if infusion.ended_at is not None else "in-progress", infusion.volume_infused_ml,
               count or 0, worst)


RELEASE_READERS = frozenset({"technician", "qa", "clinician", "admin"})  # as the release review page

PATIENT_READERS = frozenset(PATIENT_PAGE_READERS)
#: every patient's infusions and reaction grades at once: QA and the clinicians, who act on them (never the
#: administrator or the technicians, who read no patient; nurses see the infusions at the bedside, one at a time)
INFUSION_READERS = frozenset({"qa", "clinician"}) & PATIENT_READERS

EXPORTS: dict[str, Export] = {export.name: export for export in (
    Export("lots", "Lots", "One row per lot: product, donor code, collection, harvest, freezing, status.", None,
           ("lot_number", "product_id", "product_name", "product_class", "donor_code", "donor_gate", "donor_gate_at_start",
            "status", "collection_at", "collection_site", "tissue_amount", "tissue_unit", "harvested_at",
            "harvest_total_cells", "harvest_viability_percent", "harvest_viable_cells", "cell_basis", "frozen_at",
            "expires_at"), _lot_rows),
    Export("bags", "Bags", "One row per bag: DIN, lot, product code, division, content, expiry, status.", None,
           ("din", "check_character", "lot_number", "product_id", "product_code", "division", "bag_number",
            "bag_count", "volume_ml", "cells_per_ml", "total_cells", "dmso_percent", "frozen_at", "expires_at",
            "bag_status", "effective_status", "usable"), _bag_rows),
    Export("release-results", "Release results",
           "One row per release test result, invalidated ones included (flagged), with the specification version.",
           RELEASE_READERS,
           ("lot_number", "product_id", "test_id", "value", "unit", "method", "analyst", "tested_on", "instrument",
            "reagent_lot", "spec_id", "spec_version", "entered_at", "corrected_count", "corrected_at",
            "invalidated", "invalidated_at"), _result_rows),
    Export("infusions", "Infusions",
           "One row per infusion: pseudonymised patient code, bag (DIN), lot, start, end, volume infused, "
           "number of infusion reactions and the worst CTCAE grade.", INFUSION_READERS,
           ("infusion_id", "patient_code", "protocol_id", "din", "lot_number", "product_id", "product_code",
            "bag_volume_ml", "bag_total_cells", "started_at", "ended_at", "status", "volume_infused_ml",
            "reaction_count", "worst_reaction_grade"), _infusion_rows),
)}


def csv_lines(export: Export, session: Session) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(export.columns)
    for row in export.rows(session):
        writer.writerow([cell(value) for value in row])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def csv_response(export: Export, session: Session) -> Response:
    """The whole CSV as a download. Built before the response is sent, so that a database error becomes an
    error page rather than a truncated file."""
    body = "".join(csv_lines(export, session)).encode("utf-8")
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    return response
