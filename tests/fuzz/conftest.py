"""The seeded site of the fuzz sweeps. The demo data and the ward walk-through are built once per database
(SQLite: a file; PostgreSQL: a database of its own, never the one the other tests empty after each test), then
each test module works on a copy of it (a file copy; CREATE DATABASE ... TEMPLATE), so that what one sweep
changes (a bag returned, a prescription cancelled) does not change what the next one starts from."""
from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import create_engine

from mscbatch.database import normalise_url
from tests.conftest import POSTGRES_URL, missing
from tests.conftest import make_app as _make_app
from tests.fuzz.pages import Offered, page_forms
from tests.fuzz.site import Site, build_site
from tests.reliability.support import assert_chain_verifies


def make_app(url: str):  # type: ignore[no-untyped-def]
    # CSRF on: the bodies carry a valid token, as a browser's; access lines off: thousands of requests; no lockout:
    # hostile passwords are wrong passwords, and a locked demo user could no longer sign in for the next route (the
    # count itself is still written, and allowed by checks.AUDITED_REFUSALS)
    # no sign-in throttle either: the sweeps send every hostile sign-in from one address
    return _make_app(url, WTF_CSRF_ENABLED=True, LOG_LEVEL="WARNING", LOCKOUT_THRESHOLD=1_000_000,
                     SIGNIN_THROTTLE_LIMIT=1_000_000)


def _postgres(sql: str) -> None:
    admin = create_engine(normalise_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(sql)
    finally:
        admin.dispose()


def _postgres_url(name: str) -> str:
    return normalise_url(POSTGRES_URL).rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def seeded_site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("fuzz") / "seeded.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url, name = f"sqlite:///{path}", ""
    else:
        if not POSTGRES_URL:
            missing("PostgreSQL (set MSCBATCH_TEST_POSTGRES_URL)")
        name = f"mscbatch_fuzz_{uuid.uuid4().hex[:10]}"
        try:
            _postgres(f'CREATE DATABASE "{name}"')
        except Exception as error:  # noqa: BLE001 - a broken server is "missing" here
            missing(f"PostgreSQL at {POSTGRES_URL} ({error.__class__.__name__})")
        url = _postgres_url(name)
        _make_app(url, AUTO_MIGRATE=True).extensions["mscbatch.db"].engine.dispose()
    template = build_site(make_app(url), request.param)
    template.dispose()
    yield template
    if name:
        _postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _copy(seeded_site: Site, tmp_path_factory: pytest.TempPathFactory, verify: bool) -> Iterator[Site]:
    source = seeded_site.app.config["DATABASE_URL"]
    if seeded_site.kind == "sqlite":
        path = tmp_path_factory.mktemp("fuzz") / "site.sqlite3"
        shutil.copyfile(source.removeprefix("sqlite:///"), path)
        url, name = f"sqlite:///{path}", ""
    else:
        name = f"mscbatch_fuzz_{uuid.uuid4().hex[:10]}"
        _postgres(f'CREATE DATABASE "{name}" TEMPLATE "{source.rsplit("/", 1)[1]}"')
        url = _postgres_url(name)
    copy = replace(seeded_site, app=make_app(url), _engine=None, _tables=[], _snapshot_sql=None,
                   _marker_connection=None)
    try:
        yield copy
    finally:
        copy.dispose()
        try:
            if verify:
                # the checks compare the audit trail by its count and newest seq (site.State): an old event changed
                # by a sweep would break the chain, verified here once the module's requests are done
                assert_chain_verifies(url)
        finally:
            if name:
                _postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def site(seeded_site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from _copy(seeded_site, tmp_path_factory, verify=True)


@pytest.fixture(scope="module")
def scratch_site(seeded_site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Another copy, where a test tries plausible bodies out before sending edge values to `site` (edge.py)."""
    yield from _copy(seeded_site, tmp_path_factory, verify=False)


@pytest.fixture(scope="session")
def offered_forms(seeded_site: Site, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Offered]]:
    """The forms the seeded site's pages offer (pages.py): the same in every module's copy, so read once per
    database, on a copy of its own (signing in writes sessions and audit events)."""
    copies = _copy(seeded_site, tmp_path_factory, verify=False)
    try:
        return page_forms(next(copies))
    finally:
        copies.close()
