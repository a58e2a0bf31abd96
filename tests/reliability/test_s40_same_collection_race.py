"""Two technicians press "Start lot" for the same donor's same collection at the same moment.

One collection gives one lot (lots.services._one_collection_rules): the second lot is refused unless the technician
says it is deliberately another lot from it. The rule reads the donor's earlier lots, so two starts at once could
each find none and both write. The guard is the donor's row lock taken first (lock_donor, SELECT ... FOR UPDATE on
PostgreSQL; BEGIN IMMEDIATE on SQLite): with it the second start waits, then sees the first's lot and is refused
naming it. Without it (lock_donor patched to a plain read, both starts meeting after their reads) PostgreSQL writes
two lots for one collection, the defect; SQLite's deferred transaction cannot be upgraded ("database is locked")."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from mscbatch.donors.models import Donor
from mscbatch.lots import services as lot_services
from mscbatch.lots.models import Lot
from tests.integration.lot_factories import COLLECTION_DAYS_AGO, TODAY, approved_adipose_donor, at
from tests.integration.patient_factories import user
from tests.reliability.races import Rendezvous, expected, guard_removed, kinds, race
from tests.reliability.support import assert_chain_verifies
from tests.reliability.test_races_without_guards import GUARDED


def _dialect(app: Any) -> str:
    return str(app.extensions["mscbatch.db"].engine.dialect.name)


@GUARDED
def test_two_starts_of_one_collection_at_once_make_one_lot(app, users, monkeypatch, guarded):
    with app.extensions["mscbatch.db"].new_session() as session:
        donor_id = approved_adipose_donor(session)
    meet = Rendezvous(guarded)
    judged = lot_services._one_collection_rules

    def judge_then_meet(*args: Any) -> Any:
        same = judged(*args)
        meet()  # the donor's earlier lots are read (none of this collection yet); the lot follows
        return same

    monkeypatch.setattr(lot_services, "_one_collection_rules", judge_then_meet)
    if not guarded:
        monkeypatch.setattr(lot_services, "lock_donor", lambda session, wanted: session.get(
            Donor, wanted, populate_existing=True))
    details = lot_services.LotDetails(donor_id=donor_id, product_id="AT-MSC", collection_site="Theatre 3",
                                      collection_at=at(TODAY - timedelta(days=COLLECTION_DAYS_AGO)),
                                      tissue_amount="50", tissue_unit="g")

    def attempt(session: Any, n: int) -> str:
        return lot_services.create_lot(session, user(session, "technician"), details).lot_number

    with guard_removed(app, guarded):
        outcomes = race(app, lambda session, n: n, attempt)
    assert kinds(outcomes) == expected(guarded, _dialect(app)), outcomes
    with app.extensions["mscbatch.db"].new_session() as session:
        lots = session.scalars(select(Lot.lot_number).where(Lot.donor_id == donor_id)).all()
        assert session.scalar(select(func.count()).select_from(Lot).where(Lot.donor_id == donor_id)) == len(lots)
    if guarded:
        [made] = [value for kind, value in outcomes if kind == "ok"]
        [refusal] = [value for kind, value in outcomes if kind == "refused"]
        assert isinstance(refusal, lot_services.SameCollection), refusal
        assert refusal.existing == made and f"already has lot {made}" in str(refusal)
        assert lots == [made]
    elif _dialect(app) == "postgresql":
        assert len(lots) == 2, lots  # the defect the lock prevents: two lots for one collection
    else:
        assert len(lots) == 1
        [crash] = [value for kind, value in outcomes if kind == "crashed"]
        assert "database is locked" in str(crash), crash
    assert_chain_verifies(app.config["DATABASE_URL"])
