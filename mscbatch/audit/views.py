"""The read-only audit viewer, filtered by record, user and date. QA sees every value; the administrator sees
every change, who made it and when, with the values a role of theirs may not read masked (patients' records and
identity, donors' identity: mscbatch.interop.privacy, the rule the evidence bundle follows)."""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, render_template, request
from flask_login import current_user
from sqlalchemy import select

from mscbatch.audit.models import AuditEvent
from mscbatch.auth.access import roles_required
from mscbatch.core.bounds import MAX_SEQ, filter_day, keyset
from mscbatch.extensions import db
from mscbatch.interop.privacy import AuditMask

bp = Blueprint("audit", __name__)
PAGE_SIZE = 50


def _date(name: str) -> date | None:
    raw = request.args.get(name, "").strip()
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


@bp.route("/audit")
@roles_required("qa", "admin")
def events() -> Any:
    query = select(AuditEvent)
    filters = {k: request.args.get(k, "").strip() for k in ("entity_type", "entity_id", "actor")}
    if filters["entity_type"]:
        query = query.where(AuditEvent.entity_type == filters["entity_type"])
    if filters["entity_id"]:
        query = query.where(AuditEvent.entity_id == filters["entity_id"])
    if filters["actor"]:
        query = query.where(AuditEvent.actor_name == filters["actor"].lower())
    start, end = filter_day(_date("from")), filter_day(_date("to"))
    if start:
        query = query.where(AuditEvent.occurred_at >= datetime.combine(start, time(), UTC))
    if end:
        query = query.where(AuditEvent.occurred_at < datetime.combine(end + timedelta(days=1), time(), UTC))
    before = keyset(request.args.get("before", type=int), MAX_SEQ)
    if before:
        query = query.where(AuditEvent.seq < before)
    rows = db.session.scalars(query.order_by(AuditEvent.seq.desc()).limit(PAGE_SIZE + 1)).all()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    mask = AuditMask.for_reader(current_user)
    shown = [{"event": e, "old": mask.value(e.entity_type, e.field, e.old_value),
              "new": mask.value(e.entity_type, e.field, e.new_value), "reason": mask.reason(e.entity_type, e.reason)}
             for e in rows]
    return render_template("audit/events.html", events=shown, masked=mask.patient_records or bool(mask.identity_of),
                           filters=filters, start=start, end=end,
                           next_before=rows[-1].seq if more and rows else None)
