"""`mscbatch audit reconcile`: the live rows of every audited table against their replayed audit trail, on SQLite
and PostgreSQL. A database the application alone wrote reconciles clean (the demo, a release, the bedside flow,
every kind of value); a change made with SQL behind the application's back (the reviewer's tampering: a released
lot's result, a bag's cell count, a deleted custody event, a row with no event) is named by table, id and field,
although `audit verify` still finds the chain intact."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, text

from mscbatch import create_app
from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.audit.reconcile import audited_models, reconcile_database
from mscbatch.custody.models import CustodyEvent
from mscbatch.database import Base
from mscbatch.lots.models import Bag, Lot, StorageLocation
from mscbatch.patients.models import Allocation, Prescription, WeightMeasurement
from mscbatch.release import release
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import ReleaseResult
from tests.conftest import PASSWORD, TEST_CONFIG
from tests.integration.lot_factories import approved_adipose_donor, box, cryopreserved_lot
from tests.integration.test_custody_support import checked_and_confirmed, prescribed_bag
from tests.integration.test_release_support import seed_quarantine_lot, user

TABLES = len(audited_models())


def _run(app, *args):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=list(args))


def _reconcile(app):  # type: ignore[no-untyped-def]
    with app.app_context(), app.extensions["mscbatch.db"].new_session() as session:
        return reconcile_database(session, keep=1000)


def _clean(app) -> None:  # type: ignore[no-untyped-def]
    result = _run(app, "audit", "reconcile")
    assert result.exit_code == 0, result.output
    assert result.output.endswith(f"rows of {TABLES} tables match their audit trail.\n"), result.output
    assert int(result.output.split()[0]) > 0


def _attacker(app, *statements: Any, **params: Any) -> None:  # type: ignore[no-untyped-def]
    """Someone with database access and no audit key: plain SQL, past the append-only triggers (PostgreSQL: as a
    superuser, triggers off for the transaction; SQLite: the trigger dropped, as DDL rights allow)."""
    engine = app.extensions["mscbatch.db"].engine
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        else:
            connection.exec_driver_sql("DROP TRIGGER IF EXISTS custody_event_no_delete")
        for statement in statements:
            connection.execute(text(statement) if isinstance(statement, str) else statement, params)


def _copy_row_sql(table: str, new_id: int, source_id: int) -> str:
    """INSERT a copy of a row under a new id: a row with every column filled, and no event."""
    columns = [c.name for c in Base.metadata.tables[table].columns if c.name != "id"]
    names = ", ".join(f'"{c}"' for c in columns)
    return (f'INSERT INTO "{table}" ("id", {names}) SELECT {int(new_id)}, {names} FROM "{table}" '
            f"WHERE id = {int(source_id)}")


# ---- databases the application alone wrote ------------------------------------------------------------------

def test_a_fresh_demo_database_reconciles_clean(app):
    """What `make run` serves (seed-demo over a migrated database), on SQLite and PostgreSQL; seeded twice, as
    seed-demo is idempotent."""
    assert _run(app, "seed-demo").exit_code == 0
    _clean(app)
    assert _run(app, "seed-demo").exit_code == 0
    _clean(app)
    assert _run(app, "audit", "verify").exit_code == 0


def test_make_run_on_a_new_database_reconciles_clean(tmp_path):
    """`make run` exactly: `mscbatch init` migrates a new SQLite file from nothing, then `mscbatch seed-demo`."""
    app = create_app({**TEST_CONFIG, "DATABASE_URL": f"sqlite:///{tmp_path}/instance.sqlite3"})
    try:
        assert _run(app, "init").exit_code == 0
        empty = _run(app, "audit", "reconcile")
        assert empty.exit_code == 0 and empty.output == f"0 rows of {TABLES} tables match their audit trail.\n"
        assert _run(app, "seed-demo").exit_code == 0
        _clean(app)
    finally:
        app.extensions["mscbatch.db"].engine.dispose()


def test_a_release_and_the_bedside_flow_reconcile_clean(app, users, monkeypatch):
    """Updates, status changes, signatures and locks (release), and the bedside check's Core insert
    (trail.insert_audited) with its second-person confirmation."""
    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.app_context(), app.extensions["mscbatch.db"].new_session() as s:
        enter_panel(s, user(s, "technician"), lot_id)
        release.release_lot(s, user(s, "qa"), lot_id, PASSWORD)
        ward = prescribed_bag(s, state="thawed")
        checked_and_confirmed(s, ward)
        assert s.scalar(select(AuditEvent.seq).where(AuditEvent.entity_type == "two_person_check", AuditEvent.action == "insert"))
    _clean(app)


def _insert_snapshot(session, table: str, entity_id: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return json.loads(session.scalar(select(AuditEvent.new_value).where(
        AuditEvent.entity_type == table, AuditEvent.entity_id == str(entity_id), AuditEvent.action == "insert")))


def test_numbers_dates_instants_booleans_and_json_text_compare_equal_when_unchanged(app, users):
    """Real records of each kind reconcile although the database gives some back in another spelling than the
    service set them (the trail keeps the service's), and a change of each by SQL is named."""
    with app.app_context(), app.extensions["mscbatch.db"].new_session() as s:
        ward = prescribed_bag(s, state="allocated", last=True)  # the last bag: a partial draw
        weight = s.scalar(select(WeightMeasurement).where(WeightMeasurement.patient_id == ward.patient_id))
        allocation = s.scalar(select(Allocation).where(Allocation.bag_id == ward.bag_id))
        lot_id, bags = cryopreserved_lot(s, approved_adipose_donor(s), count=1)  # times in the site's zone
        ids = dict(weight=weight.id, allocation=allocation.id, prescription=allocation.prescription_id,
                   bag=bags[0].id, lot=lot_id)
        snapshots = {table: _insert_snapshot(s, table, ids[key]) for table, key in (
            ("patient_weight", "weight"), ("bag_allocation", "allocation"), ("prescription", "prescription"),
            ("bag", "bag"))}
        frozen_event = s.scalar(select(AuditEvent.new_value).where(
            AuditEvent.entity_type == "lot", AuditEvent.entity_id == str(lot_id), AuditEvent.field == "frozen_at"))
    with app.app_context(), app.extensions["mscbatch.db"].new_session() as s:  # as the database gives them back
        weight, allocation = s.get(WeightMeasurement, ids["weight"]), s.get(Allocation, ids["allocation"])
        prescription, bag, lot = s.get(Prescription, ids["prescription"]), s.get(Bag, ids["bag"]), s.get(Lot, lot_id)
        # the spellings differ, the values do not: Numeric(6, 2) gives 62.50; a site time comes back in UTC
        assert snapshots["patient_weight"]["weight_kg"] == "62.5" and weight.weight_kg == Decimal("62.50")
        for in_trail, live in ((snapshots["bag"]["expires_at"], bag.expires_at), (frozen_event, lot.frozen_at)):
            assert in_trail.endswith(("+01:00", "+02:00")) and live.utcoffset() == timedelta(0)
            assert datetime.fromisoformat(in_trail) == live
        assert snapshots["patient_weight"]["measured_on"] == weight.measured_on.isoformat()
        assert snapshots["bag_allocation"]["partial"] == "true" and allocation.partial is True
        assert snapshots["prescription"]["calculation_json"] == prescription.calculation_json
        assert json.loads(prescription.calculation_json)
        measured_on, expires_at, frozen_at = weight.measured_on, bag.expires_at, lot.frozen_at
        calculation = prescription.calculation_json
    _clean(app)

    assert "62.5" in calculation
    _attacker(app, "UPDATE patient_weight SET weight_kg = 62.51 WHERE id = :weight",
              "UPDATE patient_weight SET measured_on = :day WHERE id = :weight",
              "UPDATE bag SET expires_at = :expires WHERE id = :bag",
              "UPDATE lot SET frozen_at = :frozen WHERE id = :lot",
              "UPDATE bag_allocation SET partial = :no WHERE id = :allocation",
              "UPDATE prescription SET calculation_json = :calculation WHERE id = :prescription",
              day=measured_on - timedelta(days=1), expires=expires_at + timedelta(seconds=1),
              frozen=frozen_at - timedelta(hours=1), no=False, calculation=calculation.replace("62.5", "52.5", 1),
              **ids)
    outcome = _reconcile(app)
    assert sorted((d.table, d.entity_id, d.field) for d in outcome.listed) == sorted([
        ("patient_weight", str(ids["weight"]), "weight_kg"), ("patient_weight", str(ids["weight"]), "measured_on"),
        ("bag", str(ids["bag"]), "expires_at"), ("lot", str(lot_id), "frozen_at"),
        ("bag_allocation", str(ids["allocation"]), "partial"),
        ("prescription", str(ids["prescription"]), "calculation_json")])
    said = {d.field: str(d) for d in outcome.listed}
    assert said["weight_kg"] == f'patient_weight id {ids["weight"]}, field weight_kg: the audit trail says "62.5", ' \
                                'the database holds "62.51"'
    assert said["partial"].endswith('the audit trail says "true", the database holds "false"')
    assert said["measured_on"].endswith(f'the database holds "{(measured_on - timedelta(days=1)).isoformat()}"')
    assert said["frozen_at"].endswith(f'the audit trail says "{frozen_event}", the database holds '
                                      f'"{(frozen_at - timedelta(hours=1)).isoformat(timespec="microseconds")}"')


# ---- tampering ----------------------------------------------------------------------------------------------

def _released_lot(app, monkeypatch):  # type: ignore[no-untyped-def]
    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.app_context(), app.extensions["mscbatch.db"].new_session() as s:
        enter_panel(s, user(s, "technician"), lot_id)
        release.release_lot(s, user(s, "qa"), lot_id, PASSWORD)
        viability = s.scalar(select(ReleaseResult).where(ReleaseResult.lot_id == lot_id,
                                                         ReleaseResult.test_id == "viability"))
        bag = s.scalar(select(Bag).where(Bag.lot_id == lot_id).order_by(Bag.id))
        custody = s.scalars(select(CustodyEvent.id).order_by(CustodyEvent.id)).all()
        assert len(custody) >= 2, "the demo lot's bags have custody events"
        return lot_id, viability.id, viability.value, bag.id, bag.total_cells, custody


def test_sql_edits_of_a_released_lot_are_reported_by_table_id_and_field(app, users, monkeypatch):
    """The reviewer's case (/tmp/review_audit/test_uncovered_rows.py): the chain verifies, reconcile does not."""
    _lot_id, result_id, value, bag_id, cells, custody = _released_lot(app, monkeypatch)
    _clean(app)
    _attacker(app, "UPDATE release_result SET value = '55' WHERE id = :result",
              "UPDATE bag SET total_cells = total_cells * 10 WHERE id = :bag",
              "DELETE FROM custody_event WHERE id = :custody",
              _copy_row_sql("custody_event", custody[-1] + 1000, custody[-1]),
              result=result_id, bag=bag_id, custody=custody[0])
    assert _run(app, "audit", "verify").exit_code == 0  # the hash chain alone sees nothing

    result = _run(app, "audit", "reconcile")
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("AUDIT TRAIL AND DATABASE DIFFER: 4 difference(s) in 3 table(s) (")
    assert f'  release_result id {result_id}, field value: the audit trail says "{value}", the database holds "55"' \
        in lines
    assert f'  bag id {bag_id}, field total_cells: the audit trail says "{cells}", the database holds ' \
           f'"{cells * 10}"' in lines
    assert f"  custody_event id {custody[0]}: the audit trail records this row and no deletion of it, but it is " \
           "missing from the database" in lines
    assert f"  custody_event id {custody[-1] + 1000}: the row is in the database, but the audit trail has no " \
           "insert event for it" in lines
    assert lines[-4:] == ["Differences per table:", "  bag: 1", "  custody_event: 2", "  release_result: 1"]


def test_a_deleted_row_back_in_the_database_and_a_row_deleted_without_an_event(app, users):
    """Storage locations are not append-only: one deleted by the application (a delete event), then put back as it
    was with SQL; another deleted with SQL (no event)."""
    with app.app_context(), app.extensions["mscbatch.db"].new_session() as s:
        box_id = box(s)
        spare = box(s, temperature=-160)
        tech = user(s, "technician")
        row = dict(s.execute(select(StorageLocation.__table__).where(StorageLocation.id == box_id)).mappings().one())
        with use_case(s, tech, "created by mistake"):
            s.delete(s.get(StorageLocation, box_id))
        assert s.scalar(select(AuditEvent.seq).where(AuditEvent.entity_type == "storage_location",
                                                     AuditEvent.entity_id == str(box_id),
                                                     AuditEvent.action == "delete"))
    _clean(app)
    _attacker(app, insert(StorageLocation.__table__).values(**row), "DELETE FROM storage_location WHERE id = :spare",
              spare=spare)
    outcome = _reconcile(app)
    assert [(d.table, d.entity_id, d.kind) for d in outcome.listed] == [
        ("storage_location", str(box_id), "deleted but present"), ("storage_location", str(spare), "missing")]
    assert str(outcome.listed[0]) == (f"storage_location id {box_id}: the audit trail records its deletion, but the "
                                      "row is still in the database")


def test_values_emptied_or_set_are_named_and_hidden_fields_are_compared_but_never_printed(app, users):
    """A name emptied, a revocation time set from nothing: differences like any other. A hidden field (a password
    hash, an API token's hash) is kept in the trail as a keyed digest: a hash swapped with SQL (which would let its
    author sign as QA) is a difference too, and neither value is ever printed."""
    from mscbatch.auth.models import ApiToken, User
    from mscbatch.auth.services import create_api_token

    with app.app_context(), app.extensions["mscbatch.db"].new_session() as s:
        qa = s.scalar(select(User).where(User.username == "qa"))
        create_api_token(s, qa, "lab robot")
        token = s.scalar(select(ApiToken).where(ApiToken.user_id == qa.id))
        token_id, revoked = token.id, token.revoked_at
    assert revoked is None
    _attacker(app, "UPDATE user_account SET full_name = '' , password_hash = 'attacker-known-hash' "
                   "WHERE username = 'qa'",
              "UPDATE api_token SET token_hash = 'attacker-token-hash', revoked_at = created_at WHERE id = :token",
              token=token_id)
    outcome = _reconcile(app)
    said = [str(d) for d in outcome.listed]
    assert sorted((d.table, d.field) for d in outcome.listed) == [
        ("api_token", "revoked_at"), ("api_token", "token_hash"), ("user_account", "full_name"),
        ("user_account", "password_hash")]
    assert any(line.endswith('field full_name: the audit trail says "Qa", the database holds ""') for line in said)
    assert not any("attacker" in line or "hidden-value" in line for line in said)


# ---- what does not reconcile by design ----------------------------------------------------------------------

def test_scale_data_does_not_reconcile_by_design(app):
    """`mscbatch seed-scale` (benchmark data, refused in production) writes one insert event per main record and
    none for detail rows (mscbatch/scale/records.py: `audit=False`), and snapshots a signed record as first saved
    and an infusion as started, without the later events the application writes. Reconcile says so; it exempts no
    table (a real unit's results and custody events are exactly what it must check)."""
    from mscbatch.scale import seed_scale

    seed_scale(app, 20)
    outcome = _reconcile(app)
    without_event = {d.table for d in outcome.listed if d.kind == "no insert event"}
    assert {"release_result", "custody_event", "lot_process_step", "donor_screening_result"} <= without_event
    values = {(d.table, d.field) for d in outcome.listed if d.kind == "value"}
    assert ("prescription", "locked_at") in values
    assert all(d.in_trail is None for d in outcome.listed if d.kind == "value")  # set later, with no event
    assert not any(d.kind in ("missing", "deleted but present") for d in outcome.listed)
