"""`mscbatch restore --force` onto the instance's own database (review 2, r6): a backup older than the trail or its
checkpoints is refused, nothing changed, naming the events that would be lost; with --accept-lost-events the
restore is an audit event and the checkpoint file is rewritten, so `audit verify` passes and says why."""
from __future__ import annotations

import hashlib

from sqlalchemy import create_engine, select, text

from mscbatch.auth.models import User
from mscbatch.database import normalise_url
from tests.conftest import add_user, make_app


def _run(app, *args):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=list(args))


def _scalar(url, sql):  # type: ignore[no-untyped-def]
    engine = create_engine(normalise_url(url))
    with engine.connect() as connection:
        value = connection.execute(text(sql)).all()
    engine.dispose()
    return value


def _live_with_a_later_checkpoint(database_url, tmp_path):  # type: ignore[no-untyped-def]
    """A backup, then a later account and a checkpoint of the later head: the backup is older than both."""
    app = make_app(database_url, AUDIT_CHECKPOINT_FILE=str(tmp_path / "checkpoints.jsonl"))
    add_user(app, "early", ["qa"])
    backup_file = tmp_path / "old.backup"
    assert _run(app, "backup", "--output", str(backup_file)).exit_code == 0
    backed_up = _scalar(database_url, "SELECT last_seq FROM audit_head")[0][0]
    add_user(app, "later", ["nurse"])
    assert _run(app, "audit", "checkpoint").exit_code == 0
    head = _scalar(database_url, "SELECT last_seq FROM audit_head")[0][0]
    return app, backup_file, backed_up, head


def _users(app):  # type: ignore[no-untyped-def]
    with app.app_context(), app.extensions["mscbatch.db"].new_session() as session:
        return set(session.scalars(select(User.username)))


def test_restoring_an_older_backup_onto_the_live_database_is_refused_and_changes_nothing(database_url, tmp_path):
    app, backup_file, backed_up, head = _live_with_a_later_checkpoint(database_url, tmp_path)
    try:
        refused = _run(app, "restore", str(backup_file), "--database-url", database_url, "--force")
        assert refused.exit_code != 0, refused.output
        assert f"the backup ends at audit event {backed_up}" in refused.output
        assert f"would lose {head - backed_up} audit events ({backed_up + 1} to {head})" in refused.output
        assert "Nothing was changed" in refused.output and "--accept-lost-events" in refused.output
        assert "Restored" not in refused.output
        assert "later" in _users(app)
        verified = _run(app, "audit", "verify")
        assert verified.exit_code == 0 and f"{head} events verified" in verified.output
    finally:
        app.extensions["mscbatch.db"].engine.dispose()


def test_an_accepted_loss_is_recorded_and_verify_passes_saying_why(database_url, tmp_path):
    app, backup_file, backed_up, head = _live_with_a_later_checkpoint(database_url, tmp_path)
    checkpoint_before = (tmp_path / "checkpoints.jsonl").read_text()
    try:
        done = _run(app, "restore", str(backup_file), "--database-url", database_url, "--force",
                    "--accept-lost-events", "server disk failed, incident 42")
        assert done.exit_code == 0, done.output
        assert f"Lost, as accepted: audit events {backed_up + 1} to {head}" in done.output
        assert _users(app) == {"early"}
        (seq, actor, reason, details), = _scalar(
            database_url, "SELECT seq, actor_name, reason, new_value FROM audit_event WHERE action = 'restored'")
        assert seq == backed_up + 1 and actor == "system"
        assert reason.startswith("server disk failed, incident 42 (OS user ")
        assert hashlib.sha256(backup_file.read_bytes()).hexdigest() in details
        assert f"event {head}," in details and f"event {backed_up}," in details  # the heads before and after
        archived = list(tmp_path.glob("checkpoints.jsonl.before-restore-*"))
        assert [path.read_text() for path in archived] == [checkpoint_before]  # the lost trail's anchor, kept
        verified = _run(app, "audit", "verify")
        assert verified.exit_code == 0, verified.output
        assert f"{backed_up + 1} events verified" in verified.output
        assert f"Restored from a backup (SHA-256 {hashlib.sha256(backup_file.read_bytes()).hexdigest()})" \
            in verified.output
        assert f"events {backed_up + 1}-{head} of the trail before it were lost" in verified.output
        assert "server disk failed, incident 42" in verified.output
        assert _run(app, "audit", "checkpoint").exit_code == 0  # the chain goes on, anchored again
        assert _run(app, "audit", "verify").exit_code == 0
    finally:
        app.extensions["mscbatch.db"].engine.dispose()


def test_a_forged_checkpoint_file_stops_the_restore_before_anything_changes(database_url, tmp_path):
    app, backup_file, _backed_up, _head = _live_with_a_later_checkpoint(database_url, tmp_path)
    with (tmp_path / "checkpoints.jsonl").open("a") as handle:
        handle.write('{"at":"2030-01-01T00:00:00Z","seq":1,"hash":"00","mac":"forged"}\n')
    try:
        refused = _run(app, "restore", str(backup_file), "--database-url", database_url, "--force",
                       "--accept-lost-events", "test")
        assert refused.exit_code != 0 and "line 2 of the checkpoint file" in refused.output
        assert "later" in _users(app)
    finally:
        app.extensions["mscbatch.db"].engine.dispose()


def test_without_a_checkpoint_file_verify_still_says_a_restore_lost_events(database_url, tmp_path):
    """Review 4: the early answer for "no checkpoint file" returned before it named the restore, so a unit that
    keeps no checkpoint file was never told why its trail is shorter than it was."""
    app = make_app(database_url, AUDIT_CHECKPOINT_FILE=str(tmp_path / "none.jsonl"))
    try:
        add_user(app, "early", ["qa"])
        backup_file = tmp_path / "old.backup"
        assert _run(app, "backup", "--output", str(backup_file)).exit_code == 0
        backed_up = _scalar(database_url, "SELECT last_seq FROM audit_head")[0][0]
        add_user(app, "later", ["nurse"])
        head = _scalar(database_url, "SELECT last_seq FROM audit_head")[0][0]
        done = _run(app, "restore", str(backup_file), "--database-url", database_url, "--force",
                    "--accept-lost-events", "disk failed, incident 43")
        assert done.exit_code == 0, done.output
        assert not (tmp_path / "none.jsonl").exists()
        verified = _run(app, "audit", "verify")
        assert verified.exit_code == 0 and "(no checkpoint file)" in verified.output, verified.output
        assert f"events {backed_up + 1}-{head} of the trail before it were lost" in verified.output
        assert "disk failed, incident 43" in verified.output
    finally:
        app.extensions["mscbatch.db"].engine.dispose()


def test_a_backup_whose_records_were_edited_is_not_restored_as_intact(sqlite_template, tmp_path):
    """Review 4: restore verified the chain only, and the chain vouches for the events, not for the rows: a backup
    file whose account was edited (a role-holder's name changed) restored as "audit trail intact". The restored
    rows are now reconciled with their trail (`audit reconcile`); a difference fails the restore, naming it."""
    import shutil
    import sqlite3

    shutil.copyfile(sqlite_template, tmp_path / "live.sqlite3")
    app = make_app(f"sqlite:///{tmp_path / 'live.sqlite3'}")
    try:
        add_user(app, "early", ["qa"])
        backup_file = tmp_path / "b.sqlite3"
        assert _run(app, "backup", "--output", str(backup_file)).exit_code == 0
        target = tmp_path / "restored.sqlite3"
        clean = _run(app, "restore", str(backup_file), "--database-url", f"sqlite:///{target}")
        assert clean.exit_code == 0, clean.output
        edit = sqlite3.connect(backup_file)
        edit.execute("UPDATE user_account SET full_name = 'Someone Else' WHERE username = 'early'")
        edit.commit()
        edit.close()  # the last connection's close writes the change back into the file (WAL checkpoint)
        edited = _run(app, "restore", str(backup_file), "--database-url", f"sqlite:///{tmp_path / 'again.sqlite3'}")
        assert edited.exit_code != 0, edited.output
        assert "AUDIT TRAIL AND DATABASE DIFFER" in edited.output and "Someone Else" in edited.output
        assert "do not put it into use" in edited.output
    finally:
        app.extensions["mscbatch.db"].engine.dispose()


def test_a_backup_from_an_older_schema_restores_and_says_its_records_are_not_yet_compared(sqlite_template, tmp_path):
    """The record comparison reads today's tables: on a backup one migration old it crashed with "no such table"
    and a traceback. It is now skipped, and the operator is told to upgrade (`mscbatch init`), then reconcile."""
    import shutil

    from sqlalchemy.orm import Session

    from mscbatch.audit.verify import ensure_chain_head
    from mscbatch.database import make_engine
    from mscbatch.migrate import upgrade_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    upgrade_engine(engine, "0014")
    with Session(engine, info={"audit_key": b"test-audit-key"}) as session:
        ensure_chain_head(session)
        session.commit()
    engine.dispose()
    shutil.copyfile(sqlite_template, tmp_path / "live.sqlite3")
    app = make_app(f"sqlite:///{tmp_path / 'live.sqlite3'}")
    try:
        done = _run(app, "restore", str(tmp_path / "old.sqlite3"), "--database-url",
                    f"sqlite:///{tmp_path / 'restored.sqlite3'}")
        assert done.exit_code == 0 and done.exception is None, done.output
        assert "its records were not compared" in done.output and "mscbatch audit reconcile" in done.output
    finally:
        app.extensions["mscbatch.db"].engine.dispose()
