"""SQLite's write lock: every transaction takes it at BEGIN IMMEDIATE (so writers are serialised by the
database), except the reads run in `reading()`, which take none; a waiting writer gets the lock as soon as it is
free (mscbatch.database.begin_immediate polls instead of SQLite's busy handler, which sleeps up to 100 ms)."""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from mscbatch.auth.models import User
from mscbatch.database import begin_immediate, reading
from tests.conftest import add_user, make_app


@pytest.fixture
def sqlite_app(tmp_path: Path, sqlite_template: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "locking.sqlite3"
    path.write_bytes(sqlite_template.read_bytes())
    app = make_app(f"sqlite:///{path}")
    yield app, path
    app.extensions["mscbatch.db"].engine.dispose()


def _other_writer(path: Path) -> sqlite3.Connection:
    other = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
    other.execute("PRAGMA busy_timeout=0")
    return other


def test_reads_in_reading_leave_the_write_lock_free(sqlite_app) -> None:  # type: ignore[no-untyped-def]
    app, path = sqlite_app
    session = app.extensions["mscbatch.db"].new_session()
    other = _other_writer(path)
    try:
        with reading(session):
            session.scalars(select(User)).all()
            other.execute("BEGIN IMMEDIATE")  # would raise "database is locked" if the read held the lock
            other.execute("ROLLBACK")
        assert not session.in_transaction()
        session.scalars(select(User)).all()  # an ordinary transaction: BEGIN IMMEDIATE, the lock is held
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
    finally:
        session.close()
        other.close()


def test_healthz_answers_at_once_while_a_writer_holds_the_lock(sqlite_app) -> None:  # type: ignore[no-untyped-def]
    """A monitoring probe neither waits for the write lock (30 s, then a false "down") nor takes it from the
    nurses' and technicians' writes."""
    app, path = sqlite_app
    holder = _other_writer(path)
    try:
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        response = app.test_client().get("/healthz")
        assert (response.status_code, response.get_json()) == (200, {"status": "ok", "database": "ok"})
        assert time.monotonic() - started < 5, "healthz waited for the write lock"
        holder.execute("COMMIT")
    finally:
        holder.close()


def test_a_change_inside_reading_is_refused_and_rolled_back(sqlite_app) -> None:  # type: ignore[no-untyped-def]
    app, _path = sqlite_app
    add_user(app, "reader", ["technician"], "Rita Reader")
    session = app.extensions["mscbatch.db"].new_session()
    try:
        with pytest.raises(RuntimeError, match="inside reading"), reading(session):
            user = session.scalars(select(User)).first()
            assert user is not None
            user.full_name = "Changed without a use case"
        assert session.scalars(select(User.full_name)).all() == ["Rita Reader"]
    finally:
        session.close()


def test_a_waiting_writer_gets_the_lock_as_soon_as_it_is_free(sqlite_app) -> None:  # type: ignore[no-untyped-def]
    _app, path = sqlite_app
    holder = _other_writer(path)
    waiter = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    committing_at: list[float] = []  # noted just before the COMMIT: the waiter may run before this thread resumes

    def release_soon() -> None:
        time.sleep(0.15)
        committing_at.append(time.perf_counter())
        holder.execute("COMMIT")

    thread = threading.Thread(target=release_soon)
    thread.start()
    try:
        begin_immediate(waiter)  # waits for the holder's COMMIT
        got = time.perf_counter()
        thread.join()
        assert committing_at and got >= committing_at[0], "the writer got the lock before the holder committed"
        # SQLite's own busy handler would sleep in steps of up to 100 ms; the poll wakes within about 1 ms
        assert got - committing_at[0] < 0.05
        waiter.execute("ROLLBACK")
    finally:
        thread.join()
        holder.close()
        waiter.close()


def test_a_writer_still_times_out_when_the_lock_is_never_freed(sqlite_app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import mscbatch.database as database

    _app, path = sqlite_app
    monkeypatch.setattr(database, "BUSY_TIMEOUT_SECONDS", 0.2)
    holder = _other_writer(path)
    waiter = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.perf_counter()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            begin_immediate(waiter)
        assert 0.2 <= time.perf_counter() - started < 2
        assert waiter.execute("PRAGMA busy_timeout").fetchone()[0] == 200  # the normal timeout is back
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        waiter.close()
