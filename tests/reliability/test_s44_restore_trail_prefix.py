"""S44: `mscbatch restore --force` compared only event numbers, so a live trail that is not a prefix of the
backup's (an earlier restore, then new events) was overwritten with exit 0 and recorded as "no audited event
lost". The target's events are now compared with the backup's, seq and hash, before anything is copied; and a
non-empty PostgreSQL target without --force gets the same "exists; pass --force" refusal as SQLite."""
from __future__ import annotations

import json

from sqlalchemy import create_engine, text

from mscbatch.database import make_engine, normalise_url
from mscbatch.migrate import upgrade_engine
from tests.conftest import add_user, make_app
from tests.reliability.support import fresh_postgres


def _run(app, *args):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=list(args))


def _rows(url, sql):  # type: ignore[no-untyped-def]
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql)).all()
    finally:
        engine.dispose()


def _usernames(url):  # type: ignore[no-untyped-def]
    return {name for (name,) in _rows(url, "SELECT username FROM user_account")}


def test_a_live_trail_that_diverged_from_the_backup_is_refused_before_the_copy(database_url, tmp_path):
    checkpoint_file = tmp_path / "checkpoints.jsonl"
    app = make_app(database_url, AUDIT_CHECKPOINT_FILE=str(checkpoint_file))
    try:
        add_user(app, "ada", ["admin"])
        backup_a, backup_b = tmp_path / "a.backup", tmp_path / "b.backup"
        assert _run(app, "backup", "--output", str(backup_a)).exit_code == 0
        for name in ("u1", "u2", "u3"):
            add_user(app, name, ["qa"])
        assert _run(app, "backup", "--output", str(backup_b)).exit_code == 0
        head_b = _rows(database_url, "SELECT last_seq FROM audit_head")[0][0]
        back = _run(app, "restore", str(backup_a), "--database-url", database_url, "--force",
                    "--accept-lost-events", "test: back to A")
        assert back.exit_code == 0, back.output
        (restored_seq,), = _rows(database_url, "SELECT seq FROM audit_event WHERE action = 'restored'")
        add_user(app, "zed", ["nurse"])
        head = _rows(database_url, "SELECT last_seq FROM audit_head")[0][0]
        assert head < head_b  # the live trail is shorter than B's: seqs alone say nothing is lost

        refused = _run(app, "restore", str(backup_b), "--database-url", database_url, "--force")
        assert refused.exit_code != 0, refused.output
        assert "Nothing was changed" in refused.output and "Restored" not in refused.output
        (at,), = _rows(database_url, f"SELECT occurred_at FROM audit_event WHERE seq = {restored_seq}")
        assert f"its event {restored_seq} (of {str(at)[:16]}" in refused.output.replace("T", " "), refused.output
        assert f"the backup lacks {head - restored_seq + 1} of the database's events ({restored_seq} to {head})" \
            in refused.output
        assert "zed" in _usernames(database_url)
        assert _run(app, "audit", "verify").exit_code == 0

        # a checkpoint of zed's event: refused before the copy too (it used to fail only after replacing the trail)
        assert _run(app, "audit", "checkpoint").exit_code == 0
        refused = _run(app, "restore", str(backup_b), "--database-url", database_url, "--force")
        assert refused.exit_code != 0 and "Nothing was changed" in refused.output, refused.output
        assert "zed" in _usernames(database_url)
        verified = _run(app, "audit", "verify")
        assert verified.exit_code == 0, verified.output

        accepted = _run(app, "restore", str(backup_b), "--database-url", database_url, "--force",
                        "--accept-lost-events", "test: forward to B")
        assert accepted.exit_code == 0, accepted.output
        assert f"Lost, as accepted: audit events {restored_seq} to {head} ({head - restored_seq + 1} events)" \
            in accepted.output
        assert "zed" not in _usernames(database_url) and "u3" in _usernames(database_url)
        (reason, details), = _rows(database_url, "SELECT reason, new_value FROM audit_event "
                                                 "WHERE action = 'restored' ORDER BY seq DESC LIMIT 1")
        details = json.loads(details)
        assert details["lost_events"] == f"{restored_seq}-{head}"
        assert str(details["lost_event_count"]) == str(head - restored_seq + 1)
        assert reason.startswith("test: forward to B") and "no audited event lost" not in reason
        verified = _run(app, "audit", "verify")
        assert verified.exit_code == 0, verified.output
        assert f"events {restored_seq}-{head} of the trail before it were lost" in verified.output
    finally:
        app.extensions["mscbatch.db"].engine.dispose()


def test_another_database_holding_a_different_trail_is_not_overwritten(database_url, tmp_path):
    """Not the instance's database: no checkpoint file, a trail of its own, shorter than the backup's."""
    app = make_app(database_url)
    try:
        for name in ("b1", "b2", "b3"):
            add_user(app, name, ["qa"])
        backup_file = tmp_path / "other.backup"
        assert _run(app, "backup", "--output", str(backup_file)).exit_code == 0
    finally:
        app.extensions["mscbatch.db"].engine.dispose()

    def check(target: str) -> None:
        engine = make_engine(target)
        upgrade_engine(engine)  # a database of its own, with a trail of its own
        engine.dispose()
        other = make_app(target)
        try:
            add_user(other, "own", ["qa"])
            refused = _run(app, "restore", str(backup_file), "--database-url", target, "--force")
            assert refused.exit_code != 0, refused.output
            assert "is not the backup's event" in refused.output and "Nothing was changed" in refused.output
            assert "own" in _usernames(target)
        finally:
            other.extensions["mscbatch.db"].engine.dispose()

    if database_url.startswith("sqlite"):
        check(f"sqlite:///{tmp_path / 'other.sqlite3'}")
    else:
        with fresh_postgres() as target:
            check(target)


def test_a_non_empty_database_without_force_is_refused_in_the_same_words_on_both_engines(database_url, tmp_path):
    app = make_app(database_url)
    try:
        add_user(app, "ada", ["admin"])
        backup_file = tmp_path / "a.backup"
        assert _run(app, "backup", "--output", str(backup_file)).exit_code == 0
        refused = _run(app, "restore", str(backup_file), "--database-url", database_url)
        assert refused.exit_code != 0, refused.output
        assert "exists" in refused.output and "pass --force" in refused.output, refused.output
        assert "Nothing was changed" in refused.output
        assert "pg_restore" not in refused.output and "already exists" not in refused.output
        assert "ada" in _usernames(database_url)
        if not database_url.startswith("sqlite"):
            with fresh_postgres() as target:  # an empty database needs no --force
                done = _run(app, "restore", str(backup_file), "--database-url", target)
                assert done.exit_code == 0, done.output
                assert "ada" in _usernames(target)
    finally:
        app.extensions["mscbatch.db"].engine.dispose()
