"""The live rows against their audit trail: `mscbatch audit reconcile`.

`audit verify` proves the trail was not rewritten; it says nothing of the rows themselves, so a value changed
with SQL (a released lot's result, a bag's cell count) leaves the chain intact. Here the trail is replayed per
audited table and record, in sequence order: the insert event's snapshot, then every update (and status) event
over it, a delete event ending the record (a later insert of the same key starts it again). What the replay
expects is compared with each live row, value by value, with the hook's own `canonical_value`:

- a field whose value differs from the trail's. A hidden field (`__audit_exclude__`: a password hash) is held in
  the trail as a keyed digest (trail.hidden_digest) and compared as one: a password hash swapped with SQL is a
  difference, and neither value is ever printed. A hidden value an older version stored as "(hidden)" cannot be
  compared: it is counted and said, not a difference;
- a live row with no insert event;
- a row the trail says was deleted that still exists;
- a record the trail has (inserted, never deleted) that is missing from the database.

A column in the live row that the insert snapshot does not name (added by a later migration) is compared only
once an update event set it. Two values that are the same quantity in another spelling are equal: a Numeric
column gives 62.50 back for the 62.5 the service set (the trail holds what the service set), and an instant is
the same instant in any offset. Nothing else is forgiven, and no table is exempt: a `seed-scale` (benchmark)
database does not reconcile, as its generator writes detail rows without events and signed records as first
saved (mscbatch/scale/records.py); the application's own databases, the demo's included, do.

`reconcile()` is the pure comparison (no database): events in, rows per table in, a `Reconciliation` out.
`reconcile_database()` is the reading layer: the events streamed in sequence order, then each audited table's
rows streamed in key order, all in one read-only snapshot. Memory holds the replayed trail, one entry per record
(its snapshot text and the fields changed since), never the event table.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Numeric, inspect, select
from sqlalchemy.orm import Session

from mscbatch.audit import trail as audit_trail
from mscbatch.audit.models import AuditEvent
from mscbatch.audit.trail import Audited
from mscbatch.core.audit_chain import canonical_value, same_digest
from mscbatch.database import Base, UTCDateTime, reading

HIDDEN = audit_trail.HIDDEN  # how a hidden value is printed; also what versions before the keyed digest stored
#: the actions the flush hook (and insert_audited) write for row changes; "state" is an update of `status`.
#: Other actions (login, signature_refused, ...) are explicit facts about a record, not changes of its row.
ROW_ACTIONS = ("insert", "update", "state", "delete")
LISTED = 50  # differences the command lists (all are counted)

# how a column's values are compared (beyond equal canonical text)
TEXT, NUMERIC, INSTANT = "text", "numeric", "instant"


@dataclass(frozen=True)
class TableShape:
    """An audited table as the comparison needs it: its name (the events' entity_type), its key fields (the
    entity id is their values joined by "/", as the hook writes it), each field's kind, and the fields the
    model hides in the trail (`__audit_exclude__`)."""

    name: str
    key: tuple[str, ...]
    kinds: Mapping[str, str] = field(default_factory=dict)
    hidden: frozenset[str] = frozenset()

    def entity_id(self, row: Mapping[str, Any]) -> str:
        return "/".join(str(row[part]) for part in self.key)


# the kinds of difference
VALUE, NO_INSERT_EVENT, DELETED_BUT_PRESENT, MISSING = "value", "no insert event", "deleted but present", "missing"
UNREADABLE = "unreadable insert event"  # not a JSON object: the event itself was altered (`audit verify` says which)


@dataclass(frozen=True)
class Difference:
    table: str
    entity_id: str
    kind: str
    field: str | None = None
    in_trail: str | None = None
    in_database: str | None = None

    def __str__(self) -> str:
        where = f"{self.table} id {self.entity_id}"
        if self.kind == VALUE and self.in_trail == HIDDEN and self.in_database == HIDDEN:
            return (f"{where}, field {self.field}: the database holds another value than the audit trail records "
                    "(a hidden value: neither is shown)")
        if self.kind == VALUE:
            return (f"{where}, field {self.field}: the audit trail says {_shown(self.in_trail)}, "
                    f"the database holds {_shown(self.in_database)}")
        if self.kind == NO_INSERT_EVENT:
            return f"{where}: the row is in the database, but the audit trail has no insert event for it"
        if self.kind == DELETED_BUT_PRESENT:
            return f"{where}: the audit trail records its deletion, but the row is still in the database"
        if self.kind == UNREADABLE:
            return f"{where}: its insert event's snapshot is not readable (run `mscbatch audit verify`)"
        return f"{where}: the audit trail records this row and no deletion of it, but it is missing from the database"


def _shown(value: str | None) -> str:
    return "no value (null)" if value is None else json.dumps(value, ensure_ascii=False)


@dataclass
class Reconciliation:
    """The outcome: rows and tables checked, every difference counted per table, the first `keep` listed."""

    keep: int = LISTED
    rows: int = 0
    tables: int = 0
    listed: list[Difference] = field(default_factory=list)
    per_table: Counter[str] = field(default_factory=Counter)
    #: hidden values the trail holds as "(hidden)" (written by a version before the keyed digest): not compared
    uncompared: int = 0

    @property
    def ok(self) -> bool:
        return not self.per_table

    @property
    def total(self) -> int:
        return sum(self.per_table.values())

    def add(self, difference: Difference) -> None:
        self.per_table[difference.table] += 1
        if len(self.listed) < self.keep:
            self.listed.append(difference)

    def lines(self) -> list[str]:
        if self.ok:
            return [f"{self.rows} rows of {self.tables} tables match their audit trail{self._uncompared()}."]
        lines = [f"AUDIT TRAIL AND DATABASE DIFFER: {self.total} difference(s) in {len(self.per_table)} table(s) "
                 f"({self.rows} rows of {self.tables} tables checked{self._uncompared()}).",
                 *(f"  {difference}" for difference in self.listed)]
        if self.total > len(self.listed):
            lines.append(f"  ... and {self.total - len(self.listed)} more (the first {len(self.listed)} listed)")
        lines.append("Differences per table:")
        lines.extend(f"  {table}: {count}" for table, count in sorted(self.per_table.items()))
        return lines

    def _uncompared(self) -> str:
        if not self.uncompared:
            return ""
        return (f"; {self.uncompared} hidden value(s) cannot be compared: an older version wrote them into the trail "
                'as "(hidden)", without their keyed digest')


class _Record:
    """One record as the trail has it so far: its insert snapshot (JSON text, parsed only when compared: a
    string is the cheapest thing to hold per record), the fields set by update events since, deleted or not."""

    __slots__ = ("snapshot", "changes", "deleted")

    def __init__(self, snapshot: str | None) -> None:
        self.snapshot = snapshot
        self.changes: dict[str, str | None] | None = None
        self.deleted = False

    def expected(self) -> dict[str, str | None] | None:
        """The fields' values as the trail has them now; None if the snapshot is not a JSON object."""
        try:
            values = json.loads(self.snapshot) if self.snapshot else {}
        except ValueError:
            return None
        if not isinstance(values, dict):
            return None
        if self.changes:
            values.update(self.changes)
        return values


Trail = dict[str, dict[str, _Record]]


def replay(events: Iterable[Sequence[Any]], tables: Iterable[str]) -> Trail:
    """The expected state of every record of `tables`, from events given in sequence order as
    (action, entity_type, entity_id, field, new_value). Events of other tables and other actions are ignored."""
    trail: Trail = {name: {} for name in tables}
    for action, entity_type, entity_id, field_name, new_value in events:
        records = trail.get(entity_type)
        if records is None or entity_id is None:
            continue
        if action == "insert":
            records[entity_id] = _Record(new_value)  # a key used again after a delete: a new life
            continue
        record = records.get(entity_id)
        if record is None:
            record = records[entity_id] = _Record(None)  # changed, never inserted (as far as the trail says)
        if action == "delete":
            record.deleted = True
        elif action in ("update", "state") and field_name is not None:
            if record.changes is None:
                record.changes = {}
            record.changes[field_name] = new_value
    return trail


def same_value(in_trail: str | None, live: Any, kind: str = TEXT) -> bool:
    """Does the live value match the trail's text? Equal canonical text, or for a Numeric column the same number
    (Numeric(6, 2) gives 62.50 back for 62.5), for a timestamp the same instant."""
    actual = canonical_value(live)
    if actual == in_trail:
        return True
    if actual is None or in_trail is None:
        return False
    if kind == NUMERIC:
        try:
            return Decimal(in_trail) == Decimal(actual)
        except InvalidOperation:
            return False
    if kind == INSTANT and isinstance(live, datetime):
        try:
            expected = datetime.fromisoformat(in_trail)
        except ValueError:
            return False
        if (expected.tzinfo is None) != (live.tzinfo is None):
            return False
        return expected == live
    return False


def compare_table(trail: Trail, shape: TableShape, rows: Iterable[Mapping[str, Any]], into: Reconciliation,
                  key: bytes | None = None) -> None:
    """Compare the live rows of one table (mappings of field name to value, as the ORM loads them) with what the
    trail expects; then name the records the trail has and the table lacks. `key`: the audit key, which a hidden
    field's digest needs (without it a hidden value cannot be compared)."""
    records = trail.get(shape.name, {})
    seen: set[str] = set()
    into.tables += 1
    for row in rows:
        into.rows += 1
        entity_id = shape.entity_id(row)
        seen.add(entity_id)
        record = records.get(entity_id)
        if record is None or (record.snapshot is None and not record.deleted):
            into.add(Difference(shape.name, entity_id, NO_INSERT_EVENT))
            continue
        if record.deleted:
            into.add(Difference(shape.name, entity_id, DELETED_BUT_PRESENT))
            continue
        expected = record.expected()
        if expected is None:
            into.add(Difference(shape.name, entity_id, UNREADABLE))
            continue
        for name, in_trail in expected.items():
            if name not in row:
                continue  # a column dropped since: nothing in the database to compare
            live = row[name]
            if name in shape.hidden:
                if live is None and in_trail is None:
                    continue
                if in_trail is None or live is None:  # set, or emptied: say which, never print the value itself
                    into.add(Difference(shape.name, entity_id, VALUE, name, None if in_trail is None else HIDDEN,
                                        None if live is None else HIDDEN))
                    continue
                if key is None or not in_trail.startswith(audit_trail.HIDDEN_PREFIX):
                    into.uncompared += 1  # "(hidden)": an older version kept no digest to compare with
                    continue
                if not same_digest(audit_trail.hidden_digest(key, shape.name, name, live), in_trail):
                    into.add(Difference(shape.name, entity_id, VALUE, name, HIDDEN, HIDDEN))
                continue
            if in_trail == HIDDEN:
                continue
            if not same_value(in_trail, live, shape.kinds.get(name, TEXT)):
                into.add(Difference(shape.name, entity_id, VALUE, name, in_trail, canonical_value(live)))
    for entity_id, record in records.items():
        if entity_id not in seen and not record.deleted:
            into.add(Difference(shape.name, entity_id, MISSING))


def reconcile(events: Iterable[Sequence[Any]], tables: Iterable[tuple[TableShape, Iterable[Mapping[str, Any]]]],
              keep: int = LISTED, key: bytes | None = None) -> Reconciliation:
    """The whole comparison: `events` as for `replay` (all of them first, in sequence order), then each table's
    shape and its live rows (read lazily: one table at a time is enough). `key`: the audit key, for the hidden
    fields' digests."""
    tables = list(tables)
    trail = replay(events, [shape.name for shape, _rows in tables])
    outcome = Reconciliation(keep=keep)
    for shape, rows in sorted(tables, key=lambda pair: pair[0].name):
        compare_table(trail, shape, rows, outcome, key)
        trail.pop(shape.name, None)  # done with it: free its records before the next table
    return outcome


# ---- reading layer ------------------------------------------------------------------------------------------

EVENTS_PER_FETCH = 5000
ROWS_PER_FETCH = 2000


def audited_models() -> list[Any]:
    """Every model with the Audited mixin, one per table."""
    from mscbatch import models  # noqa: F401  (every table on the metadata)

    found = {m.local_table.name: m.class_ for m in Base.registry.mappers if issubclass(m.class_, Audited)}
    return [found[name] for name in sorted(found)]


def shape_of(model: Any) -> TableShape:
    mapper = inspect(model)
    kinds = {}
    for attr in mapper.column_attrs:
        column_type = attr.columns[0].type
        kinds[attr.key] = NUMERIC if isinstance(column_type, Numeric) else \
            INSTANT if isinstance(column_type, UTCDateTime) else TEXT
    key = tuple(mapper.get_property_by_column(column).key for column in mapper.primary_key)
    return TableShape(mapper.local_table.name, key, kinds, frozenset(model.__audit_exclude__))


def _stream_events(session: Session, tables: list[str]) -> Iterator[Sequence[Any]]:
    statement = (select(AuditEvent.action, AuditEvent.entity_type, AuditEvent.entity_id, AuditEvent.field,
                        AuditEvent.new_value)
                 .where(AuditEvent.action.in_(ROW_ACTIONS), AuditEvent.entity_type.in_(tables))
                 .order_by(AuditEvent.seq).execution_options(yield_per=EVENTS_PER_FETCH))
    yield from session.execute(statement)


def _stream_rows(session: Session, model: Any) -> Iterator[Mapping[str, Any]]:
    mapper = inspect(model)
    columns = [attr.columns[0].label(attr.key) for attr in mapper.column_attrs]
    statement = select(*columns).order_by(*mapper.primary_key).execution_options(yield_per=ROWS_PER_FETCH)
    for row in session.execute(statement):
        values = dict(row._mapping)
        for name, value in values.items():
            if isinstance(value, memoryview):  # bytea on some drivers: the bytes the hook hashed
                values[name] = value.tobytes()
        yield values


def reconcile_database(session: Session, keep: int = LISTED) -> Reconciliation:
    """Read the trail and the audited tables in one read-only snapshot and compare them. The session must have
    no transaction open (a command's fresh session); it is ended here."""
    models = audited_models()
    shapes = [shape_of(model) for model in models]
    try:
        key: bytes | None = audit_trail.audit_key(session)
    except audit_trail.AuditConfigurationError:  # a session with no key: hidden fields' digests are not compared
        key = None
    if session.get_bind().dialect.name == "postgresql":
        # one snapshot for the events and every table: a record written meanwhile is not "without an event"
        session.connection(execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True})
    try:
        with reading(session):  # SQLite: a deferred transaction (no write lock held while comparing)
            return reconcile(_stream_events(session, [shape.name for shape in shapes]),
                             ((shape, _stream_rows(session, model)) for shape, model in zip(shapes, models,
                                                                                           strict=True)),
                             keep=keep, key=key)
    finally:
        session.rollback()
