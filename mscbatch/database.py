"""The database: declarative base with a constraint naming convention, the engine and the session.

One Session per request (or per CLI command), opened lazily and closed at teardown. Services receive it
explicitly and commit once per use case (see mscbatch.audit.context.use_case); views never commit.

SQLite is the embedded default. Every SQLite transaction starts with BEGIN IMMEDIATE so that writers are
serialised by the database itself: sequence allocation (DINs), the audit hash chain and "exactly one
release" then hold without application locks. PostgreSQL uses row locks and advisory locks instead. The one
exception is `reading()`: an API token's lookup and the bedside check's reads (which the second person's
confirmation and the infusion start run again inside their own write transactions) run in a deferred
transaction of their own, so they do not hold the write lock.
"""
from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from mscbatch.core.text import identity_fold, letters_and_digits

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp always stored and returned as timezone-aware UTC (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


def locked_row(session: Any, model: Any, row_id: int, what: str) -> Any:
    """The row, locked to the end of the transaction (SELECT ... FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE
    serialises writers already) and read afresh, never a stale copy from the session: the one body of the domains'
    lock_bag, lock_lot, lock_donor and lock_patient, whose docstrings say why each use case takes its lock."""
    from sqlalchemy import select

    from mscbatch.errors import NotFound

    row = session.scalar(select(model).where(model.id == row_id).with_for_update()
                         .execution_options(populate_existing=True))
    if row is None:
        raise NotFound(f"No {what} with id {row_id}.")
    return row


def utcnow() -> datetime:
    return datetime.now(UTC)


#: the SQL name of core.text.letters_and_digits on SQLite connections
SQLITE_LETTERS_AND_DIGITS = "letters_and_digits"
#: the SQL name of core.text.identity_fold on SQLite connections
SQLITE_IDENTITY_FOLD = "identity_fold"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        # REPLACE deletes the row it conflicts with without firing DELETE triggers unless recursive triggers are
        # on: without this, INSERT OR REPLACE would rewrite an append-only row past its refusal triggers
        cursor.execute("PRAGMA recursive_triggers=ON")
        cursor.execute(_busy_timeout_pragma())
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        # lots.queries.recall_key: how a recall compares supplier lot numbers (PostgreSQL does it in SQL)
        dbapi_connection.create_function(SQLITE_LETTERS_AND_DIGITS, 1, letters_and_digits, deterministic=True)
        # lots.queries.identity_key: a supplier lot's identity at registration, folded in every alphabet
        dbapi_connection.create_function(SQLITE_IDENTITY_FOLD, 1, identity_fold, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            connection.connection.dbapi_connection.execute("BEGIN")  # deferred: takes no write lock
        else:
            begin_immediate(connection.connection.dbapi_connection)


READ_ONLY = "mscbatch_read_only"


@contextmanager
def reading(session: Session) -> Iterator[Session]:
    """Reads that need not hold SQLite's write lock, in a transaction of their own ended at the block's end.

    On SQLite every transaction is BEGIN IMMEDIATE and keeps the write lock to its end, so the reads of a request
    (its API token, the bedside check's facts) would keep other workers from writing while Python works. Here
    they run in a deferred transaction instead, like the statement-level snapshots PostgreSQL gives reads
    (READ COMMITTED): a use case that must decide on what it reads does so inside its own write transaction (the
    infusion start re-runs the bedside check there). Inside an open transaction, or on PostgreSQL, the block
    just reads in the current transaction. Nothing may be written in the block."""
    if session.get_bind().dialect.name != "sqlite" or session.in_transaction() or \
            session.new or session.dirty or session.deleted:  # pending changes would be flushed by the reads
        yield session
        return
    session.connection(execution_options={READ_ONLY: True})
    try:
        yield session
    finally:
        if session.new or session.dirty or session.deleted:
            session.rollback()
            raise RuntimeError("a change was made inside reading(): write inside use_case() instead")
        session.commit()  # ends the read transaction; nothing to flush, and loaded objects stay loaded


BUSY_TIMEOUT_SECONDS = 30.0
_FIRST_POLL, _LAST_POLL = 0.0001, 0.001


def _busy_timeout_pragma() -> str:
    return f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}"  # read at each call: tests shorten it


def begin_immediate(dbapi_connection: Any) -> None:
    """BEGIN IMMEDIATE, waiting for another writer by polling every 0.1-1 ms.

    SQLite's own busy handler (PRAGMA busy_timeout) sleeps 1, 2, 5, 10 ... 100 ms between attempts, so with two
    gunicorn workers a waiting writer often sleeps long after the lock is free: measured under load, the bedside
    check's p50 was 230 ms for about 7 ms of work. Python's sqlite3 cannot install another busy handler, so the
    wait for the write lock (taken only here, at BEGIN) is done in this loop; every other statement keeps the
    normal timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    pause = _FIRST_POLL
    dbapi_connection.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                dbapi_connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if getattr(error, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, _LAST_POLL)
    finally:
        dbapi_connection.execute(_busy_timeout_pragma())


class DatabaseNotReady(RuntimeError):
    """The configured database cannot be used as it is: unreachable, missing, never initialised or at another
    schema. The message names the database (password masked) and says what to run or set."""


DATABASE_URL_FORMS = "sqlite:///PATH or postgresql://USER@HOST/DATABASE"


def masked_url(url: str) -> str:
    """The URL to print: its password replaced by ***, also when the URL does not parse."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - anything unparsable is printed with whatever looks like a password hidden
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def check_database_url(url: str) -> None:
    """Refuse (SettingsError) a database URL this application cannot use, before anything connects: not a URL,
    another database than SQLite or PostgreSQL, a driver that is not installed."""
    from sqlalchemy.engine import make_url

    from mscbatch.settings import SettingsError

    problem = None
    try:
        backend = make_url(normalise_url(url)).get_backend_name()
    except Exception as exc:  # noqa: BLE001 - ArgumentError, ValueError (a port that is not a number)...
        problem = f"it is not a database URL ({str(exc).splitlines()[0]})"
    else:
        if backend not in ("sqlite", "postgresql"):
            problem = f"mscbatch runs on SQLite or PostgreSQL, not {backend}"
    if problem:
        raise SettingsError(f"MSCBATCH_DATABASE_URL must be {DATABASE_URL_FORMS}, got {masked_url(url)!r}: "
                            f"{problem}.")


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (relative to the current folder when the URL says so); None for another database
    or an in-memory one."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:" \
            or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database)


def connection_problem(url: str, error: BaseException) -> str:
    """One line for a failed connection: the database, the driver's first line, and what to check."""
    orig = getattr(error, "orig", None) or error
    reason = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    return (f"Cannot connect to the database {masked_url(url)}: {reason}. Check MSCBATCH_DATABASE_URL and that "
            "the database server is running.")


def normalise_url(url: str) -> str:
    """postgresql:// means psycopg 3 here (SQLAlchemy would otherwise pick psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    engine = create_engine(normalise_url(url), **kwargs)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


class Database:
    """The application's database: `db` (mscbatch.extensions) is one object for the whole code base, but each
    Flask app gets its own engine and session factory (app.extensions["mscbatch.db"]), and `db` answers for the
    app of the current context. Two apps in one process (the benchmarks compare a small and a large database
    side by side, tests build several) then never share a connection pool."""

    def __init__(self) -> None:
        self._engine: Engine | None = None
        self._session_factory: sessionmaker[Session] | None = None

    def init_app(self, app: Flask) -> None:
        bound = Database()
        bound._engine = make_engine(app.config["DATABASE_URL"])
        bound._session_factory = sessionmaker(bind=bound._engine, expire_on_commit=False)
        app.extensions["mscbatch.db"] = bound
        app.teardown_appcontext(self._close_session)

    def _bound(self) -> Database:
        if self._engine is not None:
            return self
        bound = current_app.extensions.get("mscbatch.db")
        assert bound is not None, "Database.init_app was not called for this app"
        return bound  # type: ignore[no-any-return]

    @property
    def engine(self) -> Engine:
        engine = self._bound()._engine
        assert engine is not None
        return engine

    @property
    def session_factory(self) -> sessionmaker[Session]:
        factory = self._bound()._session_factory
        assert factory is not None
        return factory

    @property
    def session(self) -> Session:
        if "db_session" not in g:
            g.db_session = self.session_factory()
        return g.db_session  # type: ignore[no-any-return]

    def new_session(self) -> Session:
        return self.session_factory()

    @staticmethod
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()  # rolls back anything a failed use case left uncommitted
