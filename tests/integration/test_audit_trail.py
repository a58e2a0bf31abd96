"""The audit trail: one event per changed field, append-only, and tampering detected by `audit verify`."""
from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DatabaseError

from mscbatch.audit import trail
from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.audit.trail import AuditConfigurationError
from mscbatch.audit.verify import verify_database
from mscbatch.auth.models import User
from mscbatch.core.audit_chain import canonical_value
from mscbatch.custody.models import TwoPersonCheck
from mscbatch.lots.models import StorageLocation
from tests.conftest import TEST_CONFIG


def _session(app):  # type: ignore[no-untyped-def]
    return app.extensions["mscbatch.db"].new_session()


def _verify_cli(app):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=["audit", "verify"])


def test_one_changed_field_writes_one_event_with_old_new_who_when_and_why(app, users):
    with app.app_context():
        session = _session(app)
        before = session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1))
        admin = session.scalar(select(User).where(User.username == "admin"))
        nurse = session.scalar(select(User).where(User.username == "nurse"))
        with use_case(session, admin, "name was misspelt"):
            nurse.full_name = "Nina Nurse-Martin"
        events = session.scalars(select(AuditEvent).where(AuditEvent.seq > before)).all()
        assert len(events) == 1
        event = events[0]
        assert (event.entity_type, event.entity_id, event.field) == ("user_account", str(nurse.id), "full_name")
        assert (event.old_value, event.new_value) == ("Nurse", "Nina Nurse-Martin")
        assert (event.actor_id, event.actor_name, event.reason) == (admin.id, "admin", "name was misspelt")
        assert event.occurred_at.tzinfo is not None
        session.close()


def test_a_failed_use_case_leaves_no_audit_event(app, users):
    with app.app_context():
        session = _session(app)
        count = session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1))
        nurse = session.scalar(select(User).where(User.username == "nurse"))
        with pytest.raises(RuntimeError), use_case(session, None):
            nurse.full_name = "Changed"
            session.flush()
            raise RuntimeError("a later step fails")
        assert session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)) == count
        session.close()


def test_the_untouched_chain_verifies(app, users):
    result = _verify_cli(app)
    assert result.exit_code == 0, result.output
    assert "Audit trail intact" in result.output


def test_a_new_database_has_a_head_and_verifies_with_no_events(app):
    """Every way the tests and `mscbatch init` make a database writes the head: no false alarm before any event."""
    result = _verify_cli(app)
    assert result.exit_code == 0, result.output
    assert "0 events verified" in result.output


def test_a_wiped_trail_stays_broken_after_a_restart_and_refuses_writes(app, users):
    """A restart (AUTO_MIGRATE, `mscbatch init`) must not start a new chain over a deleted one."""
    from mscbatch.cli import init_database

    _tamper(app, "DELETE FROM audit_event; DELETE FROM audit_head")
    init_database(app)
    result = _verify_cli(app)
    assert result.exit_code == 1 and "head record is missing" in result.output
    with app.app_context(), _session(app) as session:
        nurse = session.scalar(select(User).where(User.username == "nurse"))
        with pytest.raises(AuditConfigurationError, match="no head"), use_case(session, None, "rename"):
            nurse.full_name = "Changed"
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 0


def _tamper(app, sql: str, **params):  # type: ignore[no-untyped-def]
    """What an attacker with database access could do: bypass the append-only triggers and edit rows."""
    engine = app.extensions["mscbatch.db"].engine
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        else:
            for trigger in ("audit_event_no_update", "audit_event_no_delete"):
                connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger}")
        for statement in sql.split(";"):
            connection.execute(text(statement), params)


@pytest.mark.parametrize("attack, sql, bad_seq", [
    ("a changed value", "UPDATE audit_event SET new_value = 'Mallory' WHERE seq = 3", 3),
    ("a changed reason", "UPDATE audit_event SET reason = 'nothing to see' WHERE seq = 2", 2),
    ("a deleted event", "DELETE FROM audit_event WHERE seq = 4", 4),
    ("the newest event deleted", "DELETE FROM audit_event WHERE seq = (SELECT MAX(seq) FROM audit_event)", None),
    ("two events swapped", "UPDATE audit_event SET seq = -2 WHERE seq = 2; "
                           "UPDATE audit_event SET seq = 2 WHERE seq = 5; UPDATE audit_event SET seq = 5 WHERE seq = -2", 2),
    ("the head deleted", "DELETE FROM audit_head", None),
    ("the whole trail and its head deleted", "DELETE FROM audit_event; DELETE FROM audit_head", 1),
])
def test_tampering_with_any_single_audit_row_is_detected(app, users, attack, sql, bad_seq):
    _tamper(app, sql)
    result = _verify_cli(app)
    assert result.exit_code == 1, f"{attack} went unnoticed: {result.output}"
    assert "AUDIT TRAIL BROKEN" in result.output
    with app.app_context(), _session(app) as session:
        verdict = verify_database(session, TEST_CONFIG["AUDIT_KEY"])
    assert not verdict.ok
    if bad_seq is not None:
        assert verdict.first_bad_seq == bad_seq, verdict


def test_verification_with_another_key_fails(app, users):
    with app.app_context(), _session(app) as session:
        assert not verify_database(session, "some-other-key").ok


def test_the_database_refuses_to_update_or_delete_an_audit_row(app, users):
    engine = app.extensions["mscbatch.db"].engine
    for statement in ("UPDATE audit_event SET reason = 'x' WHERE seq = 1", "DELETE FROM audit_event WHERE seq = 1"):
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))


def test_postgresql_refuses_to_truncate_the_audit_trail(app, users):
    engine = app.extensions["mscbatch.db"].engine
    if engine.dialect.name != "postgresql":
        pytest.skip("TRUNCATE exists on PostgreSQL only")
    with pytest.raises(DatabaseError, match="append-only"), engine.begin() as connection:
        connection.execute(text("TRUNCATE audit_event"))


def test_the_audit_viewer_filters_by_record_user_and_date(app, users, client_as):
    client = client_as("qa")
    with app.app_context(), _session(app) as session:
        nurse_id = session.scalar(select(User.id).where(User.username == "nurse"))
    page = html.unescape(client.get(f"/audit?entity_type=user_account&entity_id={nurse_id}").get_data(as_text=True))
    assert '"username":"nurse"' in page and '"username":"qa2"' not in page
    assert "login" in client.get("/audit?actor=qa").get_data(as_text=True)
    assert "No events match" in client.get("/audit?from=2000-01-01&to=2000-01-02").get_data(as_text=True)


def test_the_application_role_may_not_update_delete_or_truncate_audit_rows(app, users, database_url):
    """With MSCBATCH_APP_DB_ROLE configured, privileges are revoked on top of the triggers (PostgreSQL)."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from mscbatch.cli import init_database

    engine = app.extensions["mscbatch.db"].engine
    if engine.dialect.name != "postgresql":
        pytest.skip("database roles exist on PostgreSQL only")
    with engine.begin() as connection:
        connection.exec_driver_sql("DO $$ BEGIN CREATE ROLE mscbatch_app_test LOGIN; "
                                   "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    app.config["APP_DB_ROLE"] = "mscbatch_app_test"
    init_database(app)
    as_app = create_engine(make_url(database_url).set(username="mscbatch_app_test"))
    try:
        with as_app.begin() as connection:  # the application role can still read and append
            assert connection.execute(text("SELECT count(*) FROM audit_event")).scalar() > 0
        for statement in ("UPDATE audit_event SET reason = 'x'", "DELETE FROM audit_event", "TRUNCATE audit_event"):
            with pytest.raises(DatabaseError, match="permission denied"), as_app.begin() as connection:
                connection.execute(text(statement))
    finally:
        as_app.dispose()
        with engine.begin() as connection:
            connection.exec_driver_sql("REASSIGN OWNED BY mscbatch_app_test TO postgres; "
                                       "DROP OWNED BY mscbatch_app_test")


def test_a_core_insert_writes_the_event_the_flush_hook_writes_for_the_same_row(app, users):
    """trail.insert_audited (the bedside check's record) and the flush hook write the same event for one row."""
    with app.app_context():
        session = _session(app)
        nurse = session.scalar(select(User).where(User.username == "nurse"))
        values = dict(bag_id=None, patient_id=None, wristband_scan="WB-1", bag_scan="W0000 26 000001 K",
                      result="stop", failures_json=json.dumps([{"code": "bag", "message": "Unknown bag."}]),
                      notes_json="[]", checked_by_id=nurse.id, checked_at=datetime(2026, 12, 3, 23, 30, 1, 5, UTC))
        with use_case(session, nurse):
            by_orm = TwoPersonCheck(**values)
            session.add(by_orm)
            session.flush()
        with use_case(session, nurse):
            by_core = trail.insert_audited(session, TwoPersonCheck, values)
        orm_event = session.scalar(select(AuditEvent).where(
            AuditEvent.entity_type == "two_person_check", AuditEvent.entity_id == str(by_orm.id)))
        core_event = session.scalar(select(AuditEvent).where(
            AuditEvent.entity_type == "two_person_check", AuditEvent.entity_id == str(by_core.id)))
        orm_row, core_row = json.loads(orm_event.new_value), json.loads(core_event.new_value)
        assert (orm_row.pop("id"), core_row.pop("id")) == (str(by_orm.id), str(by_core.id))
        assert core_row == orm_row and core_row["checked_at"] == "2026-12-03T23:30:01.000005+00:00"
        assert (core_event.action, core_event.field, core_event.old_value, core_event.actor_name) == \
            ("insert", None, None, "nurse")

        # defaults applied by Core (checked_at, notes_json) are in the event as stored
        with use_case(session, nurse):
            defaulted = trail.insert_audited(session, TwoPersonCheck, {
                k: v for k, v in values.items() if k not in ("checked_at", "notes_json")})
        stored = session.get(TwoPersonCheck, defaulted.id)
        event = session.scalar(select(AuditEvent).where(
            AuditEvent.entity_type == "two_person_check", AuditEvent.entity_id == str(defaulted.id)))
        assert json.loads(event.new_value)["checked_at"] == canonical_value(defaulted.checked_at)
        assert stored.checked_at == defaulted.checked_at
        assert json.loads(event.new_value)["notes_json"] == "[]" == stored.notes_json

        # a value is recorded as given, as the ORM object holds it: -135.50 in a Numeric(6, 1) column is stored
        # and returned as -135.5, but the hook's event says -135.50
        shape = dict(kind="tank", parent_id=None, temperature_max_c=Decimal("-135.50"), rows=None, columns=None,
                     created_by_id=nurse.id, created_at=datetime(2026, 12, 3, 8, 0, tzinfo=UTC))
        with use_case(session, nurse):
            tank = StorageLocation(name="Tank by ORM", **shape)
            session.add(tank)
            session.flush()
        with use_case(session, nurse):
            core_tank = trail.insert_audited(session, StorageLocation, dict(name="Tank by Core", **shape))
        assert core_tank.temperature_max_c == Decimal("-135.5")
        events = [json.loads(session.scalar(select(AuditEvent.new_value).where(
            AuditEvent.entity_type == "storage_location", AuditEvent.entity_id == str(row_id))))
            for row_id in (tank.id, core_tank.id)]
        for event_row in events:
            del event_row["id"], event_row["name"]
        assert events[0] == events[1] and events[1]["temperature_max_c"] == "-135.50"

        # excluded values stay hidden, as in the hook's events
        with use_case(session, None):
            account = trail.insert_audited(session, User, dict(username="core-insert", full_name="Core Insert",
                                                               password_hash="argon2-secret-hash"))
        event = session.scalar(select(AuditEvent).where(
            AuditEvent.entity_type == "user_account", AuditEvent.entity_id == str(account.id)))
        assert json.loads(event.new_value)["password_hash"].startswith("hidden-value:")  # a keyed digest
        assert "argon2-secret-hash" not in event.new_value
        session.close()
    assert _verify_cli(app).exit_code == 0


def test_a_core_insert_outside_a_use_case_or_of_an_unaudited_model_is_refused(app, users):
    with app.app_context():
        session = _session(app)
        nurse_id = session.scalar(select(User.id).where(User.username == "nurse"))
        with pytest.raises(AuditConfigurationError, match="no actor"):
            trail.insert_audited(session, TwoPersonCheck, dict(wristband_scan="W", bag_scan="B", result="stop",
                                                               checked_by_id=nurse_id))
        session.rollback()
        with pytest.raises(AuditConfigurationError, match="not an audited model"), use_case(session, None):
            trail.insert_audited(session, AuditEvent, {})
        assert session.scalar(select(func.count()).select_from(TwoPersonCheck)) == 0
        session.close()


def test_a_model_locked_with_a_parent_must_say_which_record_locks_it():
    """Refused when the class is defined: a child row whose lock nobody reads would stay editable after signature."""
    with pytest.raises(AuditConfigurationError, match="Orphan is LockedWithParent but does not say which record"):
        class Orphan(trail.LockedWithParent):
            pass

    class Child(trail.LockedWithParent):
        def locking_parent(self) -> None:
            return None

    assert Child().locking_parent() is None
