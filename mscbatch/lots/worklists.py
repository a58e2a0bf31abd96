"""The technician's work lists on the home page: lots in process with their next step, bags frozen but not placed
in a box, bags allocated to a patient and waiting to be sent to the ward. Each list is one statement whatever the
number of lots or bags (its first `limit` rows, and how many there are in all, by a window count)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mscbatch.lots.models import Bag, Lot, ProcessStep, StorageLocation
from mscbatch.lots.queries import position_label

SHOWN_AT_MOST = 10
#: lots whose bags still belong in a box: not those of a rejected, recalled or expired lot (QA disposes of those)
STORABLE_LOTS = ("in_process", "quarantine", "released", "conditional_release")


@dataclass(frozen=True)
class WorkList:
    rows: list[Any]
    total: int

    @property
    def more(self) -> int:
        """How many are not shown ("and N more")."""
        return max(self.total - len(self.rows), 0)


@dataclass(frozen=True)
class LotNextStep:
    lot_id: int
    lot_number: str
    product_name: str
    step: str  # the next step in the words of the lot page's form
    anchor: str  # where on the lot page that form is


@dataclass(frozen=True)
class BagWork:
    lot_id: int
    lot_number: str
    bag: Bag
    frozen_at: datetime | None = None
    box_id: int | None = None
    place: str = ""  # "Box 1, B3"
    patient_code: str = ""


def next_step(steps: int, passages: int, harvested: bool, bags: int) -> tuple[str, str]:
    """The next step of a lot in process, as its page's form names it, and that form's anchor on the page."""
    if not steps:
        return "Record the isolation", "process"
    if not harvested:
        if passages:
            return f"Record passage P{passages} or the harvest", "process"
        return f"Record passage P{passages}", "process"
    if not bags:
        return "Cryopreserve into bags", "harvest"
    return "Send to quarantine once every bag is placed and the reagent lots used are recorded", "state"


def _counted(rows: list[Any]) -> tuple[list[Any], int]:
    return rows, (rows[0].total if rows else 0)


def lots_in_process(session: Session, limit: int = SHOWN_AT_MOST) -> WorkList:
    """Lots in process, oldest first (the longest waiting), each with its next step."""
    steps = select(func.count(ProcessStep.id)).where(ProcessStep.lot_id == Lot.id).correlate(Lot).scalar_subquery()
    passages = (select(func.count(ProcessStep.id)).where(ProcessStep.lot_id == Lot.id, ProcessStep.kind == "passage")
                .correlate(Lot).scalar_subquery())
    bags = select(func.count(Bag.id)).where(Bag.lot_id == Lot.id).correlate(Lot).scalar_subquery()
    rows, total = _counted(list(session.execute(
        select(Lot.id, Lot.lot_number, Lot.product_name, Lot.harvested_at, steps.label("steps"),
               passages.label("passages"), bags.label("bags"), func.count().over().label("total"))
        .where(Lot.status == "in_process").order_by(Lot.id).limit(limit))))
    return WorkList([LotNextStep(r.id, r.lot_number, r.product_name,
                             *next_step(r.steps, r.passages, r.harvested_at is not None, r.bags)) for r in rows], total)


def bags_not_placed(session: Session, limit: int = SHOWN_AT_MOST) -> WorkList:
    """Bags frozen but never put in a box position (nowhere the unit could fetch them from), the oldest first."""
    rows, total = _counted(list(session.execute(
        select(Bag, Lot.lot_number, Lot.frozen_at, func.count().over().label("total"))
        .join(Lot, Lot.id == Bag.lot_id)
        .where(Bag.status == "stored", Bag.box_id.is_(None), Lot.status.in_(STORABLE_LOTS))
        .order_by(Bag.id).limit(limit))))
    return WorkList([BagWork(r.Bag.lot_id, r.lot_number, r.Bag, frozen_at=r.frozen_at) for r in rows], total)


def bags_to_dispatch(session: Session, limit: int = SHOWN_AT_MOST) -> WorkList:
    """Bags allocated to a patient and still in the unit, the first allocated first: where to fetch each (box and
    position) and for whom (the trial patient code of its standing allocation)."""
    # patients build on lots: imported here, not at module level
    from mscbatch.patients.models import Allocation, Patient

    rows, total = _counted(list(session.execute(
        select(Bag, Lot.lot_number, StorageLocation, Patient.code, func.count().over().label("total"))
        .join(Lot, Lot.id == Bag.lot_id)
        .outerjoin(StorageLocation, StorageLocation.id == Bag.box_id)
        .outerjoin(Allocation, Allocation.active_bag_id == Bag.id)
        .outerjoin(Patient, Patient.id == Allocation.patient_id)
        .where(Bag.status == "allocated")
        .order_by(Allocation.allocated_at, Bag.id).limit(limit))))
    return WorkList([BagWork(r.Bag.lot_id, r.lot_number, r.Bag, box_id=r.StorageLocation.id if r.StorageLocation else None,
                             place=(f"{r.StorageLocation.name}, {position_label(r.StorageLocation, r.Bag.position)}"
                                    if r.StorageLocation else "not placed in a box"),
                             patient_code=r.code or "") for r in rows], total)
