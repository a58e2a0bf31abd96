"""Reading infusions and reactions for the patient and lot pages, and a bag's custody timeline."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.auth.models import User
from mscbatch.core.dosing import infused_against_prescribed
from mscbatch.custody.models import CustodyEvent, Infusion, InfusionReaction, TwoPersonCheck
from mscbatch.lots.models import Bag, Lot
from mscbatch.patients.models import Allocation, Patient
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
            outside=_outside(infusion, prescribed.get(bag.id), patient)))
    return rows


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
