"""The load bound's floor, for information (no bound): bench_load's run, with the app replaced by bench/floor_app.py,
the bedside check's own statements through the bare DBAPI beside an equally bare /healthz.

bench_load measures "bedside throughput >= 0.5 x the same server's health throughput" on the app. Whatever a
faster implementation of the check saved (a path outside the ORM and Flask), the health probe beside it would be as
bare, and the load generator shares the same cores: this row is the ratio such an implementation could reach here.
It runs on a copy of the large database (the floor's rows are not the app's), made and dropped here.
"""
from __future__ import annotations

import json
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from bench import bench_load
from bench.common import PG_ADMIN_URL, Row, api_token, app_for, database, sizes
from mscbatch.auth.services import _token_holder
from mscbatch.custody.checks import _facts_statement
from mscbatch.database import normalise_url
from mscbatch.scale import matching_pairs

TARGETS = ("bedside", "health")
USER = "bench-nurse"


@contextmanager
def _copy(kind: str, url: str) -> Iterator[str]:
    """A throwaway copy of the large database."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "floor.sqlite3"
            shutil.copyfile(url.split("///", 1)[1], path)
            yield f"sqlite:///{path}"
        return
    name = url.rsplit("/", 1)[1] + "_floor"
    admin = create_engine(normalise_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{url.rsplit("/", 1)[1]}"')
        yield url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _compiled(statement: Any, dialect: Any) -> dict[str, Any]:
    compiled = statement.compile(dialect=dialect)
    return {"sql": str(compiled), "params": dict(compiled.params), "order": list(compiled.positiontup or [])}


def _setup(url: str) -> dict[str, Any]:
    """The app's own statements compiled for the copy's database, a token, the audit and label keys, and the
    (wristband, bag) pairs that MATCH."""
    app = app_for(url)
    engine = app.extensions["mscbatch.db"].engine
    session = app.extensions["mscbatch.db"].new_session()
    try:
        pairs = matching_pairs(session, 2000)
    finally:
        session.close()  # its transaction holds SQLite's write lock, which api_token needs
    try:
        with app.app_context():
            from mscbatch.audit.trail import audit_key
            from mscbatch.extensions import db

            key = audit_key(db.session).decode()
        return {"url": url, "token": _compiled(_token_holder(), engine.dialect),
                "facts": _compiled(_facts_statement(), engine.dialect), "pairs": pairs,
                "secret": api_token(app, USER), "username": USER, "audit_key": key,
                "label_key": app.config["LABEL_KEY"]}
    finally:
        engine.dispose()


def run(kind: str) -> list[Row]:
    _, large_bags = sizes()
    with _copy(kind, database(kind, large_bags)) as url, tempfile.TemporaryDirectory() as tmp:
        setup = _setup(url)
        setup_path = Path(tmp) / "floor.json"
        setup_path.write_text(json.dumps(setup, default=str))
        load_path = Path(tmp) / "load.json"  # what the locustfile reads
        load_path.write_text(json.dumps({"token": setup["secret"], "pairs": setup["pairs"]}))
        port = bench_load._free_port()
        server = bench_load._serve(url, port, app="bench.floor_app:app", extra_env={"FLOOR_SETUP": str(setup_path)})
        try:
            workers = bench_load._children(server.pid)
            count, block = bench_load.blocks()
            runs: dict[str, list[dict[str, Any]]] = {target: [] for target in TARGETS}
            for target in bench_load.turns(count, TARGETS):
                runs[target].append(bench_load._locust(port, target, load_path, Path(tmp), workers, kind, block))
            bedside, health = (bench_load._endpoint(runs[target], kind) for target in TARGETS)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    errors = int(bedside["failures"] + health["failures"])
    note = (f"the same load on bench/floor_app.py (bare DBAPI and WSGI, not the product): "
            f"{bench_load._summary('bedside', bedside)}; {bench_load._summary('healthz', health)}; errors {errors}"
            f"\n    floor bedside {bedside['cpu']}\n    floor healthz {health['cpu']}")
    return [Row(kind, "load floor: bare bedside throughput", "bare healthz throughput",
                0.0 if errors else bedside["rps"], health["rps"], None, unit="req/s", at_least=True,
                note=note + (" (ERRORS)" if errors else ""))]
