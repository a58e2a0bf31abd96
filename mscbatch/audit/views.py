"""The read-only audit viewer, filtered by record, user and date. The dates are the site's calendar days
(config/site.toml's time zone, as on every other page): "5 December" in Paris runs from local midnight to the next,
23:00 UTC on the 4th to 23:00 UTC on the 5th in winter; UTC days would drop the first local hour and take an hour
of the 6th. The instants listed stay in UTC (the record's own words). QA sees every value; the administrator sees
every change, who made it and when, with the values a role of theirs may not read masked (patients' records and
identity, donors' identity: mscbatch.interop.privacy, the rule the evidence bundle follows). A hidden value (a
password hash: `__audit_exclude__`, kept in the trail as a keyed digest) is shown to no one: "(hidden)"."""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any

from flask import Blueprint, render_template, request
from flask_login import current_user
from sqlalchemy import select

from mscbatch.audit.models import AuditEvent
from mscbatch.audit.trail import HIDDEN, HIDDEN_PREFIX, is_hidden
from mscbatch.auth.access import roles_required
from mscbatch.core.bounds import MAX_SEQ, filter_day, keyset
from mscbatch.extensions import db
from mscbatch.interop.privacy import AuditMask
from mscbatch.site import site_config

bp = Blueprint("audit", __name__)
PAGE_SIZE = 50


def _date(name: str, label: str, errors: dict[str, str]) -> tuple[date | None, str]:
    """The day typed in filter `name` (None when empty), and the text typed; a text that is no day is an error
    named beside the field, never a filter silently dropped."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None, raw
    try:
        return date.fromisoformat(raw), raw
    except ValueError:
        errors[name] = f"{label}: not a date (YYYY-MM-DD)."
        return None, raw


def site_midnight(day: date) -> datetime:
    """The instant (UTC) the site's calendar day `day` begins: its local midnight. A midnight the clocks skip or
    repeat is read as its first occurrence (fold=0), the earliest instant of that day."""
    return datetime.combine(day, time(), site_config().tz).astimezone(UTC)


@cache
def _hidden_fields() -> dict[str, tuple[re.Pattern[str], frozenset[str]]]:
    """Per audited table with hidden fields: a pattern of those fields' digests in a row snapshot, and the fields."""
    from mscbatch.audit.reconcile import audited_models

    found = {}
    for model in audited_models():
        fields = frozenset(model.__audit_exclude__)
        if fields:
            names = "|".join(re.escape(name) for name in sorted(fields))
            found[model.__tablename__] = (re.compile(f'"({names})":"{re.escape(HIDDEN_PREFIX)}[0-9a-f]{{64}}"'),
                                          fields)
    return found


def displayed(entity_type: str, field: str | None, value: str | None) -> str | None:
    """An event's old or new value with each hidden value's digest shown as "(hidden)": a hidden field's value, or
    the hidden fields of an insert or delete event's row snapshot."""
    hidden = _hidden_fields().get(entity_type)
    if value is None or hidden is None or HIDDEN_PREFIX not in value:
        return value
    pattern, fields = hidden
    if field is not None:
        return HIDDEN if field in fields and is_hidden(value) else value
    return pattern.sub(lambda found: f'"{found.group(1)}":"{HIDDEN}"', value)


@bp.route("/audit")
@roles_required("qa", "admin")
def events() -> Any:
    query = select(AuditEvent)
    filters = {k: request.args.get(k, "").strip() for k in ("entity_type", "entity_id", "actor")}
    errors: dict[str, str] = {}
    (start, start_typed), (end, end_typed) = _date("from", "From", errors), _date("to", "To", errors)
    if errors:  # a filter that cannot be applied: nothing listed, the field's error said beside it
        return render_template("audit/events.html", events=[], masked=False, filters=filters, errors=errors,
                               typed={"from": start_typed, "to": end_typed}, next_before=None, older={}), 422
    if filters["entity_type"]:
        query = query.where(AuditEvent.entity_type == filters["entity_type"])
    if filters["entity_id"]:
        query = query.where(AuditEvent.entity_id == filters["entity_id"])
    if filters["actor"]:
        query = query.where(AuditEvent.actor_name == filters["actor"].lower())
    start, end = filter_day(start), filter_day(end)
    # the site's days: from the first day's local midnight to the local midnight after the last, excluded
    since = site_midnight(start) if start else None
    until = site_midnight(end + timedelta(days=1)) if end else None
    if since:
        query = query.where(AuditEvent.occurred_at >= since)
    if until:
        query = query.where(AuditEvent.occurred_at < until)
    before = keyset(request.args.get("before", type=int), MAX_SEQ)
    if before:
        query = query.where(AuditEvent.seq < before)
    rows = db.session.scalars(query.order_by(AuditEvent.seq.desc()).limit(PAGE_SIZE + 1)).all()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    mask = AuditMask.for_reader(current_user)
    cases = mask.patient_cases(db.session, rows)  # events carrying a patient use case's reason
    shown = [{"event": e,
              "old": mask.value(e.entity_type, e.field, displayed(e.entity_type, e.field, e.old_value),
                                patient_case=e.seq in cases),
              "new": mask.value(e.entity_type, e.field, displayed(e.entity_type, e.field, e.new_value),
                                patient_case=e.seq in cases),
              "reason": mask.reason(e.entity_type, e.reason, action=e.action, patient_case=e.seq in cases)}
             for e in rows]
    typed = {"from": start.isoformat() if start else "", "to": end.isoformat() if end else ""}
    # the next page keeps every filter, the dates included
    older = {**{name: value for name, value in filters.items() if value}, **{k: v for k, v in typed.items() if v}}
    return render_template("audit/events.html", events=shown, masked=mask.patient_records or bool(mask.identity_of),
                           filters=filters, errors={}, typed=typed, older=older, since=since, until=until,
                           next_before=rows[-1].seq if more and rows else None)
