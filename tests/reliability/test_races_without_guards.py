"""The races of issues 5-7 and the DIN sequence, with and without their guard, on SQLite and PostgreSQL.

tests/integration already runs them with 10-20 threads on both databases (test_release_views,
test_prescriptions, test_bedside, test_lots_concurrency). Here two attempts are made to read before either
writes (races.Rendezvous), then each race runs twice: guarded (one winner, one clean refusal) and with its
guard taken away, where the defect appears: double release, a bag allocated to two patients, one bag
infused twice, one DIN handed out twice (PostgreSQL); "database is locked" instead of a refusal (SQLite).

Guards taken away: the row lock (SELECT ... FOR UPDATE, patched to a plain SELECT), the protocol's advisory
lock, the atomic UPDATE ... RETURNING of the DIN counter (patched to read-then-write), the UNIQUE constraint
behind them (dropped for the test), and SQLite's BEGIN IMMEDIATE (replaced by a deferred BEGIN).

The allocation and the infusion races also run with their LAST guard alone ("last-guard"): row lock and
advisory lock taken away, the UNIQUE constraint kept on PostgreSQL (both attempts read before either writes;
the loser's INSERT fails on the constraint and comes back as the service's Conflict, whose exact message is
asserted: never an IntegrityError, i.e. a 500), BEGIN IMMEDIATE kept on SQLite (the loser is refused by the
re-read)."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Select, func, select, update

from mscbatch.audit.context import use_case
from mscbatch.core.identifiers import din_shown, parse_din
from mscbatch.custody import infusions
from mscbatch.custody.models import CustodyEvent, Infusion
from mscbatch.errors import Conflict
from mscbatch.lots import din_allocation
from mscbatch.lots.models import Bag, DinCounter, Lot
from mscbatch.patients import prescriptions
from mscbatch.patients.inventory import calculate
from mscbatch.patients.models import Allocation, Prescription
from mscbatch.patients.queries import get_patient
from mscbatch.release import release
from mscbatch.release.demo import enter_panel
from mscbatch.signatures.models import Signature
from mscbatch.site import local_and_utc
from tests.conftest import PASSWORD
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag
from tests.integration.test_release_support import seed_quarantine_lot
from tests.reliability.races import Rendezvous, expected, guard_removed, kinds, race
from tests.reliability.support import assert_chain_verifies

GUARDED = pytest.mark.parametrize("guarded", [True, False], ids=["guarded", "unguarded"])


class UnlockedSelect(Select):  # type: ignore[type-arg]
    """A SELECT whose FOR UPDATE is ignored: the row lock taken away."""

    inherit_cache = True

    def with_for_update(self, *args: Any, **kwargs: Any) -> UnlockedSelect:
        return self


def _dialect(app: Any) -> str:
    return str(app.extensions["mscbatch.db"].engine.dialect.name)


def _scalar(app: Any, statement: Any) -> Any:
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.scalar(statement)


def _shown(app: Any, bag_id: int) -> str:
    """The bag as the refusals name it: its DIN as the label prints it, with K."""
    with app.extensions["mscbatch.db"].new_session() as session:
        return din_shown(session.get(Bag, bag_id))


def _check(app: Any, outcomes: list[tuple[str, Any]], guarded: bool) -> None:
    assert kinds(outcomes) == expected(guarded, _dialect(app)), outcomes
    for kind, value in outcomes:
        if kind == "refused":
            assert isinstance(value, Conflict), value
        if kind == "crashed":
            assert "database is locked" in str(value), value
    assert_chain_verifies(app.config["DATABASE_URL"])  # the audit head's own lock keeps the chain linear


# guarded / unguarded / only the last guard left (see the module's docstring)
MODES = pytest.mark.parametrize("mode", ["guarded", "unguarded", "last-guard"])


def _rendezvous(app: Any, mode: str) -> Rendezvous:
    """Both attempts read before either writes, except where a guard that is still there forbids it."""
    serialised = mode == "guarded" or (mode == "last-guard" and _dialect(app) == "sqlite")
    return Rendezvous(serialised)


def _doubled(app: Any, mode: str) -> bool:
    return mode == "unguarded" and _dialect(app) == "postgresql"


def _check_last_guard(app: Any, outcomes: list[tuple[str, Any]], messages: dict[str, str]) -> None:
    """One winner; the loser refused with a Conflict carrying exactly the message of the dialect's last guard
    (a 409 problem document through the API, not the 500 an unhandled IntegrityError would be)."""
    assert kinds(outcomes) == ["ok", "refused"], outcomes
    [refusal] = [value for kind, value in outcomes if kind == "refused"]
    assert isinstance(refusal, Conflict), refusal
    assert str(refusal) == messages[_dialect(app)], refusal
    assert_chain_verifies(app.config["DATABASE_URL"])


@GUARDED
def test_double_release_of_one_lot(app, users, monkeypatch, guarded):
    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id)
    meet = Rendezvous(guarded)
    locked = release.lock_lot

    def read_lot(session: Any, wanted: int) -> Lot:
        lot = locked(session, wanted) if guarded else session.scalar(
            select(Lot).where(Lot.id == wanted).execution_options(populate_existing=True))
        meet()
        return lot

    monkeypatch.setattr(release, "lock_lot", read_lot)
    with guard_removed(app, guarded):
        outcomes = race(app, lambda session, n: user(session, ("qa", "qa2")[n]),
                        lambda session, signer: release.release_lot(session, signer, lot_id, PASSWORD))
        _check(app, outcomes, guarded)
        releases = _scalar(app, select(func.count()).select_from(Signature).where(
            Signature.meaning == "Released for clinical use"))
        assert releases == (2 if expected(guarded, _dialect(app)) == ["ok", "ok"] else 1)


@MODES
def test_double_allocation_of_one_bag(app, users, monkeypatch, mode):
    guarded = mode == "guarded"
    with app.extensions["mscbatch.db"].new_session() as session:
        tech, clinician = user(session, "technician"), user(session, "clinician")
        lot_with_bags(session, tech, donor(session, tech), bags=6)
        patients = [patient(session, clinician).id for _ in range(2)]
        seen = [int(d.bag_id) for d in calculate(session, patients[0]).allocation.draws]
        session.rollback()
    meet = _rendezvous(app, mode)
    calculated = prescriptions.calculate

    def calculate_then_meet(*args: Any, **kwargs: Any) -> Any:
        result = calculated(*args, **kwargs)
        meet()  # every read done (bags re-read and "locked", stock calculated); the writes follow
        return result

    monkeypatch.setattr(prescriptions, "calculate", calculate_then_meet)
    if not guarded:  # the advisory lock and the row lock taken away
        monkeypatch.setattr(prescriptions, "_serialise", lambda session, protocol_id: None)
        monkeypatch.setattr(prescriptions, "select", UnlockedSelect)
    with guard_removed(app, mode != "unguarded", unique=("bag_allocation", "active_bag_id")):
        outcomes = race(app, lambda session, n: (user(session, "clinician"), patients[n]),
                        lambda session, who: prescriptions.prescribe(session, who[0], PASSWORD, who[1],
                                                                     bag_ids=seen))
        if mode == "last-guard":
            _check_last_guard(app, outcomes, {
                "postgresql": "A bag of this calculation was just allocated to another patient; recalculate.",
                "sqlite": prescriptions.TAKEN.format(din=_shown(app, seen[0]))})
        else:
            _check(app, outcomes, guarded)
        active = _scalar(app, select(func.count()).select_from(Allocation).where(
            Allocation.bag_id == seen[0], Allocation.released_at.is_(None)))
        assert active == (2 if _doubled(app, mode) else 1)
        assert _scalar(app, select(func.count()).select_from(Prescription)) == (2 if _doubled(app, mode) else 1)


def _out_of_its_box(session: Any, bag_id: int) -> None:
    """Without the bag's row lock, two starts each insert an infusion (a KEY SHARE lock on the bag, for the foreign
    key) and then free the bag's box position: an UPDATE of the (box_id, position) key, which waits for the other's
    KEY SHARE while the other waits for the audit head. PostgreSQL then ends one start as a deadlock, and the
    double infusion this test shows without its guard would not happen by luck of the lock order. A bag already
    out of its box (as the older tests' bags were) updates no key column, so the race runs as it would in a unit."""
    with use_case(session, None, "the race's bag taken out of its box"):
        bag = session.get(Bag, bag_id)
        bag.box_id, bag.position = None, None


@MODES
def test_double_infusion_of_one_bag(app, users, monkeypatch, mode):
    guarded = mode == "guarded"
    with app.extensions["mscbatch.db"].new_session() as session:
        ward = prescribed_bag(session)
        checked_and_confirmed(session, ward)
        if not guarded:
            _out_of_its_box(session, ward.bag_id)
    meet = _rendezvous(app, mode)
    evaluated = infusions.evaluate

    def evaluate_then_meet(*args: Any, **kwargs: Any) -> Any:
        result = evaluated(*args, **kwargs)
        meet()  # the bag, its infusions and its check are read; the infusion row follows
        return result

    monkeypatch.setattr(infusions, "evaluate", evaluate_then_meet)
    if not guarded:  # the row locks taken away: the bag's, and the patient's (taken against a weight's change)
        monkeypatch.setattr(infusions, "select", UnlockedSelect)
        monkeypatch.setattr(infusions, "lock_bag", lambda session, bag_id: session.get(Bag, bag_id,
                                                                                   populate_existing=True))
        monkeypatch.setattr(infusions, "lock_patient", get_patient)
    with guard_removed(app, mode != "unguarded", unique=("infusion", "bag_id")):
        outcomes = race(app, lambda session, n: user(session, ("nurse", "nurse2")[n]), lambda session, nurse:
                        infusions.start_infusion(session, nurse, ward.bag_id, wristband=ward.wristband, bag_scan=ward.token,
                                                 label_key=KEY))
        if mode == "last-guard":
            _check_last_guard(app, outcomes, {
                "postgresql": "This bag's infusion was just recorded by someone else.",
                "sqlite": f"Bag {_shown(app, ward.bag_id)} is being infused now: its infusion started on "
                          f"{local_and_utc(_scalar(app, select(Infusion.started_at)))} and has not been ended."})
        else:
            _check(app, outcomes, guarded)
        doubled = _doubled(app, mode)
        assert _scalar(app, select(func.count()).select_from(Infusion)) == (2 if doubled else 1)
        assert _scalar(app, select(func.count()).where(CustodyEvent.kind == "infusion_started")) == (
            2 if doubled else 1)


@GUARDED
def test_one_din_sequence_handed_out_twice(app, monkeypatch, guarded):
    database = app.extensions["mscbatch.db"]
    with database.new_session() as session, use_case(session, None, "first bag of the year"):
        din_allocation.allocate_dins(session, "X9999", 2026, 1)
    meet = Rendezvous(guarded)
    increment = din_allocation._increment

    def read_then_write(session: Any, model: Any, key: dict[str, Any], count: int) -> int:
        last = session.scalar(select(model.last_sequence).filter_by(**key))
        meet()
        session.execute(update(model).filter_by(**key).values(last_sequence=last + count))
        return int(last + count)

    def atomic_then_meet(session: Any, model: Any, key: dict[str, Any], count: int) -> int:
        last = increment(session, model, key, count)
        meet()  # before the commit: the other allocation waits for the counter row
        return last

    monkeypatch.setattr(din_allocation, "_increment", atomic_then_meet if guarded else read_then_write)

    def allocate(session: Any, _: Any) -> str:
        with use_case(session, None, "guard test"):
            din = din_allocation.allocate_dins(session, "X9999", 2026, 1)[0]
        return din.text + din.check_character

    with guard_removed(app, guarded):
        outcomes = race(app, lambda session, n: None, allocate)
    dialect = _dialect(app)
    if guarded:  # no refusal here: both are served, one after the other
        assert kinds(outcomes) == ["ok", "ok"], outcomes
        assert sorted(parse_din(din).sequence for _, din in outcomes) == [2, 3]
        assert _scalar(app, select(DinCounter.last_sequence)) == 3
    elif dialect == "postgresql":
        assert kinds(outcomes) == ["ok", "ok"], outcomes
        assert [parse_din(din).sequence for _, din in outcomes] == [2, 2]  # the same DIN twice
    else:
        assert kinds(outcomes) == ["crashed", "ok"], outcomes
