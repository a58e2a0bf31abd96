"""A recall started while a technician adds a lot to its reach (PostgreSQL, READ COMMITTED).

The recall listed its lots (recall.services.affected_lots) before it locked anything; a use of the recalled reagent
lot recorded (lots.reagents.link_reagent) or corrected onto it (lots.reagent_corrections), or a lot started from the
recalled donor (lots.services.create_lot), asked whether a recall was active before the recall committed. Both saw
nothing of the other and both committed: a cell lot made with the recalled reagent, or from the recalled donor,
escaped the recall (its bags free of any hold, the lot on no recall report).

The guard: the recall locks its origin row (donor, lot, or every row of the reagent's supplier lot) before it lists
its lots, and each of those writers locks the same row before its cell lot (origin first, then lots in id order: no
deadlock). Then either the use/lot commits first and the recall covers it, or it waits and is refused. The same
lock makes a second QA person starting a recall of the same origin wait, then get the clean Conflict.

Each race runs guarded and with the guard taken away (the locks patched out; on SQLite also BEGIN IMMEDIATE, where
one attempt then crashes with "database is locked": races.expected). Both attempts meet (races.Rendezvous) after
their reads and before their writes."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.donors.models import Donor
from mscbatch.errors import Conflict, NotFound
from mscbatch.lots import reagent_corrections, reagents
from mscbatch.lots import services as lot_services
from mscbatch.lots.models import Bag, Lot, ReagentUse
from mscbatch.recall import services as recall_services
from mscbatch.recall.models import BagHold, Recall
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.lot_factories import COLLECTION_DAYS_AGO, TODAY, approved_adipose_donor, at
from tests.integration.patient_factories import donor, lot_with_bags, user
from tests.reliability.races import Rendezvous, expected, guard_removed, kinds, race
from tests.reliability.support import assert_chain_verifies

GUARDED = pytest.mark.parametrize("guarded", [True, False], ids=["guarded", "unguarded"])
REASON = "Supplier notice: endotoxin out of specification"


def _dialect(app: Any) -> str:
    return str(app.extensions["mscbatch.db"].engine.dialect.name)


def _scalar(app: Any, statement: Any) -> Any:
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.scalar(statement)


def _remove_locks(monkeypatch: Any) -> None:
    """The guard taken away: the recall's lock of its origin, the writers' locks of the reagent rows and donor."""
    monkeypatch.setattr(recall_services, "lock_target", lambda session, scope, target_id: None)
    monkeypatch.setattr(reagents, "lock_reagent_lots", lambda session, ids: None)
    monkeypatch.setattr(reagent_corrections, "lock_reagent_lots", lambda session, ids: None)
    monkeypatch.setattr(lot_services, "lock_donor", lambda session, donor_id: session.get(
        Donor, donor_id, populate_existing=True))


def _recall_meets_after_listing(monkeypatch: Any, meet: Rendezvous) -> None:
    listed = recall_services.affected_lots

    def list_then_meet(session: Any, scope: str, target_id: int) -> list[Lot]:
        lots = listed(session, scope, target_id)
        meet()  # the lots are listed; the recall, its holds and its lot moves follow
        return lots

    monkeypatch.setattr(recall_services, "affected_lots", list_then_meet)


def _start_recall(scope: str, target_id: int) -> Any:
    def attempt(session: Any, who: Any) -> Any:
        return recall_services.start_recall(session, who, scope=scope, target_id=target_id, reason=REASON,
                                            password=PASSWORD)
    return attempt


def _check_kinds(app: Any, outcomes: list[tuple[str, Any]], guarded: bool) -> None:
    """Guarded: both served one after the other, or the technician's step refused. Unguarded: PostgreSQL lets both
    commit (the defect, asserted by the caller); SQLite crashes one ("database is locked")."""
    if guarded:
        assert kinds(outcomes) in (["ok", "ok"], ["ok", "refused"]), outcomes
    else:
        assert kinds(outcomes) == (["ok", "ok"] if _dialect(app) == "postgresql" else expected(False, "sqlite")), \
            outcomes
    for kind, value in outcomes:
        if kind == "crashed":
            assert "database is locked" in str(value), value
    assert_chain_verifies(app.config["DATABASE_URL"])


def _unheld_bags(app: Any, lot_id: int) -> int:
    """The lot's bags with no active hold by any recall."""
    held = select(BagHold.id).where(BagHold.bag_id == Bag.id, BagHold.lifted_at.is_(None)).exists()
    return int(_scalar(app, select(func.count()).select_from(Bag).where(Bag.lot_id == lot_id, ~held)))


def _in_process_lot_with_bags(app: Any) -> tuple[int, int, int]:
    """A cell lot in process, harvested and frozen (2 bags), and two registered medium lots: (lot, x, y)."""
    with app.extensions["mscbatch.db"].new_session() as session:
        tech = user(session, "technician")
        lot_id = lot_with_bags(session, tech, donor(session, tech), bags=2, status="in_process")[0].lot_id
        x, y = (reagents.register_reagent_lot(session, tech, reagent_type="medium", name="MEM alpha",
                                              supplier="Acme Media", lot_number=number,
                                              expiry_date=site_today() + timedelta(days=200)).id
                for number in ("MA-77", "MA-78"))
        return lot_id, x, y


def _reagent_race_is_safe(app: Any, outcomes: list[tuple[str, Any]], lot_id: int, reagent_id: int,
                          guarded: bool) -> None:
    """Safe: the use of the recalled reagent was refused, or the recall holds every bag of the lot that used it.
    Unguarded on PostgreSQL: both committed and the lot escaped the recall (the defect)."""
    _check_kinds(app, outcomes, guarded)
    recalled = _scalar(app, select(func.count()).select_from(Recall).where(Recall.reagent_lot_id == reagent_id))
    used = _scalar(app, select(func.count()).select_from(ReagentUse).where(
        ReagentUse.lot_id == lot_id, ReagentUse.reagent_lot_id == reagent_id))
    if guarded or _dialect(app) == "sqlite":
        assert recalled <= 1
        assert not (recalled and used) or _unheld_bags(app, lot_id) == 0, outcomes
    else:
        assert (recalled, used, _unheld_bags(app, lot_id)) == (1, 1, 2), outcomes  # escaped: no bag held


@GUARDED
def test_a_reagent_use_recorded_while_its_recall_starts(app, users, monkeypatch, guarded):
    lot_id, medium, _other = _in_process_lot_with_bags(app)
    meet = Rendezvous(guarded)
    _recall_meets_after_listing(monkeypatch, meet)
    refuse = reagents._refuse_recalled

    def refuse_then_meet(session: Any, reagent: Any) -> None:
        refuse(session, reagent)
        meet()  # no recall seen; the use follows

    monkeypatch.setattr(reagents, "_refuse_recalled", refuse_then_meet)
    if not guarded:
        _remove_locks(monkeypatch)

    def attempt(session: Any, n: int) -> Any:
        if n == 0:
            return _start_recall("reagent_lot", medium)(session, user(session, "qa"))
        return reagents.link_reagent(session, user(session, "technician"), lot_id, medium, used_on=site_today())

    with guard_removed(app, guarded):
        outcomes = race(app, lambda session, n: n, attempt)
    _reagent_race_is_safe(app, outcomes, lot_id, medium, guarded)
    for kind, value in outcomes:
        if kind == "refused":
            assert isinstance(value, Conflict) and str(value).startswith("Recalled reagent refused: Acme Media lot "
                                                                         "MA-77 is under recall R-"), value


@GUARDED
def test_a_reagent_use_corrected_onto_a_reagent_lot_whose_recall_starts(app, users, monkeypatch, guarded):
    lot_id, medium, wrong = _in_process_lot_with_bags(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        use_id = reagents.link_reagent(session, user(session, "technician"), lot_id, wrong, used_on=site_today()).id
    meet = Rendezvous(guarded)
    _recall_meets_after_listing(monkeypatch, meet)
    asked = reagent_corrections.reagent_recall_in_force

    def ask_then_meet(session: Any, reagent: Any) -> Any:
        recall = asked(session, reagent)
        if reagent.id == medium:
            meet()  # the corrected use is written (not committed) and no recall of the lot really used is seen
        return recall

    monkeypatch.setattr(reagent_corrections, "reagent_recall_in_force", ask_then_meet)
    if not guarded:
        _remove_locks(monkeypatch)

    def attempt(session: Any, n: int) -> Any:
        if n == 0:
            return _start_recall("reagent_lot", medium)(session, user(session, "qa"))
        return reagent_corrections.correct_reagent_use(session, user(session, "technician"), lot_id, use_id,
                                                       reagent_lot_id=medium, used_on=site_today(),
                                                       reason="the wrong medium lot was picked")

    with guard_removed(app, guarded):
        outcomes = race(app, lambda session, n: n, attempt)
    # a correction is never refused for a recalled lot: it records what happened and holds the bags itself
    assert "refused" not in kinds(outcomes), outcomes
    _reagent_race_is_safe(app, outcomes, lot_id, medium, guarded)


@GUARDED
def test_a_lot_started_from_a_donor_whose_recall_starts(app, users, monkeypatch, guarded):
    with app.extensions["mscbatch.db"].new_session() as session:
        donor_id = approved_adipose_donor(session)
    meet = Rendezvous(guarded)
    _recall_meets_after_listing(monkeypatch, meet)
    asked = lot_services.recall_in_force_of

    def ask_then_meet(session: Any, scope: str, target_id: int) -> Any:
        recall = asked(session, scope, target_id)
        meet()  # no recall of the donor seen; the lot follows
        return recall

    monkeypatch.setattr(lot_services, "recall_in_force_of", ask_then_meet)
    if not guarded:
        _remove_locks(monkeypatch)
    details = lot_services.LotDetails(donor_id=donor_id, product_id="AT-MSC", collection_site="Theatre 3",
                                      collection_at=at(TODAY - timedelta(days=COLLECTION_DAYS_AGO)),
                                      tissue_amount="50", tissue_unit="g")

    def attempt(session: Any, n: int) -> Any:
        if n == 0:
            return _start_recall("donor", donor_id)(session, user(session, "qa"))
        return lot_services.create_lot(session, user(session, "technician"), details).lot_number

    with guard_removed(app, guarded):
        outcomes = race(app, lambda session, n: n, attempt)
    _check_kinds(app, outcomes, guarded)
    started = outcomes[0][1] if outcomes[0][0] == "ok" else None
    made = outcomes[1][1] if outcomes[1][0] == "ok" else None
    if outcomes[1][0] == "refused":
        assert str(outcomes[1][1]).endswith("No lot can be started from this donor while the recall is in force."), \
            outcomes
    if started is not None and made is not None:
        # covered: on the recall's list of lots (kept in process, held bag by bag as its bags are frozen)
        covered = made in [kept.lot_number for kept in started.lots_kept] + started.recalled_lots
        assert covered == (guarded or _dialect(app) == "sqlite"), outcomes  # unguarded PostgreSQL: escaped


@GUARDED
@pytest.mark.parametrize("scope", ["reagent_lot", "lot"])
def test_two_qa_people_start_a_recall_of_the_same_origin(app, users, monkeypatch, guarded, scope):
    lot_id, medium, _other = _in_process_lot_with_bags(app)
    target = medium if scope == "reagent_lot" else lot_id
    label = ("reagent lot MEM alpha MA-77 (Acme Media)" if scope == "reagent_lot"
             else f"lot {_scalar(app, select(Lot.lot_number).where(Lot.id == lot_id))}")
    meet = Rendezvous(guarded)
    asked = recall_services.recall_in_force_of

    def ask_then_meet(session: Any, scope: str, target_id: int) -> Any:
        recall = asked(session, scope, target_id)
        meet()  # no active recall seen; the recall follows
        return recall

    monkeypatch.setattr(recall_services, "recall_in_force_of", ask_then_meet)
    if not guarded:
        _remove_locks(monkeypatch)
        monkeypatch.setattr(recall_services, "lock_lot", lambda session, wanted: session.get(
            Lot, wanted, populate_existing=True))
    with guard_removed(app, guarded):
        outcomes = race(app, lambda session, n: user(session, ("qa", "qa2")[n]), _start_recall(scope, target))
    assert kinds(outcomes) == expected(guarded, _dialect(app)), outcomes
    for kind, value in outcomes:
        if kind == "refused":
            assert isinstance(value, Conflict)
            assert str(value) == f"A recall of {label} is in force already (active, or completed: a completed recall still covers what it reached).", value
    column = Recall.reagent_lot_id if scope == "reagent_lot" else Recall.lot_id
    recalls = _scalar(app, select(func.count()).select_from(Recall).where(column == target, Recall.status == "active"))
    assert recalls == (2 if not guarded and _dialect(app) == "postgresql" else 1)
    assert_chain_verifies(app.config["DATABASE_URL"])


def test_a_recall_of_a_missing_origin_still_says_what_is_missing(app, users):
    """The origin is locked before affected_lots reads it: an unknown one is still refused in the same words."""
    for scope, words in (("donor", "donor"), ("lot", "lot"), ("reagent_lot", "reagent lot")):
        with app.extensions["mscbatch.db"].new_session() as session, pytest.raises(NotFound) as refused:
            _start_recall(scope, 999_999)(session, user(session, "qa"))
        assert str(refused.value) == f"No {words} with id 999999."
