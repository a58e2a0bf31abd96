"""The read-only audit viewer, filtered by record, user and date. The dates are the site's calendar days
(config/site.toml's time zone, as on every other page): "5 December" in Paris runs from local midnight to the next,
23:00 UTC on the 4th to 23:00 UTC on the 5th in winter; UTC days would drop the first local hour and take an hour
of the 6th. Each instant is listed in the site's time with UTC beside it, as on every other page. QA sees every
value; the administrator sees every change, who made it and when, with the values a role of theirs may not read
masked (patients' records and identity, donors' identity: mscbatch.interop.privacy, the rule the evidence bundle
follows). A hidden value (a password hash: `__audit_exclude__`, kept in the trail as a keyed digest) is shown to no
one: "(hidden)". The chain is verified here as `mscbatch audit verify` does, and the filtered events export as CSV."""
from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any

from flask import Blueprint, Response, current_app, redirect, render_template, request, session, url_for
from flask_login import current_user
from sqlalchemy import exists, select

from mscbatch.audit import checkpoints
from mscbatch.audit import queries as trail_queries
from mscbatch.audit.models import AuditEvent
from mscbatch.audit.trail import HIDDEN, HIDDEN_PREFIX, is_hidden
from mscbatch.audit.verify import verify_checkpoints, verify_database, verify_signatures
from mscbatch.audit.words import NAMED_TYPES, known_name, record_type_words
from mscbatch.auth.access import roles_required
from mscbatch.core.bounds import MAX_SEQ, filter_day, keyset
from mscbatch.extensions import db
from mscbatch.interop.csv_exports import cell
from mscbatch.interop.privacy import AuditMask, may_read_patients
from mscbatch.site import local_parts, site_config

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


#: the days a filter may name: the trail holds nothing older than this software, and a year typed as 0001 or 9999
#: is a slip of the keyboard, said beside its field rather than silently moved to the nearest day the database takes
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2099, 12, 31)
#: a value longer than this is folded (its first characters shown, the whole value one click away): a row's JSON
#: snapshot filled the New column and made a page of 50 events 20 000 px tall
FOLD_AFTER = 80
def record_types_present(session: Any) -> list[tuple[str, str]]:
    """(type, words) of each record type the trail holds, by its words: one query of a few index probes (the
    entity index leads with the type), not a scan of a trail of millions of events."""
    from mscbatch.audit.reconcile import audited_models
    from mscbatch.backup import RESTORED_ENTITY

    names = sorted({model.__tablename__ for model in audited_models()} | {RESTORED_ENTITY})
    found = session.execute(select(*[exists().where(AuditEvent.entity_type == name) for name in names])).one()
    return sorted(((name, record_type_words(name)) for name, held in zip(names, found, strict=True) if held),
                  key=lambda pair: pair[1])


def _filtered(errors: dict[str, str]) -> tuple[Any, dict[str, str], dict[str, str], datetime | None,
                                               datetime | None]:
    """The query of the events the filter asks for, the filters and the days as typed, and the UTC span; `errors`
    gets each field that cannot be applied (then the query is None)."""
    filters = {k: request.args.get(k, "").strip() for k in ("entity_type", "entity_id", "actor", "action", "lot",
                                                             "donor")}
    (start, start_typed), (end, end_typed) = _date("from", "From", errors), _date("to", "To", errors)
    for name, label, day in (("from", "From", start), ("to", "To", end)):
        if day is not None and not EARLIEST_DAY <= day <= LATEST_DAY:
            errors[name] = (f"{label}: {day.isoformat()} is not a day the trail can hold: type a day from "
                            f"{EARLIEST_DAY.isoformat()} to {LATEST_DAY.isoformat()}.")
    if start and end and not errors and end < start:
        errors["to"] = (f"To ({end.isoformat()}) is before From ({start.isoformat()}): To must be the same day as "
                        "From or a later one.")
    typed = {"from": start_typed, "to": end_typed}
    if filters["action"] and filters["action"] not in trail_queries.actions_present(db.session):
        errors["action"] = (f"Action: no event of the trail has the action {filters['action']!r}: choose one from the "
                            "list, or any action.")
    entity_id = filters["entity_id"]
    if entity_id:  # the id, or the record's own name (a lot's number, a bag's DIN...) resolved to it
        entity_id, problem = trail_queries.resolve_record(db.session, filters["entity_type"], entity_id,
                                                          may_read_patients=may_read_patients(current_user))
        if problem:
            errors["entity_id"] = problem
    lot_id = None
    if filters["lot"]:
        lot_id, problem = trail_queries.lot_named(db.session, filters["lot"])
        if problem:
            errors["lot"] = problem
    donor_id = None
    if filters["donor"]:
        donor_id, problem = trail_queries.donor_named(db.session, filters["donor"])
        if problem:
            errors["donor"] = problem
    if errors:
        return None, filters, typed, None, None
    query = select(AuditEvent)
    if filters["entity_type"]:
        query = query.where(AuditEvent.entity_type == filters["entity_type"])
    if entity_id:
        query = query.where(AuditEvent.entity_id == entity_id)
    if filters["actor"]:
        query = query.where(trail_queries.actor_clause(db.session, filters["actor"]))
    if filters["action"]:
        query = query.where(AuditEvent.action == filters["action"])
    if lot_id is not None:  # the lot and everything of it
        query = query.where(trail_queries.records_clause(trail_queries.lot_records(db.session, lot_id)))
    if donor_id is not None:  # the donor and everything of it (its lots: their own whole trail)
        query = query.where(trail_queries.records_clause(trail_queries.donor_records(db.session, donor_id)))
    start, end = filter_day(start), filter_day(end)
    # the site's days: from the first day's local midnight to the local midnight after the last, excluded
    since = site_midnight(start) if start else None
    until = site_midnight(end + timedelta(days=1)) if end else None
    if since:
        query = query.where(AuditEvent.occurred_at >= since)
    if until:
        query = query.where(AuditEvent.occurred_at < until)
    typed = {"from": start.isoformat() if start else "", "to": end.isoformat() if end else ""}
    return query, filters, typed, since, until


def known_names(session: Any, rows: list[AuditEvent]) -> dict[tuple[str, str], str]:
    """(record type, id) -> the name users know the record by (audit.words.known_name), for the bags, donors, lots
    and recalls of a page of events: "bag 24" alone told a reviewer nothing; its DIN as the label prints it does.
    One query per such type on the page."""
    from mscbatch.audit.reconcile import audited_models

    wanted: dict[str, set[int]] = {}
    for e in rows:
        if e.entity_type in NAMED_TYPES and (e.entity_id or "").isdigit():
            wanted.setdefault(e.entity_type, set()).add(int(e.entity_id))
    models = {model.__tablename__: model for model in audited_models()}
    names: dict[tuple[str, str], str] = {}
    for entity_type, ids in wanted.items():
        model = models.get(entity_type)
        for record in session.scalars(select(model).where(model.id.in_(ids))) if model is not None else ():
            name = known_name(entity_type, record)
            if name:
                names[entity_type, str(record.id)] = name
    return names


def _shown(rows: list[AuditEvent], mask: AuditMask) -> list[dict[str, Any]]:
    cases = mask.patient_cases(db.session, rows)  # events carrying a patient use case's reason
    known = known_names(db.session, rows)
    # the site's time first, as every page, and the full UTC instant beside it with its own date (the trail's own
    # value: the UTC day differs from the local one around midnight)
    return [{"event": e, "record_type": record_type_words(e.entity_type), "local": local_parts(e.occurred_at, True)[0],
             "known_as": known.get((e.entity_type, e.entity_id or "")),
             "old": mask.value(e.entity_type, e.field, displayed(e.entity_type, e.field, e.old_value),
                               patient_case=e.seq in cases),
             "new": mask.value(e.entity_type, e.field, displayed(e.entity_type, e.field, e.new_value),
                               patient_case=e.seq in cases),
             "reason": mask.reason(e.entity_type, e.reason, action=e.action, patient_case=e.seq in cases)}
            for e in rows]


def _page(status: int = 200, **context: Any) -> Any:
    context.setdefault("events", [])
    context.setdefault("errors", {})
    context.setdefault("verdict", None)
    for name in ("since", "until", "next_before"):
        context.setdefault(name, None)
    actions = [(action, trail_queries.action_words(action)) for action in trail_queries.actions_present(db.session)]
    return render_template("audit/events.html", record_types=record_types_present(db.session), fold=FOLD_AFTER,
                           actions=actions, **context), status


@bp.route("/audit")
@roles_required("qa", "admin")
def events() -> Any:
    errors: dict[str, str] = {}
    query, filters, typed, since, until = _filtered(errors)
    if errors:  # a filter that cannot be applied: nothing listed, the field's error said beside it
        return _page(422, masked=False, filters=filters, errors=errors, typed=typed, older={})
    verdict = session.pop(VERDICT_KEY, None)  # of a verification just run (verify), said once above the events
    before = keyset(request.args.get("before", type=int), MAX_SEQ)
    if before:
        query = query.where(AuditEvent.seq < before)
    rows = db.session.scalars(query.order_by(AuditEvent.seq.desc()).limit(PAGE_SIZE + 1)).all()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    mask = AuditMask.for_reader(current_user)
    # the next page keeps every filter, the dates included
    older = {**{name: value for name, value in filters.items() if value}, **{k: v for k, v in typed.items() if v}}
    return _page(events=_shown(rows, mask), masked=mask.patient_records or bool(mask.identity_of), filters=filters,
                 typed=typed, older=older, since=since, until=until, verdict=verdict,
                 next_before=rows[-1].seq if more and rows else None)


#: the session's place for a verification's verdict between its POST and the page that says it
VERDICT_KEY = "audit_chain_verdict"
CSV_COLUMNS = ("seq", "occurred_at_utc", "actor", "action", "record_type", "record_id", "field", "old_value",
               "new_value", "reason")


@bp.route("/audit/events.csv")
@roles_required("qa", "admin")
def events_csv() -> Any:
    """The events the filter lists, every page of them, oldest first, as the reader's role may read them (the same
    masks as the page)."""
    errors: dict[str, str] = {}
    query, filters, typed, _since, _until = _filtered(errors)
    if errors:
        return _page(422, masked=False, filters=filters, errors=errors, typed=typed, older={})
    mask = AuditMask.for_reader(current_user)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    after = 0
    while True:  # in chunks by seq: a trail of millions of events is never held whole as objects
        rows = db.session.scalars(query.where(AuditEvent.seq > after).order_by(AuditEvent.seq).limit(1000)).all()
        if not rows:
            break
        for shown in _shown(list(rows), mask):
            e = shown["event"]
            writer.writerow([cell(value) for value in (
                e.seq, e.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), e.actor_name, e.action,
                e.entity_type, e.entity_id, e.field, shown["old"], shown["new"], shown["reason"])])
        after = rows[-1].seq
        db.session.expunge_all()
    response = Response(buffer.getvalue().encode("utf-8"), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = 'attachment; filename="audit-events.csv"'
    return response


def chain_verdict() -> dict[str, Any]:
    """What `mscbatch audit verify` finds, in the same order (the chain, the signatures' seals, then the checkpoint
    file), in words."""
    key = current_app.config["AUDIT_KEY"]
    verdict = verify_database(db.session, key)
    if not verdict.ok:
        return {"ok": False, "checked": verdict.events_checked,
                "words": f"The audit trail is BROKEN at event {verdict.first_bad_seq}: {verdict.problem}. "
                         f"{verdict.events_checked} events were verified before it."}
    signed = verify_signatures(db.session, key)
    signed_words = (f"{signed.signatures_checked} electronic signature{'' if signed.signatures_checked == 1 else 's'}"
                    " verified")
    broken_signatures = (f"The electronic signatures are BROKEN: {signed.problem()}. This is a data integrity incident: "
                         f"tell QA. {signed.signatures_checked} signatures checked; the audit chain itself verified "
                         f"({verdict.events_checked} events).")
    path = checkpoints.configured_file(current_app.config)
    lines = checkpoints.read_lines(path)
    if lines is None:
        if not signed.ok:
            return {"ok": False, "checked": verdict.events_checked, "words": broken_signatures}
        return {"ok": True, "checked": verdict.events_checked,
                "words": f"The audit trail is intact: {verdict.events_checked} events verified, each linked to the "
                         f"one before it (no checkpoint file to compare with); {signed_words}."}
    held = verify_checkpoints(db.session, key, lines, verdict.events_checked)
    if not held.ok:
        return {"ok": False, "checked": verdict.events_checked,
                "words": f"The audit trail is BROKEN: {held.problem} (checkpoint file {path.name}). "
                         f"{verdict.events_checked} events of the chain itself verified."
                         + ("" if signed.ok else " " + broken_signatures)}
    if not signed.ok:
        return {"ok": False, "checked": verdict.events_checked, "words": broken_signatures}
    return {"ok": True, "checked": verdict.events_checked,
            "words": f"The audit trail is intact: {verdict.events_checked} events verified, each linked to the one "
                     f"before it; the {held.checkpoints_checked} checkpoints of {path.name} hold; {signed_words}."}


@bp.route("/audit/verify", methods=["POST"])
@roles_required("qa", "admin")
def verify() -> Any:
    """The chain verified on request (a POST: it reads the whole trail, which takes a while on millions of events,
    so it is never set off by a link prefetched or followed by mistake). The verdict is then shown on the trail's
    page it was asked from (post, redirect, get): reloading that page lists the events again and verifies nothing,
    where a page left at this address would ask the browser to send the verification again."""
    session[VERDICT_KEY] = chain_verdict()
    return redirect(url_for("audit.events"), 303)
