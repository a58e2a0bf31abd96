"""S44: only `mscbatch init` (and `seed-scale`, which README says migrates) creates or migrates a database. Every
other command, and the server built from the environment (gunicorn's `mscbatch:create_app()`), refuses a database
that does not exist, was never initialised or is at an older schema, naming it and saying to run `mscbatch init`,
and creates nothing. Configuration and connection errors are one or two lines, never a traceback, also in
`mscbatch --help`. `audit checkpoint` refuses a checkpoint folder that does not exist (an unmounted off-host volume).
"""
from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from mscbatch.database import normalise_url
from tests.conftest import POSTGRES_URL, TEST_CONFIG, missing

ROOT = Path(__file__).resolve().parents[2]
MAIN = "import sys; from mscbatch.cli import main; sys.exit(main(prog_name='mscbatch'))"
SERVE_CHECK = "from mscbatch import create_app; create_app(); print('STARTED')"


def _env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MSCBATCH_", "PYTHON", "FLASK_"))}
    env.update(PYTHONPATH=str(ROOT), MSCBATCH_SECRET_KEY=TEST_CONFIG["SECRET_KEY"],
               MSCBATCH_AUDIT_KEY=TEST_CONFIG["AUDIT_KEY"], MSCBATCH_LABEL_KEY=TEST_CONFIG["LABEL_KEY"],
               MSCBATCH_AUDIT_CHECKPOINT_FILE=str(tmp_path / "checkpoints.jsonl"))
    env.update({f"MSCBATCH_{name}": value for name, value in settings.items()})
    return env


def _mscbatch(tmp_path: Path, *args: str, cwd: Path | None = None, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", MAIN, *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd or tmp_path, env=_env(tmp_path, **settings))


def _refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    said = result.stdout + result.stderr
    assert result.returncode != 0, said
    assert "Traceback" not in said, said
    for word in words:
        assert word in said, said


COMMANDS = [("backup", "--output", "out.sqlite3"), ("audit", "verify"), ("audit", "reconcile"),
            ("audit", "checkpoint"), ("seed-demo",), ("run", "--port", "1"),
            ("create-user", "--username", "ada", "--full-name", "Ada A", "--role", "admin", "--reason", "first admin",
             "--password", "a-long-password-1")]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_typo_in_the_sqlite_path_is_refused_and_nothing_is_created(tmp_path, command):
    url = f"sqlite:///{tmp_path}/x/demo.sqlit3"
    result = _mscbatch(tmp_path, *command, DATABASE_URL=url)
    _refused(result, f"No database at {url}", "mscbatch init", "MSCBATCH_DATABASE_URL")
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a command made files"


def test_backup_under_cron_without_environment_creates_no_instance_database(tmp_path):
    result = _mscbatch(tmp_path, "backup", "--output", "out.sqlite3")
    _refused(result, "instance/mscbatch.sqlite3", "does not exist", "mscbatch init")
    assert not (tmp_path / "instance").exists() and not (tmp_path / "out.sqlite3").exists()


def test_init_creates_the_default_database_then_the_commands_and_the_server_work(tmp_path):
    _refused(_mscbatch(tmp_path, "audit", "verify"), "mscbatch init")
    done = _mscbatch(tmp_path, "init")
    assert done.returncode == 0 and "Database ready" in done.stdout, done.stdout + done.stderr
    assert (tmp_path / "instance" / "mscbatch.sqlite3").is_file()
    verified = _mscbatch(tmp_path, "audit", "verify")
    assert verified.returncode == 0 and "Audit trail intact: 0 events" in verified.stdout, verified.stderr
    backup = _mscbatch(tmp_path, "backup", "--output", "out.sqlite3")
    assert backup.returncode == 0 and (tmp_path / "out.sqlite3").is_file(), backup.stderr
    served = subprocess.run([sys.executable, "-c", SERVE_CHECK], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, env=_env(tmp_path))
    assert served.returncode == 0 and "STARTED" in served.stdout, served.stderr


def test_an_empty_sqlite_file_is_never_initialised_not_migrated(tmp_path):
    (tmp_path / "empty.sqlite3").touch()
    url = f"sqlite:///{tmp_path}/empty.sqlite3"
    _refused(_mscbatch(tmp_path, "audit", "verify", DATABASE_URL=url), "holds no mscbatch schema", "mscbatch init")
    with sqlite3.connect(tmp_path / "empty.sqlite3") as connection:
        assert connection.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_an_older_schema_is_refused_until_init_migrates_it(tmp_path):
    from mscbatch.database import make_engine
    from mscbatch.migrate import head_revision, upgrade_engine

    url = f"sqlite:///{tmp_path}/old.sqlite3"
    engine = make_engine(url)
    upgrade_engine(engine, "0014")
    engine.dispose()
    for command in (("audit", "verify"), ("backup", "--output", "out.sqlite3"), ("run", "--port", "1")):
        _refused(_mscbatch(tmp_path, *command, DATABASE_URL=url), "schema revision 0014", head_revision(),
                 "run `mscbatch init` to migrate it")
    served = subprocess.run([sys.executable, "-c", SERVE_CHECK], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, env=_env(tmp_path, DATABASE_URL=url))
    _refused(served, "mscbatch cannot start", "schema revision 0014")
    assert served.returncode == 4  # gunicorn's "App failed to load": its master stops
    with sqlite3.connect(tmp_path / "old.sqlite3") as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchone()[0].startswith("0014")
    assert _mscbatch(tmp_path, "init", DATABASE_URL=url).returncode == 0
    assert _mscbatch(tmp_path, "audit", "verify", DATABASE_URL=url).returncode == 0


def test_the_server_refuses_a_database_never_initialised_and_creates_nothing(tmp_path):
    served = subprocess.run([sys.executable, "-c", SERVE_CHECK], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, env=_env(tmp_path))
    _refused(served, "mscbatch cannot start", "instance/mscbatch.sqlite3", "mscbatch init")
    assert served.returncode == 4 and not (tmp_path / "instance").exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_gunicorn_stops_on_a_database_never_initialised(tmp_path):
    result = subprocess.run([sys.executable, "-m", "gunicorn", "--workers", "2", "--bind",
                             f"127.0.0.1:{_free_port()}", "--no-control-socket", "mscbatch:create_app()"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path, env=_env(tmp_path))
    assert result.returncode != 0
    assert "mscbatch cannot start: No database at" in result.stderr, result.stderr
    # no traceback of ours: gunicorn's arbiter may print its own HaltServer as it stops ("App failed to load")
    assert not re.search(r'File "[^"]*/mscbatch/', result.stderr), result.stderr
    assert not (tmp_path / "instance").exists()


@pytest.mark.parametrize(("settings", "words"), [
    ({"ENV": "production"}, "MSCBATCH_SECRET_KEY is the demo value"),
    ({"ENV": "prod"}, "MSCBATCH_ENV must be development or production"),
    ({"HTTPS": "true"}, "MSCBATCH_HTTPS must be 1 (on) or 0 (off)"),
    ({"DATABASE_URL": "mysql://u:pw-s44-hidden@h/db"}, "not mysql"),
    ({"DATABASE_URL": "not a url"}, "it is not a database URL"),
    ({"DATABASE_URL": "postgresql://u:pw-s44-hidden@127.0.0.1:notaport/db"}, "it is not a database URL"),
    ({"DATABASE_URL": "sqlite:////nonexistent-folder-s44/x.sqlite3"}, "the folder /nonexistent-folder-s44 does not exist"),
    ({"DATABASE_URL": "postgresql://u:pw-s44-hidden@127.0.0.1:1/db"}, "Cannot connect to the database"),
], ids=lambda v: str(v)[:40])
@pytest.mark.parametrize("command", [("init",), ("audit", "verify"), ("backup", "--output", "o")], ids=" ".join)
def test_configuration_errors_are_one_message_without_a_traceback(tmp_path, settings, words, command):
    if settings.get("ENV") == "production":
        settings = {**settings, "SECRET_KEY": "short"}
    if "nonexistent-folder" in settings.get("DATABASE_URL", "") and command != ("init",):
        words = "does not exist"
    result = _mscbatch(tmp_path, *command, **settings)
    _refused(result, words)
    assert "pw-s44-hidden" not in result.stdout + result.stderr  # the password masked
    assert list(tmp_path.iterdir()) == []


def test_help_works_without_a_valid_configuration(tmp_path):
    result = _mscbatch(tmp_path, "--help", ENV="prod", DATABASE_URL="not a url")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "MSCBATCH_ENV must be development or production" in result.stderr
    for command in ("init", "backup", "audit", "seed-demo", "create-user", "run"):
        assert f"  {command} " in result.stdout, result.stdout
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_refuses_a_missing_folder_and_creates_none(app, tmp_path):
    app.config["AUDIT_CHECKPOINT_FILE"] = str(tmp_path / "unmounted" / "ck.jsonl")
    result = app.test_cli_runner().invoke(args=["audit", "checkpoint"])
    assert result.exit_code == 1, result.output
    assert f"the folder {tmp_path / 'unmounted'} of MSCBATCH_AUDIT_CHECKPOINT_FILE does not exist" in result.output
    assert not (tmp_path / "unmounted").exists()
    (tmp_path / "unmounted").mkdir()
    assert app.test_cli_runner().invoke(args=["audit", "checkpoint"]).exit_code == 0
    assert (tmp_path / "unmounted" / "ck.jsonl").is_file()


@pytest.fixture
def fresh_postgres():  # type: ignore[no-untyped-def]
    """A PostgreSQL database of its own, empty (no schema)."""
    if not POSTGRES_URL:
        missing("PostgreSQL (set MSCBATCH_TEST_POSTGRES_URL)")
    name = f"mscbatch_s44_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalise_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def test_postgresql_never_initialised_missing_database_and_missing_role(tmp_path, fresh_postgres):
    url = fresh_postgres
    for command in (("audit", "verify"), ("backup", "--output", "o"), ("seed-demo",)):
        _refused(_mscbatch(tmp_path, *command, DATABASE_URL=url), "holds no mscbatch schema", "mscbatch init")
    missing_db = url.rsplit("/", 1)[0] + "/mscbatch_s44_no_such_database"
    _refused(_mscbatch(tmp_path, "init", DATABASE_URL=missing_db), "Cannot connect to the database",
             "does not exist", "MSCBATCH_DATABASE_URL")
    _refused(_mscbatch(tmp_path, "init", DATABASE_URL=url, APP_DB_ROLE="mscbatch_s44_no_such_role"),
             "MSCBATCH_APP_DB_ROLE names the role 'mscbatch_s44_no_such_role', which does not exist")
    done = _mscbatch(tmp_path, "init", DATABASE_URL=url)
    assert done.returncode == 0, done.stderr
    verified = _mscbatch(tmp_path, "audit", "verify", DATABASE_URL=url)
    assert verified.returncode == 0 and "Audit trail intact" in verified.stdout, verified.stderr
