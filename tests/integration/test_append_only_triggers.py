"""Every append-only table refuses UPDATE and DELETE (and TRUNCATE on PostgreSQL) in the database itself.

The set is the code's own (append_only_tables(): the audit trail and every model declared `__append_only__`), so a
new append-only model whose migration forgets protect_append_only() fails here. Triggers are read from the
catalogue by what they do (operation, timing, refusal), not by name."""
from __future__ import annotations

import re

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DatabaseError

from mscbatch.audit.ddl import append_only_tables
from mscbatch.database import normalise_url
from mscbatch.lots import storage
from mscbatch.migrate import alembic_config, upgrade
from tests.integration.lot_factories import approved_adipose_donor, box, cryopreserved_lot
from tests.integration.patient_factories import user
from tests.reliability.support import empty_database

REFUSED = {"sqlite": {"UPDATE", "DELETE"}, "postgresql": {"UPDATE", "DELETE", "TRUNCATE"}}
MIGRATION_0011 = {"storage_move", "label_print", "label_print_item"}
#: append-only tables a later migration creates (0021: recall_notice): absent at 0010, so neither protected nor not
MADE_AFTER_0011 = {"recall_notice"}

# pg_trigger.tgtype bits (PostgreSQL's include/catalog/pg_trigger.h)
_PG_ROW, _PG_BEFORE, _PG_DELETE, _PG_UPDATE, _PG_TRUNCATE = 1, 2, 8, 16, 32
_SQLITE_REFUSAL = re.compile(r"^CREATE TRIGGER \w+ BEFORE (UPDATE|DELETE) ON (\w+) .*RAISE\(ABORT", re.I | re.S)


def refused_operations(connection) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    """{table: the operations a trigger refuses on it}."""
    refused: dict[str, set[str]] = {}
    if connection.dialect.name == "sqlite":
        for (sql,) in connection.execute(text("SELECT sql FROM sqlite_master WHERE type = 'trigger'")):
            match = _SQLITE_REFUSAL.match(sql)
            if match:
                refused.setdefault(match.group(2), set()).add(match.group(1).upper())
        return refused
    rows = connection.execute(text(
        "SELECT c.relname, t.tgtype FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "JOIN pg_proc p ON p.oid = t.tgfoid WHERE p.proname = 'mscbatch_refuse_change' "
        "AND NOT t.tgisinternal AND t.tgenabled <> 'D'"))
    for table, kind in rows:
        if not kind & _PG_BEFORE:
            continue
        ops = refused.setdefault(table, set())
        if kind & _PG_ROW:
            ops.update(name for bit, name in ((_PG_UPDATE, "UPDATE"), (_PG_DELETE, "DELETE")) if kind & bit)
        elif kind & _PG_TRUNCATE:
            ops.add("TRUNCATE")
    return refused


def _unprotected(connection, tables) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    refused = refused_operations(connection)
    wanted = REFUSED[connection.dialect.name]
    return {t: wanted - refused.get(t, set()) for t in tables if wanted - refused.get(t, set())}


def test_every_append_only_table_has_its_triggers(app):
    tables = append_only_tables()
    assert {"audit_event", "signature", "custody_event"} | MIGRATION_0011 <= set(tables)
    with app.extensions["mscbatch.db"].engine.connect() as connection:
        assert _unprotected(connection, tables) == {}


def test_a_storage_move_cannot_be_rewritten_or_deleted(app, users):
    with app.app_context(), app.extensions["mscbatch.db"].new_session() as session:
        _lot_id, bags = cryopreserved_lot(session, approved_adipose_donor(session), count=1)
        storage.store_bag(session, user(session, "technician"), bags[0].id, box(session), 1)
    engine = app.extensions["mscbatch.db"].engine
    for statement in ("UPDATE storage_move SET reason = 'rewritten'", "DELETE FROM storage_move"):
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM storage_move")).scalar() == 1


def test_an_upsert_cannot_rewrite_an_append_only_row(app, users):
    """Review 4: SQLite's INSERT OR REPLACE deleted the conflicting row without firing its DELETE trigger (recursive
    triggers were off) and wrote another in its place; PostgreSQL's ON CONFLICT DO UPDATE is an UPDATE."""
    with app.app_context(), app.extensions["mscbatch.db"].new_session() as session:
        _lot_id, bags = cryopreserved_lot(session, approved_adipose_donor(session), count=1)
        storage.store_bag(session, user(session, "technician"), bags[0].id, box(session), 1)
    engine = app.extensions["mscbatch.db"].engine
    with engine.connect() as connection:
        row = dict(connection.execute(text("SELECT * FROM storage_move")).mappings().one())
    columns = ", ".join(row)
    values = ", ".join(f":{name}" for name in row)
    upsert = (f"INSERT OR REPLACE INTO storage_move ({columns}) VALUES ({values})" if engine.dialect.name == "sqlite"
              else f"INSERT INTO storage_move ({columns}) VALUES ({values}) ON CONFLICT (id) DO UPDATE SET "
                   "reason = EXCLUDED.reason")
    with pytest.raises(DatabaseError, match="append-only"), engine.begin() as connection:
        connection.execute(text(upsert), {**row, "reason": "rewritten"})
    with engine.connect() as connection:
        assert connection.execute(text("SELECT reason FROM storage_move")).scalar() == row["reason"]


def test_migration_0011_protects_its_tables_and_its_downgrade_unprotects_only_them(database_url, tmp_path):
    with empty_database(database_url, tmp_path) as url:
        upgrade(url)
        engine = create_engine(normalise_url(url))
        try:
            command.downgrade(alembic_config(url), "0010")
            with engine.connect() as connection:
                assert set(_unprotected(connection, MIGRATION_0011)) == MIGRATION_0011
                assert _unprotected(connection, set(append_only_tables()) - MIGRATION_0011 - MADE_AFTER_0011) == {}
            upgrade(url)
            with engine.connect() as connection:
                assert _unprotected(connection, append_only_tables()) == {}
        finally:
            engine.dispose()
