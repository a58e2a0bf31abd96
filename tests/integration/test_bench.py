"""`make bench` keeps working: the whole benchmark run at a toy scale, on SQLite and PostgreSQL.

Ratios at this scale mean nothing and are not asserted (figures come from `make bench` at full scale, see
README "Performance"); this test fails when a benchmark crashes, a measured request does not answer what it
must (every bedside check MATCHES, every page 200), or a measure disappears from the table.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from mscbatch.database import normalise_url
from tests.conftest import POSTGRES_URL, missing

ROOT = Path(__file__).resolve().parents[2]
MEASURES = ("bedside check", "lookback from a donor", "backward trace from a patient", "lot list page",
            "audit verify", "load: bedside throughput")


def test_the_benchmarks_run_end_to_end_on_both_databases(tmp_path: Path) -> None:
    if not POSTGRES_URL:
        missing("PostgreSQL (set MSCBATCH_TEST_POSTGRES_URL)")
    prefix = f"mscbatch_benchtest_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "MSCBATCH_BENCH_SCALE": "0.001", "MSCBATCH_BENCH_LOAD_SECONDS": "6",
           "MSCBATCH_BENCH_DIR": str(tmp_path), "MSCBATCH_BENCH_PG_PREFIX": prefix,
           "MSCBATCH_BENCH_POSTGRES_URL": POSTGRES_URL}
    try:
        done = subprocess.run([sys.executable, "-m", "bench"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=600)
    finally:
        admin = create_engine(normalise_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            for name in connection.scalars(text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                                           {"p": prefix + "%"}).all():
                connection.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.dispose()
    output = done.stdout + done.stderr
    assert done.returncode in (0, 1), output  # 1 = a ratio out of bound: meaningless at 50 bags
    assert "Traceback" not in output, output
    table = done.stdout.split("measures in", 1)[1]
    for kind in ("sqlite", "postgresql"):
        for measure in MEASURES:
            assert any(line.startswith(kind) and measure in line for line in table.splitlines()), (kind, measure,
                                                                                                     table)
    assert "labels: 100-bag lot PDF" in table
    assert "peak worker memory" in table
    # where the load runs' CPU went, per request, for both endpoints on both databases (bench/cpu.py)
    assert table.count("CPU per request: workers") == 6 + 4, table  # bedside, weight, healthz; the floor's two
    assert table.count("PostgreSQL") >= 3, table
    # the same-shape reference (an audited write), shown for information: no bound, never OVER
    for kind in ("sqlite", "postgresql"):
        assert any(line.startswith(kind) and "audited write throughput" in line and line.rstrip().endswith("info")
                   for line in table.splitlines()), (kind, table)
    # the load bound's floor (bench_floor: the check's statements through the bare DBAPI), for information
    for kind in ("sqlite", "postgresql"):
        assert any(line.startswith(kind) and "load floor: bare bedside throughput" in line
                   and line.rstrip().endswith("info") for line in table.splitlines()), (kind, table)
    assert table.count("errors 0") == 4 + 2, table
    # a 6-second smoke run is one block per endpoint (bench_load.blocks); the note names the blocks it ran
    assert table.count("1 x 6 s x 20 clients, 2 workers") == 2, table
