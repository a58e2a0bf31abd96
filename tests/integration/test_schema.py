"""The migrations produce exactly the schema the models describe (SQLite and PostgreSQL)."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from mscbatch.database import Base


def test_migrations_produce_the_same_schema_as_the_models(app):
    engine = app.extensions["mscbatch.db"].engine
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == [], differences


def test_the_database_is_at_the_newest_migration(app):
    from alembic.script import ScriptDirectory

    from mscbatch.migrate import alembic_config

    engine = app.extensions["mscbatch.db"].engine
    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head
