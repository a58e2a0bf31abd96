"""`mscbatch restore --force` onto a damaged database (session 47): a target whose audit trail could not be read was
taken as holding no trail, so a restore over it said nothing of the events it may have held beyond the backup,
and recorded no "restored" event. It is now refused, nothing changed, saying the trail cannot be read; with
--accept-lost-events the restore goes ahead and its audit event says that whether events were lost is unknown."""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import add_user, make_app


def _run(app, *args):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=list(args))


def _damage_the_trail(path: Path) -> None:
    """Garbage over the first page of the audit_event table, as a failing disk leaves it."""
    with sqlite3.connect(path) as connection:
        root = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = 'audit_event'").fetchone()[0]
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    connection.close()
    with path.open("r+b") as handle:
        handle.seek((root - 1) * page_size)
        handle.write(bytes(range(7, 256, 3)) * (page_size // 83))


@pytest.mark.parametrize("damage", ["page", "whole file"])
def test_a_damaged_target_is_restored_only_with_a_reason_and_says_what_is_unknown(sqlite_template, tmp_path, damage):
    shutil.copyfile(sqlite_template, tmp_path / "live.sqlite3")
    app = make_app(f"sqlite:///{tmp_path / 'live.sqlite3'}")
    try:
        add_user(app, "early", ["qa"])
        backup_file = tmp_path / "b.sqlite3"
        assert _run(app, "backup", "--output", str(backup_file)).exit_code == 0
        add_user(app, "later", ["nurse"])  # events the damaged database held beyond the backup
    finally:
        app.extensions["mscbatch.db"].engine.dispose()
    target = tmp_path / "damaged.sqlite3"
    shutil.copyfile(tmp_path / "live.sqlite3", target)
    if damage == "page":
        _damage_the_trail(target)
    else:
        target.write_bytes(b"\x00\x13 not a database any more " * 400)
    damaged = target.read_bytes()
    url = f"sqlite:///{target}"
    app = make_app(f"sqlite:///{tmp_path / 'live.sqlite3'}")
    try:
        refused = _run(app, "restore", str(backup_file), "--database-url", url, "--force")
        assert refused.exit_code != 0, refused.output
        assert f"the audit trail of {url} cannot be read (" in refused.output, refused.output
        assert "Nothing was changed" in refused.output and "--accept-lost-events" in refused.output
        assert "Restored" not in refused.output and "Traceback" not in refused.output
        assert target.read_bytes() == damaged

        done = _run(app, "restore", str(backup_file), "--database-url", url, "--force",
                    "--accept-lost-events", "disk damaged, incident 7")
        assert done.exit_code == 0, done.output
        assert "The audit trail of the database replaced could not be read (" in done.output
        assert "whether events were lost is unknown" in done.output and "Recorded as audit event" in done.output
    finally:
        app.extensions["mscbatch.db"].engine.dispose()
    with sqlite3.connect(target) as restored:
        (reason, details), = restored.execute(
            "SELECT reason, new_value FROM audit_event WHERE action = 'restored'").fetchall()
        users = {name for (name,) in restored.execute("SELECT username FROM user_account")}
    restored.close()
    assert reason.startswith("disk damaged, incident 7 (OS user ")
    assert json.loads(details)["unreadable_trail"]
    assert "early" in users and "later" not in users
    restored_app = make_app(url)
    try:
        verified = _run(restored_app, "audit", "verify")
        assert verified.exit_code == 0, verified.output
        assert "the trail it replaced could not be read (" in verified.output, verified.output
        assert "whether events were lost is unknown" in verified.output
        assert "disk damaged, incident 7" in verified.output
    finally:
        restored_app.extensions["mscbatch.db"].engine.dispose()


def test_a_target_without_a_trail_is_still_overwritten_under_force_without_a_reason(sqlite_template, tmp_path):
    """Another application's SQLite file (no audit trail) holds no trail to lose: --force is enough, as before."""
    shutil.copyfile(sqlite_template, tmp_path / "live.sqlite3")
    app = make_app(f"sqlite:///{tmp_path / 'live.sqlite3'}")
    try:
        backup_file = tmp_path / "b.sqlite3"
        assert _run(app, "backup", "--output", str(backup_file)).exit_code == 0
        other = tmp_path / "other.sqlite3"
        with sqlite3.connect(other) as connection:
            connection.execute("CREATE TABLE notes (body TEXT)")
        connection.close()
        done = _run(app, "restore", str(backup_file), "--database-url", f"sqlite:///{other}", "--force")
        assert done.exit_code == 0, done.output
        assert "could not be read" not in done.output
    finally:
        app.extensions["mscbatch.db"].engine.dispose()


def test_a_damaged_live_database_names_the_events_its_checkpoints_vouch_for(sqlite_template, tmp_path):
    """Onto the instance's own database: its checkpoint file vouches for events after the backup, and the refusal
    says how many at least are lost, as well as that the rest cannot be counted."""
    live = tmp_path / "live.sqlite3"
    shutil.copyfile(sqlite_template, live)
    app = make_app(f"sqlite:///{live}", AUDIT_CHECKPOINT_FILE=str(tmp_path / "checkpoints.jsonl"))
    try:
        add_user(app, "early", ["qa"])
        backup_file = tmp_path / "b.sqlite3"
        assert _run(app, "backup", "--output", str(backup_file)).exit_code == 0
        with sqlite3.connect(backup_file) as connection:
            backed_up = connection.execute("SELECT last_seq FROM audit_head").fetchone()[0]
        connection.close()
        add_user(app, "later", ["nurse"])
        assert _run(app, "audit", "checkpoint").exit_code == 0
        with sqlite3.connect(live) as connection:
            head = connection.execute("SELECT last_seq FROM audit_head").fetchone()[0]
        connection.close()
        app.extensions["mscbatch.db"].engine.dispose()
        _damage_the_trail(live)
        refused = _run(app, "restore", str(backup_file), "--database-url", f"sqlite:///{live}", "--force")
        assert refused.exit_code != 0, refused.output
        assert "cannot be read (" in refused.output and "Nothing was changed" in refused.output
        assert f"vouches for events up to {head}, at least {head - backed_up} of them lost" in refused.output, \
            refused.output
    finally:
        app.extensions["mscbatch.db"].engine.dispose()
