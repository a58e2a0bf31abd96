"""What every benchmark shares: the scale databases, an app on them, signed-in clients, and timing.

Databases are generated once by `mscbatch seed-scale` (mscbatch.scale) and kept in .bench/ (SQLite) or as
PostgreSQL databases named mscbatch_bench_<bags>_<fingerprint>; the fingerprint covers the generator and the
migrations, so a change to either regenerates them. Sizes come from issue 9: 10 000 and 1 000 000 bags (about
1 000 and 100 000 lots). MSCBATCH_BENCH_SCALE shrinks both for a quick look (0.01 -> 100 and 10 000 bags);
the ratios are only meaningful at 1.
"""
from __future__ import annotations

import hashlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text

from mscbatch import create_app
from mscbatch.database import normalise_url

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("MSCBATCH_BENCH_DIR") or ROOT / ".bench")
PG_PREFIX = os.environ.get("MSCBATCH_BENCH_PG_PREFIX", "mscbatch_bench")
SEED = 1
SMALL_BAGS, LARGE_BAGS = 10_000, 1_000_000
PG_ADMIN_URL = os.environ.get("MSCBATCH_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BENCH_PASSWORD = "bench-password-not-for-production"
# One access line per measured request would drown the table. Passed to each app and server the benchmarks start,
# never set in os.environ: importing this module (the tests do) must not change the log level of other apps.
LOG_LEVEL = os.environ.get("MSCBATCH_LOG_LEVEL", "WARNING")
KINDS = tuple(k for k in os.environ.get("MSCBATCH_BENCH_DATABASES", "sqlite,postgresql").split(",") if k)


def scale() -> float:
    return float(os.environ.get("MSCBATCH_BENCH_SCALE", "1"))


def sizes() -> tuple[int, int]:
    return max(200, int(SMALL_BAGS * scale())), max(1000, int(LARGE_BAGS * scale()))


#: Days a generated database stays in use. Its bags on the ward were prescribed two days before generation, on a
#: weight taken the day before that; the bedside check stops a dose weight older than the protocols' 7 days, so the
#: database is made again before its bags would stop: used for at most 3 days after the day it was made, its weights
#: are at most 3 + 3 days old, + 1 where the site's day and UTC's differ = 7.
FRESH_DAYS = 4


def fingerprint() -> str:
    """Of the generator's code and seed, and of the FRESH_DAYS period it was made in: a changed generator, or a
    database grown too old for its bedside checks to match, regenerates. A new migration does not: opening a
    kept database upgrades it, as `mscbatch init` upgrades a unit's database in place."""
    digest = hashlib.sha256(f"{SEED}/{date.today().toordinal() // FRESH_DAYS}".encode())
    for path in sorted((ROOT / "mscbatch" / "scale").glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:10]


def app_for(url: str) -> Any:
    """An app as `make run` would build it (demo keys: these databases hold nothing real); it upgrades the
    schema at start like the real one."""
    return create_app({"DATABASE_URL": url, "PASSWORD_HASH_PROFILE": "fast", "LOG_LEVEL": LOG_LEVEL,
                       "INSTANCE_DIR": str(CACHE / "instance")})


def _generate(url: str, bags: int) -> None:
    from mscbatch.scale import seed_scale

    app = app_for(url)  # migrates the new database and starts its chain, as `mscbatch init` does
    with app.app_context():
        report = seed_scale(app, bags, seed=SEED, progress=True)
        _bench_users(app)
    app.extensions["mscbatch.db"].engine.dispose()
    print(f"  generated {url.rsplit('/', 1)[-1]}: {report}", flush=True)


BENCH_USERS = {"bench-nurse": ["nurse"], "bench-qa": ["qa"], "bench-tech": ["technician"],
               "bench-clinician": ["clinician"]}


def _bench_users(app: Any) -> None:
    session = app.extensions["mscbatch.db"].new_session()
    try:
        for name, roles in BENCH_USERS.items():
            _bench_user(session, name, roles)
    finally:
        session.close()


def _bench_user(session: Any, name: str, roles: list[str]) -> Any:
    from mscbatch.auth.services import create_user

    return create_user(session, None, username=name, full_name=name.replace("-", " ").title(),
                       password=BENCH_PASSWORD, roles=roles, hash_profile="fast")


def _sqlite_url(bags: int) -> str:
    CACHE.mkdir(exist_ok=True)
    stem = f"sqlite-{bags}"
    path = CACHE / f"{stem}-{fingerprint()}.sqlite3"
    if not path.exists():
        for stale in CACHE.glob(f"{stem}-*.sqlite3*"):
            stale.unlink()
        partial = path.with_suffix(".partial")
        for leftover in CACHE.glob(partial.name + "*"):
            leftover.unlink()
        _generate(f"sqlite:///{partial}", bags)
        partial.rename(path)  # only a complete database gets the final name
    return f"sqlite:///{path}"


def _postgres_url(bags: int) -> str:
    name = f"{PG_PREFIX}_{bags}_{fingerprint()}"
    admin = create_engine(normalise_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    url = normalise_url(PG_ADMIN_URL).rsplit("/", 1)[0] + f"/{name}"
    try:
        with admin.connect() as connection:
            done = connection.scalar(text(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :n"), {"n": name})
            if done == "complete":
                return url
            stale = connection.scalars(text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                                       {"p": f"{PG_PREFIX}_{bags}_".replace("_", "\\_") + "%"}).all()
            for old in stale:
                connection.exec_driver_sql(f'DROP DATABASE "{old}" WITH (FORCE)')
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        _generate(url, bags)
        with admin.connect() as connection:  # marks the database complete: an interrupted run regenerates
            connection.exec_driver_sql(f"COMMENT ON DATABASE \"{name}\" IS 'complete'")
    finally:
        admin.dispose()
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")  # fresh planner statistics, as autovacuum would have by now
    engine.dispose()
    return url


def database(kind: str, bags: int) -> str:
    return _sqlite_url(bags) if kind == "sqlite" else _postgres_url(bags)


# ---- clients ----------------------------------------------------------------------------------------------

def signed_in(app: Any, username: str) -> Any:
    """A test client signed in through the login form (the real path, CSRF included)."""
    import re

    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    data = {"username": username, "password": BENCH_PASSWORD}
    if token:
        data["csrf_token"] = token.group(1)
    answer = client.post("/login", data=data)
    if answer.status_code != 302:
        raise RuntimeError(f"bench user {username} could not sign in: {answer.status_code}")
    return client


def api_token(app: Any, username: str) -> str:
    from mscbatch.auth.models import User
    from mscbatch.auth.services import create_api_token

    session = app.extensions["mscbatch.db"].new_session()
    try:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:  # a bench user added after this database was generated
            user = _bench_user(session, username, BENCH_USERS[username])
        return create_api_token(session, user, "bench")[1]
    finally:
        session.close()


@contextmanager
def opened(kind: str, bags: int) -> Iterator[Any]:
    app = app_for(database(kind, bags))
    try:
        yield app
    finally:
        app.extensions["mscbatch.db"].engine.dispose()


# ---- timing and the table -----------------------------------------------------------------------------------

def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def paired_medians(small: list[Callable[[], Any]], large: list[Callable[[], Any]], *,
                   warmup: int | None = None) -> tuple[float, float]:
    """Median seconds of the two sides, run alternately (small, large, small, ...) so that whatever else the
    machine does at a moment weighs on both sides alike.

    Every action is run once before timing (or the first `warmup`): the figures are a running unit's steady state,
    its working set in memory. Otherwise the large side's first reads of each page come from disk, and the ratio
    measures the disk and the page cache: on the development VM, where the host drops the guest's page cache
    from time to time, the lot list page measured 1.62 and 1.07 in two runs a minute apart, with the same plan."""
    for action in small[:warmup] + large[:warmup]:
        action()
    small_times, large_times = [], []
    for a, b in zip(small, large, strict=False):
        small_times.append(timed(a))
        large_times.append(timed(b))
    return statistics.median(small_times), statistics.median(large_times)


@dataclass(frozen=True)
class Row:
    database: str
    measure: str
    baseline: str
    value: float
    reference: float
    bound: float | None  # None: shown for information, no bound of the issue's
    unit: str = "ms"
    note: str = ""
    at_least: bool = False  # True when the ratio is a floor (throughput), not a ceiling (latency)

    @property
    def ratio(self) -> float:
        return self.value / self.reference if self.reference else float("inf")

    @property
    def within(self) -> bool:
        if self.bound is None:
            return True
        return self.ratio >= self.bound if self.at_least else self.ratio <= self.bound

    @property
    def verdict(self) -> tuple[str, str]:
        """(bound, verdict) columns of the table."""
        if self.bound is None:
            return "-", "info"
        return f"{'>=' if self.at_least else '<='} {self.bound}", "ok" if self.within else "OVER"


def print_table(rows: list[Row]) -> None:
    header = ("database", "measure", "vs", "measured", "reference", "ratio", "bound", "")
    lines = [header] + [(
        r.database, r.measure, r.baseline, f"{r.value * (1000 if r.unit == 'ms' else 1):.2f} {r.unit}",
        f"{r.reference * (1000 if r.unit == 'ms' else 1):.2f} {r.unit}", f"{r.ratio:.2f}", *r.verdict)
        for r in rows]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    for number, line in enumerate(lines):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if number == 0:
            print("  ".join("-" * width for width in widths))
    for r in rows:
        if r.note:
            print(f"  {r.database} {r.measure}: {r.note}")
