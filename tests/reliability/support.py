"""What the reliability tests compare: every table's row count and content digest, the foreign keys, the audit
chain; and the fault injector that makes the k-th flush (or the commit) of one session raise."""
from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import and_, create_engine, event, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from mscbatch import models  # noqa: F401 - every table on the metadata
from mscbatch.audit.models import AuditEvent
from mscbatch.audit.trail import Audited
from mscbatch.audit.verify import verify_database
from mscbatch.database import Base, normalise_url
from tests.conftest import POSTGRES_URL, TEST_CONFIG

TABLES = list(Base.metadata.sorted_tables)
AUDITED = [mapper.class_ for mapper in Base.registry.mappers if issubclass(mapper.class_, Audited)]


def table_digests(connection: Connection) -> dict[str, tuple[int, str]]:
    """{table: (row count, SHA-256 of every row in primary-key order)}: equal digests = equal content."""
    digests = {}
    for table in TABLES:
        rows = connection.execute(select(table).order_by(*table.primary_key.columns)).all()
        digest = hashlib.sha256("\n".join(repr(tuple(row)) for row in rows).encode()).hexdigest()
        digests[table.name] = (len(rows), digest)
    return digests


def digests_of(url_or_engine: str | Engine) -> dict[str, tuple[int, str]]:
    engine = create_engine(normalise_url(url_or_engine)) if isinstance(url_or_engine, str) else url_or_engine
    try:
        with engine.connect() as connection:
            return table_digests(connection)
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()


def dangling_foreign_keys(connection: Connection) -> list[str]:
    """Every child row whose foreign key names no parent row (by query, whatever the database enforces)."""
    problems = []
    for table in TABLES:
        for constraint in table.foreign_key_constraints:
            parent = constraint.referred_table.alias("parent")  # an alias: some tables refer to themselves
            pairs = [(element.parent, parent.c[element.column.name]) for element in constraint.elements]
            joined = table.outerjoin(parent, and_(*(child == referred for child, referred in pairs)))
            orphans = connection.scalar(select(func.count()).select_from(joined).where(
                and_(*(child.is_not(None) for child, _ in pairs)), pairs[0][1].is_(None)))
            if orphans:
                problems.append(f"{table.name}.{constraint.name}: {orphans} rows")
    return problems


def unpaired_audit_rows(url: str) -> list[str]:
    """Audited rows without their insert event, and insert events without their row (none were deleted)."""
    problems = []
    engine = create_engine(normalise_url(url))
    with engine.connect() as connection:
        for model in AUDITED:
            table = model.__table__
            if len(table.primary_key.columns) != 1:
                continue
            ids = {str(i) for i in connection.scalars(select(*table.primary_key.columns))}
            events = set(connection.scalars(select(AuditEvent.entity_id).where(
                AuditEvent.entity_type == table.name, AuditEvent.action == "insert")))
            if ids != events:
                problems.append(f"{table.name}: rows without event {sorted(ids - events)[:5]}, "
                                f"events without row {sorted(events - ids)[:5]}")
    engine.dispose()
    return problems


def integrity(url: str) -> None:
    """The database's own check (SQLite) and a foreign key check by query (both databases)."""
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.removeprefix("sqlite:///"))
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        connection.close()
    engine = create_engine(normalise_url(url))
    with engine.connect() as connection:
        assert dangling_foreign_keys(connection) == []
    engine.dispose()


def assert_chain_verifies(url_or_session: str | Session, key: str = TEST_CONFIG["AUDIT_KEY"]) -> int:
    """`mscbatch audit verify` on the database: returns the number of events checked."""
    if isinstance(url_or_session, Session):
        verdict = verify_database(url_or_session, key)
    else:
        engine = create_engine(normalise_url(url_or_session))
        try:
            with Session(engine) as session:
                verdict = verify_database(session, key)
        finally:
            engine.dispose()
    assert verdict.ok, verdict
    return verdict.events_checked


class InjectedFault(RuntimeError):
    """Raised by the injector; never raised by the application, so catching it proves the fault was ours."""


@contextmanager
def fault_at(session: Session | type[Session], flush: int | None) -> Iterator[dict[str, int]]:
    """Make the session's (or, given the Session class, a request's) `flush`-th flush raise InjectedFault
    once the rows AND their audit events of that flush are written (after_flush_postexec runs after the
    audit hook's after_flush); flush None: raise in before_commit instead, when every flush of the use case
    is done (a use case's commit, not the end of a read transaction before it). Yields the flush counter."""
    seen = {"flushes": 0, "fired": 0}

    def after_flush(_session: Session, _context: Any) -> None:
        seen["flushes"] += 1
        if seen["flushes"] == flush:
            seen["fired"] += 1
            raise InjectedFault(f"injected at flush {flush}")

    def before_commit(committing: Session) -> None:
        if committing.info.get("actor") is None:
            return  # the end of a read transaction (reading(): a request's API token, the bedside check's facts)
        seen["fired"] += 1  # a use case's commit: use_case() names the actor until it has committed
        raise InjectedFault("injected before commit")

    event.listen(session, "after_flush_postexec", after_flush)
    if flush is None:
        event.listen(session, "before_commit", before_commit)
    try:
        yield seen
    finally:
        event.remove(session, "after_flush_postexec", after_flush)
        if flush is None:
            event.remove(session, "before_commit", before_commit)


def _attempt(target: Any, flush: int | None, action: Callable[[Any], Any]) -> bool:
    """One run of the action with the fault armed; True if it finished without reaching the fault."""
    with fault_at(target, flush) as seen:
        try:
            action(target)
        except InjectedFault:
            assert seen["fired"] == 1, "the action reported a fault the injector did not raise"
            return False
    assert flush is not None, "the use case never committed"
    assert seen["flushes"] < flush
    return True


def drive_faults(url: str, action: Callable[[Any], Any], target: Any = Session) -> int:
    """Run `action` first with a fault just before commit, then with a fault at flush 1, 2, ... until a run
    finishes without reaching its fault: the successful run. After every failure the whole database (every
    table's rows, the audit trail and its head included) is exactly as before, and the chain verifies.
    Returns the number of flushes of the successful run.

    `target`: the Session class (faults in whatever session the request opens; the action makes its own)
    or a session factory (the action receives a new session for each attempt). The scene is shared by the
    attempts: a failed attempt that left anything behind changes the digests and is named."""
    before = digests_of(url)
    flush: int | None = None
    while True:
        session = target() if target is not Session else Session
        try:
            if _attempt(session, flush, action):
                assert flush is not None
                return flush - 1
        finally:
            if session is not Session:
                session.close()
        after = digests_of(url)
        changed = sorted(name for name in before if before[name] != after[name])
        assert not changed, f"a fault at {f'flush {flush}' if flush else 'commit'} left rows behind in {changed}"
        assert_chain_verifies(url)
        flush = (flush or 0) + 1


# ---- throw-away PostgreSQL databases ---------------------------------------------------------------------

@contextmanager
def fresh_postgres() -> Iterator[str]:
    """An empty PostgreSQL database for a restore, dropped afterwards."""
    assert POSTGRES_URL
    name = f"mscbatch_rel_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalise_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield normalise_url(POSTGRES_URL).rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextmanager
def empty_database(database_url: str, tmp_path: Any) -> Iterator[str]:
    """A new, empty database of the kind of `database_url`, for a migration test: a file under tmp_path, or a
    fresh PostgreSQL database dropped afterwards."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'migrated.sqlite3'}"
        return
    with fresh_postgres() as url:
        yield url
