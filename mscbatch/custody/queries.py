"""Reading infusions and reactions for the patient and lot pages, and a bag's custody timeline."""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.auth.models import User
from mscbatch.core.dosing import CourseBag, course_dose, course_low_cells, infused_against_prescribed
from mscbatch.custody.models import CustodyEvent, Infusion, InfusionReaction, ReturnAssessment, TwoPersonCheck
from mscbatch.lots.models import Bag, Lot, StorageLocation
from mscbatch.lots.queries import position_label
from mscbatch.patients.models import Allocation, Patient, Prescription
from mscbatch.patients.queries import protocols


@dataclass(frozen=True)
class InfusionRow:
    infusion: Infusion
    bag: Bag
    lot: Lot
    patient: Patient
    checked_by: str  # the two people of the bedside check (infusion.check_id)...
    confirmed_by: str
    started_by: str  # ...and who started it, who may be neither of them
    ended_by: str | None
    reactions: tuple[InfusionReaction, ...]
    prescribed_ml: Decimal | None = None  # what the prescription drew from the bag
    outside: str | None = None  # "more" / "less" than prescribed (core.dosing.infused_against_prescribed)
    course_below_band: bool = False  # its end recorded the prescription's course below its band (a reason given)


def _names(session: Session, ids: set[int]) -> dict[int, str]:
    ids = {i for i in ids if i}
    return {row[0]: row[1] for row in session.execute(select(User.id, User.full_name).where(User.id.in_(ids)))} if ids else {}


def _rows(session: Session, infusions: list[Infusion]) -> list[InfusionRow]:
    if not infusions:
        return []
    checks = {c.id: c for c in session.scalars(select(TwoPersonCheck).where(
        TwoPersonCheck.id.in_(sorted({i.check_id for i in infusions}))))}
    names = _names(session, {i.started_by_id for i in infusions} | {i.ended_by_id or 0 for i in infusions}
                   | {c.checked_by_id for c in checks.values()} | {c.second_checker_id or 0 for c in checks.values()})
    reactions: dict[int, list[InfusionReaction]] = {}
    for reaction in session.scalars(select(InfusionReaction).where(
            InfusionReaction.infusion_id.in_([i.id for i in infusions])).order_by(InfusionReaction.id)):
        reactions.setdefault(reaction.infusion_id, []).append(reaction)
    prescribed = {a.bag_id: a.volume_ml for a in session.scalars(select(Allocation).where(
        Allocation.bag_id.in_([i.bag_id for i in infusions])).order_by(Allocation.id))}  # the newest per bag
    below = courses_below_band(session, [i.bag_id for i in infusions])
    rows = []
    for infusion in infusions:
        bag, patient = session.get(Bag, infusion.bag_id), session.get(Patient, infusion.patient_id)
        lot = session.get(Lot, bag.lot_id) if bag is not None else None
        assert bag is not None and patient is not None and lot is not None
        check = checks[infusion.check_id]
        rows.append(InfusionRow(
            infusion, bag, lot, patient, checked_by=names.get(check.checked_by_id, "?"),
            confirmed_by=names.get(check.second_checker_id or 0, "?"), started_by=names.get(infusion.started_by_id, "?"),
            ended_by=names.get(infusion.ended_by_id, "?") if infusion.ended_by_id else None,
            reactions=tuple(reactions.get(infusion.id, [])), prescribed_ml=prescribed.get(bag.id),
            outside=_outside(infusion, prescribed.get(bag.id), patient), course_below_band=bag.id in below))
    return rows


#: the infusion_ended detail that flags a course below its prescription's band (custody.infusions.end_infusion)
COURSE_BELOW_BAND = "course_below_band"


def courses_below_band(session: Session, bag_ids: list[int]) -> set[int]:
    """The bags whose infusion's end was recorded with the prescription's course below its band."""
    if not bag_ids:
        return set()
    events = session.execute(select(CustodyEvent.bag_id, CustodyEvent.details_json).where(
        CustodyEvent.kind == "infusion_ended", CustodyEvent.bag_id.in_(bag_ids)))
    return {bag_id for bag_id, details in events if json.loads(details or "{}").get(COURSE_BELOW_BAND)}


def _outside(infusion: Infusion, prescribed_ml: Decimal | None, patient: Patient) -> str | None:
    if infusion.volume_infused_ml is None or prescribed_ml is None:
        return None
    protocol = protocols().get(patient.protocol_id)
    tolerance = protocol.dosing.tolerance_percent if protocol is not None else Decimal(0)
    return infused_against_prescribed(infusion.volume_infused_ml, prescribed_ml, tolerance)


def infusions_of_patient(session: Session, patient_id: int) -> list[InfusionRow]:
    return _rows(session, list(session.scalars(select(Infusion).where(Infusion.patient_id == patient_id)
                                               .order_by(Infusion.started_at.desc(), Infusion.id.desc()))))


def infusions_of_lot(session: Session, lot_id: int) -> list[InfusionRow]:
    return _rows(session, list(session.scalars(select(Infusion).join(Bag, Bag.id == Infusion.bag_id)
                                               .where(Bag.lot_id == lot_id).order_by(Infusion.started_at.desc()))))


def infusion_of_bag(session: Session, bag_id: int) -> Infusion | None:
    return session.scalar(select(Infusion).where(Infusion.bag_id == bag_id))


@dataclass(frozen=True)
class TimelineEntry:
    """One custody event as the bag's trace page tells it: who, where from and to, and what happened in plain
    words (the hand-over's courier, shipper and logger, the reason typed, QA's readings). It unpacks as
    (event, who) for the readers that want the record only (interop.evidence)."""

    event: CustodyEvent
    who: str
    what: str  # "Sent to the ward", "Moved", "Label REPRINTED"...
    where_from: str = ""
    where_to: str = ""
    told: tuple[str, ...] = ()  # the hand-over's details, each "Name: value"
    why: str = ""  # the reason typed for it
    patient_reason: bool = False  # its reason tells of the patient: for the readers of patient records only

    def __iter__(self) -> Iterator[Any]:
        yield self.event
        yield self.who


#: the unit's side of a hand-over (its events give only the ward's place)
UNIT = "the cell therapy unit"


def timeline(session: Session, bag_id: int) -> list[TimelineEntry]:
    """The bag's custody events, oldest first, each with who recorded it and what it means (traceability pages).
    A bounded number of queries, whatever the number of events: the events, the people, the boxes named, the
    return assessments and the prescriptions."""
    events = list(session.scalars(select(CustodyEvent).where(CustodyEvent.bag_id == bag_id).order_by(CustodyEvent.id)))
    details = {e.id: _details(e) for e in events}
    names = _names(session, {e.actor_id for e in events})
    box_ids = {d.get(key) for d in details.values() for key in ("from_box_id", "to_box_id", "freed_box_id")}
    box_ids = {i for i in box_ids if isinstance(i, int)}
    boxes = {b.id: b for b in session.scalars(select(StorageLocation).where(StorageLocation.id.in_(box_ids)))} \
        if box_ids else {}
    assessments = {a.id: a for a in session.scalars(select(ReturnAssessment).where(ReturnAssessment.bag_id == bag_id))}
    prescription_ids = {d.get("prescription_id") for d in details.values() if d.get("cancelled")}
    prescription_ids = {i for i in prescription_ids if isinstance(i, int)}
    stopped = {row[0]: row[1] for row in session.execute(select(Prescription.id, Prescription.status).where(
        Prescription.id.in_(prescription_ids)))} if prescription_ids else {}

    def place(box_id: Any, position: Any) -> str:
        box = boxes.get(box_id) if isinstance(box_id, int) else None
        return f"{box.name}, position {position_label(box, position)}" if box is not None else ""

    entries: list[TimelineEntry] = []
    kept = ""  # where the bag was last placed: a step that names no place leaves it there
    courier = ""  # who carried it on its latest dispatch
    for index, event in enumerate(events):
        d = details[event.id]
        told: list[str] = []
        what, where_from, where_to, patient_reason = event.label, "", event.location, False
        kind = event.kind
        if kind == "labelled":
            reprint = bool(d.get("reprint"))
            what = "Label REPRINTED" if reprint else "Label printed"
            if reprint:  # the print itself is in the lot's print history (the "label prints" link)
                told.append("A reprint: the label says REPRINT")
        elif kind in ("stored", "moved") and d.get("cancelled"):
            status = stopped.get(d.get("prescription_id"), "")
            what = "Let go by its prescription: back in stock"
            told.append("The patient was withdrawn from the protocol" if d.get("withdrawal") else
                        f"The prescription was {'stopped' if status == 'stopped' else 'cancelled'}; the bag is "
                        "free to be prescribed again")
            where_to = f"{kept} (it stays there)" if kept else ""
            patient_reason = True
        elif kind in ("stored", "moved") and "return_assessment_id" in d:
            what = "Back into stock after QA's assessment of its return"
            where_from, where_to = UNIT + " (returned bags)", event.location
            told.extend(_assessment_words(assessments.get(d["return_assessment_id"])))
        elif kind in ("stored", "moved"):
            what = "Moved" if kind == "moved" else "Placed in storage"
            where_from = place(d.get("from_box_id"), d.get("from_position")) or (kept if kind == "moved" else "")
            where_to = place(d.get("to_box_id"), d.get("to_position")) or event.location
        elif kind == "released":
            status = str(d.get("lot_status") or "released")
            what = "Its lot was released" + (" conditionally" if status == "conditional_release" else "")
        elif kind == "allocated":
            what = "Allocated to a patient by a signed prescription"
            where_to = f"{kept} (it stays there)" if kept else ""
        elif kind == "dispatched":
            what = "Sent to the ward"
            where_from = event.location or UNIT
            arrived = next((later.location for later in events[index + 1:] if later.kind == "received"), "")
            where_to = f"the ward ({arrived})" if arrived else "the ward"
            courier = str(d.get("courier") or "")
            told.extend(f"{label}: {d[key]}" for key, label in (
                ("courier", "Courier"), ("shipper", "Shipper"), ("temperature_logger_id", "Temperature logger"))
                if d.get(key))
        elif kind == "received":
            where_from = f"courier {courier}" if courier else "the courier"
        elif kind == "returned":
            what = "Returned to the cell therapy unit"
            where_from, where_to = event.location or "the ward", UNIT
            patient_reason = True  # the ward's reason tells of the patient ("the patient has a fever")
        elif kind == "discarded" and "return_assessment_id" in d:
            what = "Discarded after QA's assessment of its return"
            told.extend(_assessment_words(assessments.get(d["return_assessment_id"])))
        elif kind in ("bedside_verified", "infusion_started", "infusion_ended"):
            patient_reason = True  # a dose outside the prescription, a stop: said of the patient
        if kind in ("stored", "moved") and where_to and not d.get("cancelled"):
            kept = where_to
        if d.get("freed_box_id") is not None:  # a final state frees its slot: where it was taken from
            where_from = where_from or place(d.get("freed_box_id"), d.get("freed_position"))
            kept = ""
        entries.append(TimelineEntry(event, names.get(event.actor_id, "?"), what, where_from, where_to,
                                     tuple(told), event.reason or "", patient_reason))
    return entries


def _details(event: CustodyEvent) -> dict[str, Any]:
    try:
        details = json.loads(event.details_json or "{}")
    except ValueError:
        return {}
    return details if isinstance(details, dict) else {}


def _assessment_words(assessment: ReturnAssessment | None) -> list[str]:
    """QA's readings of a returned bag: the logger's warmest temperature, the bag seen intact, its time out."""
    if assessment is None:
        return []
    words = []
    if assessment.logger_max_c is not None:
        words.append(f"Warmest logger temperature: {assessment.logger_max_c} °C")
    words.append("Bag, overwrap and label seen intact" if assessment.intact else "Bag not confirmed intact")
    if assessment.minutes_out is not None:
        hours, minutes = divmod(assessment.minutes_out, 60)
        words.append(f"Out of the unit: {f'{hours} h ' if hours else ''}{minutes} min")
    return words


#: a bag of a course in these states will not be given: discarded (broken at thaw...), or returned to the unit
LOST_STATES = ("discarded", "returned")
#: nor will a bag of a lot in these final states (recalled, rejected, expired: checks.LOT_ENDED), whatever the bag's
#: own state: its course's other bags alone may no longer give the prescription's band
ENDED_LOTS = ("rejected", "recalled", "expired")


def course_bags(session: Session, prescription_id: int, *, ending: tuple[int, Decimal] | None = None) -> list[CourseBag]:
    """The bags a prescription still holds (active allocations: an infused bag keeps its own), each with what it
    draws and where it stands (core.dosing.CourseBag, with its check character). `ending`: (infusion
    id, volume) of an infusion being ended, counted at that volume."""
    rows = session.execute(
        select(Allocation.cells, Allocation.volume_ml, Bag.din, Bag.status, Infusion.id, Infusion.volume_infused_ml,
               Lot.status, Bag.check_character)
        .join(Bag, Bag.id == Allocation.bag_id).join(Lot, Lot.id == Bag.lot_id)
        .outerjoin(Infusion, Infusion.bag_id == Allocation.bag_id)
        .where(Allocation.prescription_id == prescription_id, Allocation.active_bag_id.is_not(None))
        .order_by(Allocation.id))
    bags: list[CourseBag] = []
    for cells, volume_ml, din, status, infusion_id, infused_ml, lot_status, k in rows:
        drawn = {"din": din, "cells": Decimal(cells), "volume_ml": Decimal(volume_ml), "check_character": k}
        if infusion_id is not None or status == "infused":
            if ending is not None and infusion_id == ending[0]:
                infused_ml = ending[1]
            bags.append(CourseBag(**drawn, state="given", infused_ml=infused_ml, status=status))
        elif status in LOST_STATES:
            bags.append(CourseBag(**drawn, state="lost", status=status))
        elif lot_status in ENDED_LOTS:  # its status words say why: the lot's ("recalled"), not the bag's
            bags.append(CourseBag(**drawn, state="lost", status=lot_status))
        else:
            bags.append(CourseBag(**drawn, state="to_give", status=status))
    return bags


def lost_words(bag: CourseBag) -> str:
    """Why a course's bag will not be given, after its name: "discarded", "returned", "of a recalled lot"."""
    return bag.status if bag.status in LOST_STATES else f"of a {bag.status} lot"


@dataclass(frozen=True)
class CourseShort:
    """A course that can no longer give its prescription's band: what it gives and what was prescribed."""
    expected_cells: Decimal  # given so far + the bags still to give, as prescribed
    given_cells: Decimal  # given so far
    low_cells: Decimal  # the band's lower limit the prescription was signed under
    level_cells_per_kg: Decimal
    weight_kg: Decimal
    lost: tuple[CourseBag, ...]  # the bags lost from it (discarded, returned)
    stopped: bool = False  # the prescriber stopped (or cancelled) the course: its bags not given were let go


def course_short(session: Session, prescription: Prescription, *,
                 ending: tuple[int, Decimal] | None = None) -> CourseShort | None:
    """The prescription's course judged against its band: a CourseShort when what it has given plus what its bags
    still to give would give falls below the band's lower limit, else None."""
    bags = course_bags(session, prescription.id, ending=ending)
    dose = course_dose(bags)
    calculation = prescription.calculation
    try:
        low = course_low_cells(calculation)
    except (KeyError, ValueError, ArithmeticError):  # a calculation this code cannot read: judge on the target
        low = Decimal(prescription.target_cells)
    if dose.expected_cells >= low:
        return None
    return CourseShort(expected_cells=dose.expected_cells, given_cells=dose.given_cells, low_cells=low,
                       level_cells_per_kg=Decimal(prescription.dose_level_cells_per_kg),
                       weight_kg=Decimal(prescription.weight_kg), lost=dose.lost,
                       stopped=prescription.status != "active")
