"""The mscbatch command: init, create-user, seed-demo, audit verify, backup and a tested restore."""
from __future__ import annotations

import uuid
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, func, select, text

from mscbatch.auth.models import User
from mscbatch.database import normalise_url
from tests.conftest import POSTGRES_URL, TEST_CONFIG, make_app


def _run(app, *args):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=list(args))


def test_init_creates_an_empty_database_at_the_newest_schema(tmp_path):
    from mscbatch import create_app

    app = create_app({**TEST_CONFIG, "DATABASE_URL": f"sqlite:///{tmp_path}/new.sqlite3"})
    result = _run(app, "init")
    assert result.exit_code == 0 and "Database ready" in result.output
    assert _run(app, "audit", "verify").exit_code == 0
    app.extensions["mscbatch.db"].engine.dispose()


def test_create_user_and_seed_demo(app):
    seeded = _run(app, "seed-demo")
    assert seeded.exit_code == 0 and "mscbatch-demo" in seeded.output
    again = _run(app, "seed-demo")  # idempotent
    assert again.exit_code == 0
    result = _run(app, "create-user", "--username", "boss", "--full-name", "Bo Boss", "--role", "admin",
                  "--password", "a-long-password-1", "--reason", "first administrator of the unit")
    assert result.exit_code == 0, result.output
    bad = _run(app, "create-user", "--username", "weak", "--full-name", "W", "--role", "qa", "--password", "short",
               "--reason", "a QA person")
    assert bad.exit_code != 0 and "at least 12 characters" in bad.output
    with app.app_context(), app.extensions["mscbatch.db"].new_session() as session:
        names = set(session.scalars(select(User.username)))
        assert {"boss", "tech", "qa", "qa2", "clinician", "nurse", "nurse2", "admin"} <= names
        assert session.scalar(select(User).where(User.username == "boss")).role_names == {"admin"}
    # an account the demo did not make: seed-demo adds nothing beside it, says so, and lets `make run` serve
    again = _run(app, "seed-demo")
    assert again.exit_code == 0 and "added nothing" in again.output, again.output
    with app.app_context(), app.extensions["mscbatch.db"].new_session() as session:
        assert set(session.scalars(select(User.username))) == names


def _counts(url):  # type: ignore[no-untyped-def]
    engine = create_engine(normalise_url(url))
    with engine.connect() as connection:
        counts = {table: connection.scalar(select(func.count()).select_from(text(table)))
                  for table in ("user_account", "user_role", "audit_event", "signature")}
    engine.dispose()
    return counts


def _fresh_target(database_url, tmp_path):  # type: ignore[no-untyped-def]
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/restored.sqlite3", None
    name = f"mscbatch_restore_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalise_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return normalise_url(POSTGRES_URL).rsplit("/", 1)[0] + f"/{name}", (admin, name)


@contextmanager
def _fresh(database_url, tmp_path):  # type: ignore[no-untyped-def]
    target, cleanup = _fresh_target(database_url, tmp_path)
    try:
        yield target
    finally:
        if cleanup:
            admin, name = cleanup
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()


def test_a_backup_restores_into_a_fresh_database_that_verifies(app, database_url, tmp_path):
    _run(app, "seed-demo")
    backup_file = tmp_path / "mscbatch.backup"
    result = _run(app, "backup", "--output", str(backup_file))
    assert result.exit_code == 0, result.output
    with _fresh(database_url, tmp_path) as target:
        restored = _run(app, "restore", str(backup_file), "--database-url", target)
        assert restored.exit_code == 0, restored.output
        events = _counts(database_url)["audit_event"]
        assert f"audit trail intact: {events} events verified" in restored.output
        assert _counts(target) == _counts(database_url)
        restored_app = make_app(target)
        assert _run(restored_app, "audit", "verify").exit_code == 0
        restored_app.extensions["mscbatch.db"].engine.dispose()
        refused = _run(app, "restore", str(backup_file), "--database-url", target)
        if target.startswith("sqlite"):
            assert refused.exit_code != 0 and "exists" in refused.output


def _tamper(database_url, sql):  # type: ignore[no-untyped-def]
    """An attacker with database access (no audit key): past the append-only triggers, as in test_audit_trail."""
    engine = create_engine(normalise_url(database_url))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        else:
            connection.exec_driver_sql("DROP TRIGGER IF EXISTS audit_event_no_update")
        connection.execute(text(sql))
    engine.dispose()


def test_a_backup_whose_audit_trail_is_broken_fails_to_restore_and_names_the_event(app, users, database_url,
                                                                                    tmp_path):
    _tamper(database_url, "UPDATE audit_event SET new_value = 'Mallory' WHERE seq = 3")
    backup_file = tmp_path / "tampered.backup"
    assert _run(app, "backup", "--output", str(backup_file)).exit_code == 0
    with _fresh(database_url, tmp_path) as target:
        restored = _run(app, "restore", str(backup_file), "--database-url", target)
        assert restored.exit_code == 1, restored.output
        assert "AUDIT TRAIL BROKEN in the restored database at event 3" in restored.output
        assert "left at" in restored.output and "do not put it into use" in restored.output
        assert "Restored" not in restored.output
        assert _counts(target) == _counts(database_url)  # left in place, whole, for inspection


def test_restore_refuses_a_missing_file(app, tmp_path):
    result = _run(app, "restore", str(tmp_path / "nope"), "--database-url", f"sqlite:///{tmp_path}/x.sqlite3")
    assert result.exit_code != 0 and "no backup file" in result.output


@pytest.mark.parametrize("command", [("seed-demo",)])
def test_seed_demo_is_refused_in_production(tmp_path, command):
    from mscbatch import create_app

    strong = "y" * 40
    app = create_app({**TEST_CONFIG, "ENV_NAME": "production", "SECRET_KEY": strong, "AUDIT_KEY": strong,
                      "LABEL_KEY": strong, "DATABASE_URL": f"sqlite:///{tmp_path}/p.sqlite3", "AUTO_MIGRATE": True})
    result = _run(app, *command)
    assert result.exit_code != 0 and "refused in production" in result.output
    app.extensions["mscbatch.db"].engine.dispose()
