"""Reading infusions and reactions for the patient and lot pages, and a bag's custody timeline."""
from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.auth.models import User
from mscbatch.core.dosing import CourseBag, course_dose, course_low_cells, infused_against_prescribed
from mscbatch.custody.models import CustodyEvent, Infusion, InfusionReaction, TwoPersonCheck
from mscbatch.lots.models import Bag, Lot
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


def timeline(session: Session, bag_id: int) -> list[tuple[CustodyEvent, str]]:
    """The bag's custody events, oldest first, with who recorded each (for traceability pages)."""
    events = list(session.scalars(select(CustodyEvent).where(CustodyEvent.bag_id == bag_id).order_by(CustodyEvent.id)))
    names = _names(session, {e.actor_id for e in events})
    return [(event, names.get(event.actor_id, "?")) for event in events]


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
