"""The harness of the guard tests: two attempts started together, meeting again after their reads and
before their writes; and the means to take a guard away (SQLite's BEGIN IMMEDIATE, a PostgreSQL UNIQUE
constraint)."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from mscbatch.errors import DomainError
from tests.conftest import empty_postgres


class Rendezvous:
    """Placed after an attempt's reads and before its writes. Unguarded, both attempts read before either
    writes: the race is no longer a matter of timing. Guarded, the second cannot even read until the first
    has committed, so the first waits out a short timeout and goes on alone (the barrier stays broken)."""

    def __init__(self, guarded: bool) -> None:
        self.barrier = threading.Barrier(2)
        self.timeout = 1.0 if guarded else 30.0

    def __call__(self) -> None:
        try:
            self.barrier.wait(self.timeout)
        except threading.BrokenBarrierError:
            pass


def race(app: Any, prepare: Callable[[Any, int], Any],
         attempt: Callable[[Any, Any], Any]) -> list[tuple[str, Any]]:
    """Run two attempts in threads, each with its own session; `prepare(session, n)` (reads only, rolled back
    before the start) gives what `attempt(session, prepared)` needs. Outcomes: ("ok", result),
    ("refused", DomainError), ("crashed", OperationalError) or ("error", anything else)."""
    factory = app.extensions["mscbatch.db"].new_session
    start = threading.Barrier(2)
    outcomes: list[tuple[str, Any]] = [("missing", None), ("missing", None)]

    def run(n: int) -> None:
        session = factory()
        try:
            prepared = prepare(session, n)
            session.rollback()
            start.wait(30)
            outcomes[n] = ("ok", attempt(session, prepared))
        except DomainError as refusal:
            outcomes[n] = ("refused", refusal)
        except OperationalError as crash:
            outcomes[n] = ("crashed", crash)
        except Exception as error:  # noqa: BLE001 - reported by the caller's assertion
            outcomes[n] = ("error", error)
        finally:
            session.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    return outcomes


def kinds(outcomes: list[tuple[str, Any]]) -> list[str]:
    return sorted(kind for kind, _ in outcomes)


def expected(guarded: bool, dialect: str) -> list[str]:
    """With its guard a race has one winner and one clean refusal. Without it, PostgreSQL (READ COMMITTED)
    lets both win: the defect itself. SQLite cannot interleave two writers, but without BEGIN IMMEDIATE the
    loser's read snapshot cannot be upgraded to a write: "database is locked", a 500 instead of a refusal."""
    if guarded:
        return ["ok", "refused"]
    return ["ok", "ok"] if dialect == "postgresql" else ["crashed", "ok"]


def deferred_begin(engine: Engine) -> None:
    """Take away SQLite's guard: plain (deferred) BEGIN instead of BEGIN IMMEDIATE on this engine."""
    for listener in list(engine.dispatch.begin):
        event.remove(engine, "begin", listener)
    event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN"))


@contextmanager
def without_unique(url: str, table: str, column: str) -> Iterator[None]:
    """Drop the UNIQUE constraint on table(column) of the shared PostgreSQL test database for the duration;
    then empty the database (the duplicates would refuse the constraint) and put the constraint back."""
    engine = create_engine(url)
    with engine.begin() as connection:
        name, definition = connection.execute(text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'u' "
            "AND conrelid = CAST(:t AS regclass) AND conkey = ARRAY[(SELECT attnum FROM pg_attribute "
            "WHERE attrelid = CAST(:t AS regclass) AND attname = :c)]::int2[]"),
            {"t": table, "c": column}).one()
        connection.exec_driver_sql(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
    try:
        yield
    finally:
        engine.dispose()  # empty_postgres ends every other connection, pooled ones included
        empty_postgres(url)
        with engine.begin() as connection:
            connection.exec_driver_sql(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
        engine.dispose()


@contextmanager
def guard_removed(app: Any, guarded: bool, unique: tuple[str, str] | None = None) -> Iterator[None]:
    """Nothing when guarded; otherwise SQLite loses BEGIN IMMEDIATE and PostgreSQL the UNIQUE constraint
    `unique` (table, column), the last guard behind the row locks the caller patches away."""
    engine = app.extensions["mscbatch.db"].engine
    if guarded:
        yield
    elif engine.dialect.name == "sqlite":
        deferred_begin(engine)
        yield
    elif unique is None:
        yield
    else:
        with without_unique(app.config["DATABASE_URL"], *unique):
            yield
