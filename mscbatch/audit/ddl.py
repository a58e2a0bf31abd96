"""Database-level protection of append-only tables (audit events, signatures, custody events).

Even with direct SQL access, the application cannot UPDATE, DELETE or TRUNCATE these rows: triggers refuse
it on PostgreSQL and SQLite. On PostgreSQL, where a separate application role is configured, the privileges
are revoked as well (see README, "Production").
"""
from __future__ import annotations

import re

from alembic import op
from sqlalchemy.engine import Connection


def append_only_tables() -> list[str]:
    """The audit trail plus every model declared `__append_only__` (signatures, custody events...)."""
    from mscbatch import models  # noqa: F401  (every table on the metadata)
    from mscbatch.database import Base

    declared = sorted(m.class_.__tablename__ for m in Base.registry.mappers
                      if getattr(m.class_, "__append_only__", False))
    return ["audit_event", *declared]

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION mscbatch_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'mscbatch: % on % is refused: this table is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def protect_append_only(table: str) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION mscbatch_refuse_change()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION mscbatch_refuse_change()")
    elif dialect == "sqlite":
        for operation in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, 'mscbatch: {operation} on {table} is refused: this table is "
                       "append-only'); END")


def unprotect_append_only(table: str) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update_delete ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    elif dialect == "sqlite":
        for operation in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{operation}")


def restrict_application_role(connection: Connection, role: str) -> None:
    """Where the application connects with its own PostgreSQL role (MSCBATCH_APP_DB_ROLE), that role may
    read and write the tables but never UPDATE, DELETE or TRUNCATE the append-only ones: even a bug or an
    SQL injection in the application cannot rewrite history, and the triggers stay as a second guard."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
        raise ValueError(f"MSCBATCH_APP_DB_ROLE {role!r} is not a plain PostgreSQL role name")
    connection.exec_driver_sql(f"GRANT USAGE ON SCHEMA public TO {role}")
    connection.exec_driver_sql(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
    connection.exec_driver_sql(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
    tables = ", ".join(append_only_tables())
    connection.exec_driver_sql(f"REVOKE UPDATE, DELETE, TRUNCATE ON {tables} FROM {role}")
