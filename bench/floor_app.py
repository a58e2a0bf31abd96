"""The load bound's floor (bench_floor.py): the bedside check's own statements through the bare DBAPI in a bare WSGI
app, beside an equally bare /healthz. NOT the product: no Flask, no ORM, no sign-in rules, no judge (pure, about
0.05 ms a check), no second-person or audit hooks. It answers one question for the product owner: what the ratio
"bedside throughput / health throughput" can reach on this machine with this schema, whatever the implementation.

Per check, as the app does it: the token's holder (the app's own statement, compiled), the check's facts (the app's
own one statement, compiled), then one write transaction: the check's row, the audit chain's head read (FOR UPDATE
on PostgreSQL), the event with its HMAC hash, the head moved with its MAC, COMMIT. SQLite writes begin with the
app's own BEGIN IMMEDIATE polling (mscbatch.database.begin_immediate). Setup: bench_floor writes FLOOR_SETUP.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from mscbatch.core.audit_chain import canonical_json, event_hash, head_mac
from mscbatch.core.dosing import window_start_before
from mscbatch.custody.checks import scan_reference
from mscbatch.database import begin_immediate
from mscbatch.patients.queries import wristband_identity

SETUP: dict[str, Any] = json.loads(open(os.environ["FLOOR_SETUP"]).read()) if os.environ.get("FLOOR_SETUP") else {}
POSTGRES = str(SETUP.get("url", "")).startswith("postgresql")
_connection: Any = None


def _connect() -> Any:
    """One connection per worker, opened after the fork."""
    global _connection
    if _connection is None:
        if POSTGRES:
            import psycopg

            _connection = psycopg.connect(SETUP["url"].replace("postgresql+psycopg://", "postgresql://"))
        else:
            import sqlite3

            _connection = sqlite3.connect(SETUP["url"].split("///", 1)[1], isolation_level=None)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
                _connection.execute(f"PRAGMA {pragma}")
    return _connection


def _statement(name: str, **inputs: Any) -> tuple[str, Any]:
    """An app statement compiled by bench_floor, with its inputs: named (psycopg) or in order (sqlite3)."""
    spec = SETUP[name]
    params = {**spec["params"], **{k: v if POSTGRES or not isinstance(v, datetime) else str(v)
                                   for k, v in inputs.items()}}
    return spec["sql"], params if POSTGRES else [params[k] for k in spec["order"]]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _answer(start_response: Callable[..., Any], status: str, body: dict[str, Any]) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def _end(connection: Any, commit: bool) -> None:
    if POSTGRES:
        connection.commit() if commit else connection.rollback()
    else:
        connection.execute("COMMIT" if commit else "ROLLBACK")


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    connection = _connect()
    if environ["PATH_INFO"] == "/healthz":  # the app's probe reads the chain's head: the same row here
        connection.execute("SELECT last_seq FROM audit_head WHERE id = 1").fetchall()
        if POSTGRES:
            connection.rollback()
        return _answer(start_response, "200 OK", {"status": "ok", "database": "ok"})
    body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
    secret = environ.get("HTTP_AUTHORIZATION", "").partition(" ")[2].strip()
    now = _now()
    if not POSTGRES:
        connection.execute("BEGIN")  # deferred: the reads take no write lock, as the app's reading()
    holder = connection.execute(*_statement("token", digest=hashlib.sha256(secret.encode()).hexdigest(),
                                            now=now)).fetchone()
    reference, _problem = scan_reference(body.get("bag", ""), SETUP["label_key"])
    facts = connection.execute(*_statement("facts", din=(reference or "")[:13], since=window_start_before(now),
                                           wristband=wristband_identity(body.get("wristband")))).fetchone()
    _end(connection, commit=True)
    if holder is None or facts is None:
        return _answer(start_response, "422 UNPROCESSABLE ENTITY", {"title": "unknown token or bag"})
    user_id, bag_id = holder[0], facts[0]
    if not POSTGRES:
        begin_immediate(connection)
    marker = "%s" if POSTGRES else "?"
    check = dict(bag_id=bag_id, patient_id=None, wristband_scan=body["wristband"][:120], bag_scan=body["bag"][:600],
                 result="matches", failures_json="[]", notes_json="[]", checked_by_id=user_id, checked_at=now)
    check_id = connection.execute(f"INSERT INTO two_person_check ({', '.join(check)}) VALUES "
                                  f"({', '.join([marker] * len(check))}) RETURNING id",
                                  [str(v) if isinstance(v, datetime) and not POSTGRES else v
                                   for v in check.values()]).fetchone()[0]
    last_seq, last_hash = connection.execute("SELECT last_seq, last_hash FROM audit_head WHERE id = 1"
                                             + (" FOR UPDATE" if POSTGRES else "")).fetchone()
    event = dict(seq=last_seq + 1, occurred_at=now, actor_id=user_id, actor_name=SETUP["username"], action="insert",
                 entity_type="two_person_check", entity_id=str(check_id), field=None, old_value=None,
                 new_value=canonical_json(dict(check, id=check_id)), reason="Bedside check scanned: MATCHES",
                 prev_hash=last_hash)
    event["hash"] = event_hash(SETUP["audit_key"].encode(), last_hash, event)
    head = [event["seq"], event["hash"], head_mac(SETUP["audit_key"].encode(), event["seq"], event["hash"])]
    row = [str(v) if isinstance(v, datetime) and not POSTGRES else v for v in event.values()]
    insert_event = f"INSERT INTO audit_event ({', '.join(event)}) VALUES ({', '.join([marker] * len(event))})"
    if POSTGRES:  # one round trip, as the app's append_events on PostgreSQL
        connection.execute("WITH moved AS (UPDATE audit_head SET last_seq = %s, last_hash = %s, mac = %s "
                           "WHERE id = 1) " + insert_event, head + row)
    else:
        connection.execute(insert_event, row)
        connection.execute("UPDATE audit_head SET last_seq = ?, last_hash = ?, mac = ? WHERE id = 1", head)
    _end(connection, commit=True)
    return _answer(start_response, "200 OK", {
        "result": "MATCHES", "matches": True, "check_id": check_id, "failures": [], "notes": [], "bag_id": bag_id,
        "din": reference, "patient_code": None, "post_thaw_deadline": None, "give_ml": None})
