"""A WARNING log line for each refused login, refused signature, refused infusion start and bedside STOP, once it
is committed.

Listeners, not calls in the services: the audit trail's inserts are watched for the refusal actions and for
the insert event of a bedside check answered STOP (the check's record is written with Core, past the mapper's
events: mscbatch.audit.trail.insert_audited). The lines are held on the database connection until its
transaction commits (a rolled-back refusal was never recorded, so it is not logged either). Only the action,
the record and the reason are logged: never what was typed (an unknown user name may be a password typed in
the wrong field).
"""
from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.dml import Insert

from mscbatch.custody.infusions import START_REFUSALS
from mscbatch.custody.models import TwoPersonCheck

SECURITY = logging.getLogger("mscbatch.security")
CHECKS = TwoPersonCheck.__tablename__
AUDITED_REFUSALS = frozenset({"login_failed", "login_refused", "signature_refused", "second_person_refused",
                              "infusion_start_refused", "password_change_refused", "api_token_refused"})
_PENDING = "mscbatch.security_pending"


def _hold(connection: Connection, action: str, message: str, **fields: Any) -> None:
    connection.info.setdefault(_PENDING, []).append((action, message, fields))


def _audit_insert(connection: Connection, statement: Any, multiparams: Any, params: Any, _options: Any,
                  _result: Any) -> None:
    if not isinstance(statement, Insert) or getattr(statement.table, "name", None) != "audit_event":
        return
    rows = multiparams if multiparams else [params]
    for row in rows:
        if not isinstance(row, dict):
            continue
        if row.get("action") in AUDITED_REFUSALS:
            action = row["action"]
            record = f"{row.get('entity_type')} {row.get('entity_id') or '-'}"
            reason = _loggable_reason(action, row)
            _hold(connection, action, f"{action}: {record} ({reason or 'no reason given'})",
                  entity_type=row.get("entity_type"), entity_id=row.get("entity_id"), reason=reason,
                  actor=row.get("actor_name"), audit_seq=row.get("seq"))
        elif row.get("action") == "insert" and row.get("entity_type") == CHECKS:
            _check_recorded(connection, row["entity_id"], json.loads(row["new_value"]))


def _loggable_reason(action: str, row: dict[str, Any]) -> str | None:
    """The event's reason, except where it names patients: a refused start's words name the patients of the check
    and of the wristband ("prescribed for patient SLE-UC-004, not for SLE-UC-001"), and the log is read by whoever
    runs the servers, who may not read patients (interop.privacy masks the same reason in the audit viewer). Its
    kind is logged instead, in the words the monitoring page uses."""
    if action != "infusion_start_refused":
        return row.get("reason")
    try:
        refusal = json.loads(row.get("new_value") or "{}").get("refusal")
    except (ValueError, AttributeError):
        refusal = None
    return START_REFUSALS.get(refusal, "refused") if isinstance(refusal, str) else "refused"


def _check_recorded(connection: Connection, check_id: str, check: dict[str, Any]) -> None:
    """A bedside check's insert event: its snapshot holds every column as stored (JSON values as text)."""
    if check.get("result") != "stop":
        return
    codes = [failure.get("code") for failure in json.loads(check.get("failures_json") or "[]")]
    _hold(connection, "bedside_refused", f"bedside_refused: {CHECKS} {check_id} ({', '.join(codes)})",
          entity_type=CHECKS, entity_id=check_id, reason=", ".join(codes), failures=codes,
          bag_id=_number(check.get("bag_id")), checked_by_id=_number(check.get("checked_by_id")))


def _number(value: Any) -> int | None:
    return None if value is None else int(value)


def _committed(connection: Connection) -> None:
    for action, message, fields in connection.info.pop(_PENDING, []):
        SECURITY.warning(message, extra={"action": action, **fields})


def _rolled_back(connection: Connection) -> None:
    connection.info.pop(_PENDING, None)


def install(engine: Engine) -> None:
    """Listen on the app's engine (idempotent)."""
    for name, listener in (("after_execute", _audit_insert), ("commit", _committed), ("rollback", _rolled_back)):
        if not event.contains(engine, name, listener):
            event.listen(engine, name, listener)
