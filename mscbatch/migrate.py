"""Alembic, driven from code: the migrations ship inside the package (mscbatch/migrations)."""
from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from mscbatch.paths import migrations_dir


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def upgrade_engine(engine: Engine, revision: str = "head") -> None:
    """Upgrade over an existing engine (keeps SQLite pragmas and test connections consistent)."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def head_revision() -> str:
    """The newest migration this version of mscbatch ships."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {script.revision for script in ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions()}


def readiness_problem(engine: Engine, url: str) -> str | None:
    """None when the database exists and holds this version's newest schema; else what is wrong and what to do,
    in one or two sentences naming the database (password masked). Nothing is created: a SQLite file that does
    not exist is not opened (opening would create it), and nothing is migrated (only `mscbatch init` does)."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.exc import DBAPIError

    from mscbatch.database import READ_ONLY, connection_problem, masked_url, sqlite_file

    where = masked_url(url)
    init = "Run `mscbatch init` to create it, or check MSCBATCH_DATABASE_URL."
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        return f"No database at {where}: the file {path.absolute()} does not exist. {init}"
    try:
        with engine.connect().execution_options(**{READ_ONLY: True}) as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as error:
        return connection_problem(url, error)
    if revision is None:
        return f"The database {where} holds no mscbatch schema (never initialised). {init}"
    head = head_revision()
    if revision == head:
        return None
    if revision in _known_revisions():
        return (f"The database {where} is at schema revision {revision}; this version of mscbatch needs {head}. "
                "Back it up, then run `mscbatch init` to migrate it.")
    return (f"The database {where} is at schema revision {revision}, which this version of mscbatch does not know "
            "(made by a newer version?). Run the mscbatch version that made it, or check MSCBATCH_DATABASE_URL.")
