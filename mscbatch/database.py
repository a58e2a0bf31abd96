"""The database: declarative base with a constraint naming convention, the engine and the session.

One Session per request (or per CLI command), opened lazily and closed at teardown. Services receive it
explicitly and commit once per use case (see mscbatch.audit.context.use_case); views never commit.

SQLite is the embedded default. Every SQLite transaction starts with BEGIN IMMEDIATE so that writers are
serialised by the database itself: sequence allocation (DINs), the audit hash chain and "exactly one
release" then hold without application locks. PostgreSQL uses row locks and advisory locks instead.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

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


def utcnow() -> datetime:
    return datetime.now(UTC)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


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
