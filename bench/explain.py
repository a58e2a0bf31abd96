"""`python -m bench.explain`: the query plans behind the benchmarked requests, for README "Performance".

Runs one bedside check, one lot list page, one donor lookback and one patient trace against the large
benchmark database, records every SELECT they send (with its parameters) and prints the database's plan for
each: EXPLAIN QUERY PLAN on SQLite, EXPLAIN on PostgreSQL. A plan line with "SCAN <table>" (SQLite) or "Seq Scan"
(PostgreSQL) on a big table would be the row-count-dependent step the ratios would expose.
"""
from __future__ import annotations

import sys
from typing import Any

from sqlalchemy import event, select

from bench.common import api_token, opened, signed_in, sizes
from mscbatch.lots.models import Lot
from mscbatch.patients.models import Allocation
from mscbatch.scale import matching_pairs


def _requests(app: Any) -> dict[str, Any]:
    session = app.extensions["mscbatch.db"].new_session()
    try:
        wristband, bag = matching_pairs(session, 1)[0]
        donor_id = session.scalar(select(Lot.donor_id).order_by(Lot.id.desc()).limit(1))
        patient_id = session.scalar(select(Allocation.patient_id).order_by(Allocation.id.desc()).limit(1))
        middle = (session.scalar(select(Lot.id).order_by(Lot.id.desc()).limit(1)) or 2) // 2
    finally:
        session.close()
    nurse = {"Authorization": f"Bearer {api_token(app, 'bench-nurse')}"}
    qa, tech = signed_in(app, "bench-qa"), signed_in(app, "bench-tech")
    api = app.test_client()
    return {
        "bedside check": lambda: api.post("/api/v1/custody/scan-verify", json={"wristband": wristband, "bag": bag},
                                          headers=nurse),
        "lot list page": lambda: tech.get(f"/lots?status=released&before={middle}"),
        "lookback from a donor": lambda: qa.get(f"/trace/donors/{donor_id}"),
        "backward trace from a patient": lambda: qa.get(f"/trace/patients/{patient_id}"),
    }


def explain(kind: str) -> None:
    with opened(kind, sizes()[1]) as app:
        engine = app.extensions["mscbatch.db"].engine
        for name, request in _requests(app).items():
            seen: list[tuple[str, Any]] = []

            def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
                       _many: bool, seen: list[tuple[str, Any]] = seen) -> None:
                if statement.lstrip().upper().startswith("SELECT") and "EXPLAIN" not in statement:
                    seen.append((statement, parameters))

            event.listen(engine, "before_cursor_execute", record)
            try:
                request()
            finally:
                event.remove(engine, "before_cursor_execute", record)
            print(f"\n=== {kind}: {name} ({len(seen)} SELECTs)")
            prefix = "EXPLAIN QUERY PLAN " if kind == "sqlite" else "EXPLAIN "
            with engine.connect() as connection:
                for statement, parameters in seen:
                    first_line = " ".join(statement.split())[:110]
                    print(f"-- {first_line}")
                    raw = connection.connection.driver_connection
                    cursor = raw.cursor()
                    cursor.execute(prefix + statement, parameters)
                    for row in cursor.fetchall():
                        print("   ", row[-1] if kind == "sqlite" else row[0])
                    cursor.close()


if __name__ == "__main__":
    for kind in sys.argv[1:] or ["sqlite", "postgresql"]:
        explain(kind)
