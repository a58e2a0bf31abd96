"""The one mechanism that writes the audit trail: session flush hooks no service can forget.

Models opt in with the `Audited` mixin. On every flush, before anything is written, the hook refuses edits
of locked (signed) records and edits of recorded data without a reason; after the rows are written (so new
rows have their ids) it appends one event per insert / delete and one per changed field, in the same
transaction. If the use case later fails, its events roll back with it. Deletes are read from the flush itself,
not from session.deleted: a row removed from its parent's collection (delete-orphan) or deleted by cascade is
deleted, refused if locked, and audited like one passed to session.delete().
"""
from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import cache
from typing import Any, ClassVar, NamedTuple

from sqlalchemy import bindparam, event, insert, inspect, select, update
from sqlalchemy.orm import Mapped, Mapper, Session, UOWTransaction, attributes, mapped_column
from sqlalchemy.orm.base import NO_VALUE

from mscbatch.audit.models import AuditEvent, AuditHead
from mscbatch.core.audit_chain import canonical_json, canonical_value, event_hash, head_mac
from mscbatch.errors import DomainError, RecordLocked, ValidationFailed

SYSTEM_ACTOR = (None, "system")


class Audited:
    """Mixin: every insert, update and delete of this model is written to the audit trail."""

    __audit_exclude__: ClassVar[frozenset[str]] = frozenset()  # values not shown (e.g. password hashes)
    __audit_requires_reason__: ClassVar[bool] = True  # edits of recorded data need a reason (Part 11)
    __audit_reason_exempt__: ClassVar[frozenset[str]] = frozenset()  # fields the system moves (status...)
    __append_only__: ClassVar[bool] = False  # e.g. signatures: never updated, never deleted


class Lockable:
    """Mixin: once `locked_at` is set (by a signature), only the fields `lock_exempt_now()` names may change."""

    __lock_exempt__: ClassVar[frozenset[str]] = frozenset()
    locked_at: Mapped[datetime | None] = mapped_column(default=None)

    def lock_exempt_now(self) -> frozenset[str]:
        """The fields that may still change on the locked record, judged on its values before this flush. A record
        whose exempt fields are themselves signed once set (a recall's closing) narrows this when they are."""
        return type(self).__lock_exempt__


class LockedWithParent:
    """Mixin for a row that is part of a signed record (a lot's bags): once `locking_parent()` is locked, only
    `__lock_exempt__` fields may change, and the row cannot be deleted. The parent's lock is enough: no service
    has to remember that the child rows of a released lot are closed too (21 CFR 11.70, EU GMP ch. 4.9)."""

    __lock_exempt__: ClassVar[frozenset[str]] = frozenset()
    locking_parent: Callable[[], Lockable | None]  # each class says which record locks it (Bag: its lot)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not callable(getattr(cls, "locking_parent", None)):  # refused when the model is defined, not at a flush
            raise AuditConfigurationError(f"{cls.__name__} is LockedWithParent but does not say which record "
                                          "locks it (define locking_parent).")


def committed_value(obj: Any, key: str) -> Any:
    """The attribute's value before this flush's changes (as the database holds it)."""
    history = attributes.get_history(obj, key)
    before = history.deleted or history.unchanged
    return before[0] if before else None


def _parent_locked(obj: Any) -> bool:
    parent = obj.locking_parent()
    return parent is not None and (parent.locked_at is not None or committed_value(parent, "locked_at") is not None)


class AuditConfigurationError(RuntimeError):
    pass


def entity_id_of(obj: Any) -> str:
    """The record's primary key as text (read from the instance: new rows have no identity key yet)."""
    key = inspect(obj).mapper.primary_key_from_instance(obj)
    return "/".join(str(part) for part in key)


def _columns(obj: Any) -> list[str]:
    return [attr.key for attr in inspect(obj).mapper.column_attrs]


HIDDEN = "(hidden)"  # how a hidden value is shown (and how versions before the keyed digest stored it)
HIDDEN_PREFIX = "hidden-value:"  # a hidden value as stored: this prefix and hidden_digest()'s hex


def hidden_digest(key: bytes, table: str, field: str, value: Any) -> str:
    """What the trail stores of a value it may not show (`__audit_exclude__`: a password hash, an API token's hash,
    an attachment's bytes): an HMAC-SHA256 under the audit key, with a label of its own ("hidden-value|", so it is
    never the MAC of an event, a chain head or a signature) and the table and field, over the value's canonical
    text. It tells nothing of the value to whoever lacks the key, and `audit reconcile` compares the live value's
    digest with it: a password hash swapped with SQL is found."""
    message = f"hidden-value|{table}|{field}|{canonical_value(value)}"
    return HIDDEN_PREFIX + hmac.digest(key, message.encode(), "sha256").hex()


def is_hidden(value: str | None) -> bool:
    """A stored hidden value: the keyed digest, or the "(hidden)" of an older version."""
    return value is not None and (value == HIDDEN or value.startswith(HIDDEN_PREFIX))


def _shown(key: bytes, model: type[Audited], field: str, value: Any) -> str | None:
    if field in model.__audit_exclude__ and value is not None:
        return hidden_digest(key, model.__tablename__, field, value)  # type: ignore[attr-defined]
    return canonical_value(value)


def _changed_fields(obj: Any) -> dict[str, tuple[Any, Any]]:
    changes = {}
    for key in _columns(obj):
        history = attributes.get_history(obj, key)
        if history.has_changes():
            old = history.deleted[0] if history.deleted else (history.unchanged[0] if history.unchanged else None)
            new = history.added[0] if history.added else None
            if canonical_value(old) != canonical_value(new):
                changes[key] = (old, new)
    return changes


def _was_locked(obj: Any) -> bool:
    history = attributes.get_history(obj, "locked_at")
    before = history.deleted or history.unchanged
    return bool(before and before[0] is not None)


def _locking_now(obj: Any) -> bool:
    """The lock is being set in this flush: sign() hashed the record's content at its own flush, so nothing else
    (but the lock-exempt fields) may change beside the lock, or the signature would vouch for another content."""
    added = attributes.get_history(obj, "locked_at").added
    return bool(added and added[0] is not None)


def _read_unknown_old_values(session: Session, obj: Any) -> None:
    """A column set on an instance whose value was not loaded (expired by a rollback or expire()) has no old value
    in its history: the event said old None, and a column set to None (a signed record's locked_at among them) was
    no change at all, neither refused by the lock nor audited, though the UPDATE cleared it. Such old values are read
    from the database, still unchanged before the flush, into the history's committed state."""
    state = inspect(obj)
    unknown = [key for key, value in state.committed_state.items() if value is NO_VALUE]
    if not unknown or state.key is None:
        return
    mapper = state.mapper
    columns = {key: mapper.column_attrs[key].columns[0] for key in unknown if key in mapper.column_attrs}
    if not columns:
        return
    where = [column == value for column, value in zip(mapper.primary_key, state.key[1], strict=True)]
    row = session.connection().execute(select(*columns.values()).where(*where)).first()
    if row is not None:
        for key, value in zip(columns, row, strict=True):
            state.committed_state[key] = value


def _check_before_flush(session: Session, _context: Any, _instances: Any) -> None:
    reason = session.info.get("audit_reason")
    for obj in session.dirty:
        if not isinstance(obj, Audited) or not session.is_modified(obj):
            continue
        _read_unknown_old_values(session, obj)
        changes = _changed_fields(obj)
        if not changes:
            continue
        name = type(obj).__name__
        if type(obj).__append_only__:
            raise RecordLocked(f"{name} records can never be changed.")
        if isinstance(obj, Lockable) and (_was_locked(obj) or _locking_now(obj)):
            # the lock is set once: a record signed before keeps the time it was locked (a second signature would
            # otherwise move it, and the trail would show the record locked twice)
            first_lock = _locking_now(obj) and not _was_locked(obj)
            blocked = sorted(set(changes) - obj.lock_exempt_now() - ({"locked_at"} if first_lock else set()))
            if blocked:
                raise RecordLocked(f"This {name.lower()} is signed and locked; {', '.join(blocked)} "
                                   "cannot be changed.")
        if isinstance(obj, LockedWithParent):
            blocked = sorted(set(changes) - type(obj).__lock_exempt__)
            if blocked and _parent_locked(obj):  # the parent read only when a closed field changes (custody is often)
                raise RecordLocked(f"This {name.lower()} is part of a signed and locked record; "
                                   f"{', '.join(blocked)} cannot be changed.")
        needs_reason = set(changes) - type(obj).__audit_reason_exempt__ - {"locked_at"}
        if type(obj).__audit_requires_reason__ and needs_reason and not (reason and reason.strip()):
            raise ValidationFailed("A reason is required to change recorded data "
                                   f"({', '.join(sorted(needs_reason))}).", field="reason")
    for obj in session.deleted:
        _refuse_delete(obj)


def _refuse_delete(obj: Any) -> None:
    if isinstance(obj, Audited) and (type(obj).__append_only__ or (isinstance(obj, Lockable) and _was_locked(obj))
                                     or (isinstance(obj, LockedWithParent) and _parent_locked(obj))):
        raise RecordLocked(f"This {type(obj).__name__.lower()} is locked and cannot be deleted.")


def _check_before_delete(_mapper: Any, _connection: Any, obj: Any) -> None:
    """Every row the flush deletes passes here just before its DELETE, also those the unit of work adds itself
    (delete-orphan, delete cascades), which before_flush cannot see: session.deleted never lists them."""
    _refuse_delete(obj)


def _deleted_in_flush(flush_context: UOWTransaction) -> list[Any]:
    """The audited objects this flush deleted: session.delete()'s and the unit of work's own (delete-orphan,
    cascades). The flush context holds each object once, so none gets two events."""
    deleted = (state.obj() for state, (isdelete, _listonly) in flush_context.states.items() if isdelete)
    return [obj for obj in deleted if isinstance(obj, Audited)]


def _events_after_flush(session: Session, flush_context: UOWTransaction) -> None:
    rows: list[dict[str, Any]] = []
    reason = session.info.get("audit_reason")
    key = None  # read only when an audited row changed (audit_key refuses a session without one)
    for obj in session.new:
        if isinstance(obj, Audited):
            key = key or audit_key(session)
            snapshot = {k: _shown(key, type(obj), k, getattr(obj, k)) for k in _columns(obj)}
            rows.append(dict(action="insert", entity_type=obj.__tablename__, entity_id=entity_id_of(obj),
                             field=None, old_value=None, new_value=canonical_json(snapshot), reason=reason))
    for obj in session.dirty:
        # an orphan is dirty (its parent was unset) and deleted in the same flush: its delete event says it all
        if isinstance(obj, Audited) and not flush_context.is_deleted(attributes.instance_state(obj)):
            for name, (old, new) in _changed_fields(obj).items():
                key = key or audit_key(session)
                action = "state" if name == "status" else "update"
                rows.append(dict(action=action, entity_type=obj.__tablename__, entity_id=entity_id_of(obj),
                                 field=name, old_value=_shown(key, type(obj), name, old),
                                 new_value=_shown(key, type(obj), name, new),
                                 reason=reason))
    for obj in _deleted_in_flush(flush_context):
        key = key or audit_key(session)
        snapshot = {k: _shown(key, type(obj), k, getattr(obj, k)) for k in _columns(obj)}
        rows.append(dict(action="delete", entity_type=obj.__tablename__, entity_id=entity_id_of(obj),
                         field=None, old_value=canonical_json(snapshot), new_value=None, reason=reason))
    if rows:
        append_events(session, rows)


def _actor(session: Session) -> tuple[int | None, str]:
    actor = session.info.get("actor")
    if actor is None:
        raise AuditConfigurationError("an audited change was flushed with no actor: run it inside use_case()")
    return actor


def audit_key(session: Session) -> bytes:
    """The session's audit key (the HMAC key of the chain and of signatures), as bytes; refused if it has none."""
    key = session.info.get("audit_key")
    if not key:
        raise AuditConfigurationError("the session has no audit key")
    return key.encode() if isinstance(key, str) else key


class _ChainStatements(NamedTuple):
    read_head: Any  # SELECT ... FOR UPDATE
    insert_events: Any
    move_head: Any
    insert_moving_head: Any  # one event and the head's move in one statement (PostgreSQL)


@cache
def _chain_statements() -> _ChainStatements:
    """Built once, since every audited write runs them (SQLAlchemy would otherwise rebuild and re-key them)."""
    head = AuditHead.__table__
    moved = {name: bindparam(name) for name in ("last_seq", "last_hash", "mac")}
    move_head = update(head).where(head.c.id == 1).values(**moved)
    return _ChainStatements(
        read_head=select(head.c.last_seq, head.c.last_hash).where(head.c.id == 1).with_for_update(),
        insert_events=insert(AuditEvent), move_head=move_head,
        insert_moving_head=insert(AuditEvent).add_cte(move_head.cte("moved_head")))


def append_events(session: Session, rows: Iterable[Mapping[str, Any]]) -> None:
    """Append events to the chain inside the session's transaction.

    The head row is read FOR UPDATE, so concurrent transactions extend the chain one after another
    (PostgreSQL row lock; on SQLite every write transaction is BEGIN IMMEDIATE already).
    """
    from mscbatch.database import utcnow

    statements = _chain_statements()
    connection = session.connection()
    key = audit_key(session)
    actor_id, actor_name = _actor(session)
    head = connection.execute(statements.read_head).first()
    if head is None:
        # `mscbatch init` writes the head before any event: without it the trail was wiped (audit verify says so),
        # and a new chain begun here would hide that
        raise AuditConfigurationError("the audit chain has no head: run `mscbatch init` on a new database; on an "
                                      "initialised one the head was deleted (run `mscbatch audit verify`)")
    last_seq, prev_hash = head.last_seq, head.last_hash
    now = utcnow()
    events = []
    for row in rows:
        last_seq += 1
        event_row = dict(row, seq=last_seq, occurred_at=now, actor_id=actor_id, actor_name=actor_name,
                         prev_hash=prev_hash)
        event_row["hash"] = prev_hash = event_hash(key, prev_hash, event_row)
        events.append(event_row)
    values = dict(last_seq=last_seq, last_hash=prev_hash, mac=head_mac(key, last_seq, prev_hash))
    if len(events) == 1 and connection.dialect.name == "postgresql":
        # One round trip instead of two for the commonest write (one event: a scan, a sign-in, a new record): the
        # event and the head's move in one statement (a data-modifying CTE). On SQLite a statement is a function
        # call, not a round trip, and SQLite has no such CTE.
        connection.execute(statements.insert_moving_head, dict(events[0], **values))
    else:
        connection.execute(statements.insert_events, events[0] if len(events) == 1 else events)
        connection.execute(statements.move_head, values)


@cache
def _insert_returning_row(table: Any) -> Any:
    return insert(table).returning(*table.c)


def insert_audited(session: Session, model: type[Audited], values: Mapping[str, Any]) -> Any:
    """Insert one row of an audited model with SQLAlchemy Core, and append the event the flush hook writes for the
    same ORM insert, in the session's transaction. Returns the row as stored (RETURNING).

    For the bedside check, which records every scan: there the unit of work's bookkeeping for one new object costs
    about as much as the rest of the write. An insert has nothing for before_flush to refuse (no lock, no reason
    needed). The event is the hook's: the values given, as the object's attributes would hold them (not as the
    database returns them: Numeric(6, 2) gives back 62.50 for 62.5), the defaults and keys the insert made as
    RETURNING gives them, excluded values as their keyed digest (hidden_digest). `values` are keyed by column name."""
    if not issubclass(model, Audited):
        raise AuditConfigurationError(f"{model.__name__} is not an audited model")
    mapper = inspect(model)
    table = mapper.local_table
    row = session.connection().execute(_insert_returning_row(table), dict(values)).one()
    stored = row._mapping
    key = audit_key(session)
    snapshot = {}
    for attr in mapper.column_attrs:
        column = attr.columns[0]
        snapshot[attr.key] = _shown(key, model, attr.key,
                                    values[column.key] if column.key in values else stored[column])
    append_events(session, [dict(action="insert", entity_type=table.name,
                                 entity_id="/".join(str(stored[column]) for column in mapper.primary_key),
                                 field=None, old_value=None, new_value=canonical_json(snapshot),
                                 reason=session.info.get("audit_reason"))])
    return row


def record(session: Session, action: str, entity_type: str, entity_id: Any = None, *, field: str | None = None,
           old: Any = None, new: Any = None, reason: str | None = None) -> None:
    """An explicit event for what is not a row change: a login, a refused signature, a printed label."""
    append_events(session, [dict(action=action, entity_type=entity_type,
                                 entity_id=None if entity_id is None else str(entity_id), field=field,
                                 old_value=canonical_value(old), new_value=canonical_value(new),
                                 reason=reason or session.info.get("audit_reason"))])


def install_hooks() -> None:
    """Listen on every Session and every mapper (idempotent)."""
    if not event.contains(Session, "before_flush", _check_before_flush):
        event.listen(Session, "before_flush", _check_before_flush)
        event.listen(Session, "after_flush", _events_after_flush)
        event.listen(Mapper, "before_delete", _check_before_delete)


__all__ = ["Audited", "Lockable", "LockedWithParent", "committed_value", "append_events", "insert_audited", "record", "install_hooks", "DomainError", "SYSTEM_ACTOR"]
