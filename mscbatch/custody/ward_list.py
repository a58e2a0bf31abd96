"""The ward page's list of the bags out of the unit's stores and not yet given: sent to the ward, received there, or
thawed, each with its patient and, once thawed, the clock time by which it must be given (the product's post-thaw
limit). The thaw message said that time once; a nurse coming back to the page, or the next shift, had nothing."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.custody.checks import last_event_at, received_at, thawed_at
from mscbatch.custody.models import CustodyEvent
from mscbatch.database import utcnow
from mscbatch.lots.models import Bag, Lot
from mscbatch.lots.queries import product_of
from mscbatch.patients.models import Patient
from mscbatch.patients.queries import allocated_patient_id

#: a bag's states between the unit's dispatch and its infusion (or its return or discard)
OUT_ON_THE_WARD = ("dispatched", "received", "thawed")
#: the list is a ward's handful; a bound keeps a page a page should the records say otherwise
MOST = 200


@dataclass(frozen=True)
class BagOnWard:
    bag: Bag
    patient_code: str | None  # the patient its signed prescription reserves it for, if any
    since: datetime | None  # when it was dispatched, received or thawed (its present state's start)
    location: str  # where it was received (or sent to), as recorded
    give_by: datetime | None  # thawed: its thaw + the product's post-thaw limit
    past_limit: bool


def bags_on_ward(session: Session, now: datetime | None = None) -> list[BagOnWard]:
    """The thawed bags first, the soonest to give first; then those received, then those on their way."""
    now = now or utcnow()
    dispatched = last_event_at(Bag.id, "dispatched")
    where = (select(CustodyEvent.location).where(CustodyEvent.bag_id == Bag.id,
                                                 CustodyEvent.kind.in_(("dispatched", "received")))
             .order_by(CustodyEvent.id.desc()).limit(1).scalar_subquery())
    rows = session.execute(
        select(Bag, Lot, Patient.code, dispatched, received_at(Bag.id), thawed_at(Bag.id), where)
        .join(Lot, Lot.id == Bag.lot_id).outerjoin(Patient, Patient.id == allocated_patient_id(Bag.id))
        .where(Bag.status.in_(OUT_ON_THE_WARD)).order_by(Bag.id).limit(MOST)).all()
    listed = []
    for bag, lot, code, sent, received, thawed, location in rows:
        give_by = thawed + product_of(lot).post_thaw_limit if bag.status == "thawed" and thawed else None
        since = {"dispatched": sent, "received": received, "thawed": thawed}[bag.status]
        listed.append(BagOnWard(bag, code, since, location or "", give_by, give_by is not None and now > give_by))
    order = {"thawed": 0, "received": 1, "dispatched": 2}
    return sorted(listed, key=lambda b: (order[b.bag.status], b.give_by or b.since or now))
