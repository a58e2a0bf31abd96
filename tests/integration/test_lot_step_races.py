"""Two technicians recording the same manufacturing step of one lot at the same moment, on SQLite and PostgreSQL.
The steps decide on what they read ("no bags yet", "not harvested yet"), so on PostgreSQL (READ COMMITTED) two
freezings of one harvest both see no bags and both freeze it; only the UNIQUE (lot, bag number) constraint stops
the second, as a database error: a 500 for the technician, after DINs were drawn. Guarded, each step takes the
lot's row lock (lots.services.lock_lot): one freezing wins, the other is refused in words."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from mscbatch.core.culture import BagPlan
from mscbatch.errors import Conflict
from mscbatch.lots import bags
from mscbatch.lots.models import Bag, Lot
from tests.integration import lot_factories as lf
from tests.integration.test_release_races import _meet_after, _unlocked
from tests.reliability.races import Rendezvous, expected, guard_removed, kinds, race
from tests.reliability.support import assert_chain_verifies

PLAN = [BagPlan(volume_ml=Decimal(20), cells_per_ml=lf.M, dmso_percent=Decimal(10))] * 4


@pytest.mark.parametrize("guarded", [True, False], ids=["guarded", "unguarded"])
def test_two_freezings_of_one_harvest_at_once_make_its_bags_once(app, users, monkeypatch, guarded) -> None:  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        lot_id = lf.harvested_lot(session, lf.approved_adipose_donor(session))
    meet = Rendezvous(guarded)
    monkeypatch.setattr(bags, "bags_of", _meet_after(meet, bags.bags_of))  # both have read "no bags yet"
    if not guarded:
        monkeypatch.setattr(bags, "lock_lot", _unlocked)
    with guard_removed(app, guarded):
        outcomes = race(app, lambda session, n: lf.user(session, "technician"),
                        lambda session, tech: bags.cryopreserve(session, tech, lot_id, frozen_at=lf.at(lf.TODAY, 9),
                                                                bags=PLAN))
        dialect = app.extensions["mscbatch.db"].engine.dialect.name
        if guarded or dialect == "sqlite":
            assert kinds(outcomes) == expected(guarded, dialect), outcomes
        else:  # both read "no bags": the second fails on the constraint, not on a rule
            assert kinds(outcomes) == ["error", "ok"], outcomes
            assert "uq_bag_lot_id_bag_number" in str(next(v for k, v in outcomes if k == "error"))
        with app.extensions["mscbatch.db"].new_session() as session:
            made = session.scalar(select(func.count()).select_from(Bag).where(Bag.lot_id == lot_id))
            assert session.get(Lot, lot_id) is not None
        assert_chain_verifies(app.config["DATABASE_URL"])
    if guarded:
        refusal = next(value for kind, value in outcomes if kind == "refused")
        assert isinstance(refusal, Conflict) and "already" in str(refusal).lower(), refusal
    assert made == len(PLAN)
