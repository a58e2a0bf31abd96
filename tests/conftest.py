"""Shared fixtures: an app per test on SQLite and (when MSCBATCH_TEST_POSTGRES_URL is set) PostgreSQL,
clients signed in per role, and the rule that CI may not skip what a local run may.

SQLite: the schema is migrated once into a template file, copied for each test (fast, fully isolated).
PostgreSQL: one throw-away database per run, migrated once and emptied after each test.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mscbatch import create_app
from mscbatch.database import normalise_url

POSTGRES_URL = os.environ.get("MSCBATCH_TEST_POSTGRES_URL")
# In CI (.ci/run) PostgreSQL and the browser are required: a missing one fails instead of skipping.
REQUIRE_ALL = os.environ.get("MSCBATCH_REQUIRE_ALL") == "1"
PASSWORD = "correct-horse-battery"
ROLES = ("technician", "qa", "clinician", "nurse", "admin")

TEST_CONFIG = {
    "TESTING": True,
    "SECRET_KEY": "test-secret-key",
    "AUDIT_KEY": "test-audit-key",
    "LABEL_KEY": "test-label-key",
    "WTF_CSRF_ENABLED": False,
    "PASSWORD_HASH_PROFILE": "fast",
    "AUTO_MIGRATE": False,
    # many tests sign in wrongly from the test client's one address: the throttle's own tests set their limit
    "SIGNIN_THROTTLE_LIMIT": 1000,
    # never the checkout's instance/audit-checkpoints.jsonl (a developer's `mscbatch audit checkpoint` of the demo,
    # made with another key): a test that checkpoints names its own file
    "AUDIT_CHECKPOINT_FILE": str(Path(tempfile.gettempdir()) / f"mscbatch-tests-{uuid.uuid4().hex}" / "none.jsonl"),
}


def missing(what: str) -> None:
    """Skip loudly locally; fail in CI."""
    if REQUIRE_ALL:
        pytest.fail(f"{what} is required in CI (MSCBATCH_REQUIRE_ALL=1) but missing", pytrace=False)
    pytest.skip(f"SKIPPED FOR WANT OF {what}: these tests did not run")


# ---- databases ------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    app = create_app({**TEST_CONFIG, "AUTO_MIGRATE": True, "DATABASE_URL": f"sqlite:///{path}"})
    app.extensions["mscbatch.db"].engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    if not POSTGRES_URL:
        missing("PostgreSQL (set MSCBATCH_TEST_POSTGRES_URL)")
    name = f"mscbatch_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalise_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception as error:  # noqa: BLE001 - a broken server is "missing" here
        missing(f"PostgreSQL at {POSTGRES_URL} ({error.__class__.__name__})")
    url = normalise_url(POSTGRES_URL).rsplit("/", 1)[0] + f"/{name}"
    app = create_app({**TEST_CONFIG, "AUTO_MIGRATE": True, "DATABASE_URL": url})
    app.extensions["mscbatch.db"].engine.dispose()
    yield url
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def empty_postgres(url: str) -> None:
    """Empty every table a test filled and restart every sequence it used, as a new database. DELETE of the filled
    tables alone, not TRUNCATE of all of them: a TRUNCATE of the 114 tables cost 0.2-0.3 s per test (new files for
    each table and index), a fifth of the suite's time on PostgreSQL; most tests fill a dozen tables."""
    engine = create_engine(url)
    with engine.begin() as connection:
        # a connection a test leaked would block the DELETEs forever: end it
        connection.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        tables = [row[0] for row in connection.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"))]
        filled = [row[0] for row in connection.exec_driver_sql(" UNION ALL ".join(
            f"SELECT '{t}' WHERE EXISTS (SELECT 1 FROM \"{t}\")" for t in tables))]
        # append-only triggers and foreign-key checks off: every row goes, in any order
        connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        for table in filled:
            connection.exec_driver_sql(f'DELETE FROM "{table}"')
        connection.exec_driver_sql(  # ids start at 1 again, as tests that name "#1" expect
            "SELECT setval(format('%%I.%%I', schemaname, sequencename)::regclass, 1, false) "
            "FROM pg_sequences WHERE schemaname = 'public' AND last_value IS NOT NULL")
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "test.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_database")
        yield url
        empty_postgres(url)


def make_app(database_url: str, **overrides):  # type: ignore[no-untyped-def]
    from mscbatch.audit.verify import ensure_chain_head

    app = create_app({**TEST_CONFIG, "DATABASE_URL": database_url, **overrides})
    with app.app_context():
        db = app.extensions["mscbatch.db"]
        with db.new_session() as session:
            ensure_chain_head(session)
    return app


@pytest.fixture
def app(database_url: str) -> Iterator:
    app = make_app(database_url)
    yield app
    app.extensions["mscbatch.db"].engine.dispose()


@pytest.fixture
def db_session(app):  # type: ignore[no-untyped-def]
    """A session of its own, outside any app context (an open app context would make every test-client
    request share one `g`, and so one signed-in user)."""
    session = app.extensions["mscbatch.db"].new_session()
    yield session
    session.close()


# ---- users and clients ----------------------------------------------------------------------------------

def add_user(app, username: str, roles: list[str], full_name: str | None = None):  # type: ignore[no-untyped-def]
    from mscbatch.auth.services import create_user

    with app.app_context():
        session = app.extensions["mscbatch.db"].new_session()
        try:
            return create_user(session, None, username=username, full_name=full_name or username.title(),
                               password=PASSWORD, roles=roles, hash_profile="fast")
        finally:
            session.close()


@pytest.fixture
def users(app):  # type: ignore[no-untyped-def]
    """One user per role, named after the role, plus 'qa2' and 'nurse2' for four-eyes steps."""
    made = {role: add_user(app, role, [role]) for role in ROLES}
    made["qa2"] = add_user(app, "qa2", ["qa"])
    made["nurse2"] = add_user(app, "nurse2", ["nurse"])
    return made


def login(client, username: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return client.post("/login", data={"username": username, "password": password})


@pytest.fixture
def client_as(app, users):  # type: ignore[no-untyped-def]
    """client_as('qa') -> a test client signed in as that user."""
    def make(username: str):  # type: ignore[no-untyped-def]
        client = app.test_client()
        response = login(client, username)
        assert response.status_code == 302, response.get_data(as_text=True)
        return client
    return make


@pytest.fixture
def spec_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of config/release_specs/ that the release package reads instead of the shipped one (the release
    specification tests edit, add or remove files in it)."""
    from mscbatch.paths import config_dir
    from mscbatch.release import specs

    folder = tmp_path / "release_specs"
    shutil.copytree(config_dir() / "release_specs", folder)
    monkeypatch.setattr(specs, "config_dir", lambda: tmp_path)
    specs.all_specs.cache_clear()
    yield folder
    specs.all_specs.cache_clear()


def screening_seen(client, donor_id: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The donor page's fingerprint of the screening it shows, as QA's decision form posts it (review 4: a signature
    names the screening it was given on)."""
    import re

    page = client.get(f"/donors/{donor_id}").get_data(as_text=True)
    found = re.search(r'name="decision-screening"[^>]*value="([0-9a-f]{64})"', page) or \
        re.search(r'value="([0-9a-f]{64})"[^>]*name="decision-screening"', page)
    assert found, "the donor page shows no decision form"
    return {"decision-screening": found.group(1)}


def api_token_for(app, username: str) -> str:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from mscbatch.auth.models import User
    from mscbatch.auth.services import create_api_token

    with app.app_context():
        session = app.extensions["mscbatch.db"].new_session()
        try:
            user = session.scalar(select(User).where(User.username == username))
            return create_api_token(session, user, "test")[1]
        finally:
            session.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "infusion_duration: the test judges an infusion's end against the protocol's "
                                       "duration (the other tests end infusions at once: see infusions_end_at_once)")


@pytest.fixture(autouse=True)
def infusions_end_at_once(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start and end an infusion within the same second, about other things (a volume, a reaction, the DMSO
    of the day): an end sooner than the protocol's infusion time (1 h) asks for a reason since session 38, so for
    them the time an infusion is to be given over is unknown (as for a protocol that gives none). The rule itself
    is tested by the tests marked `infusion_duration`, which keep it."""
    if request.node.get_closest_marker("infusion_duration"):
        return
    from mscbatch.custody import infusions

    monkeypatch.setattr(infusions, "infusion_hours", lambda _calculation, _protocol_id: None)
