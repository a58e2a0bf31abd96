"""Rows and audit events of generated records, built the way the services build them (no database here).

`Batch` collects complete rows per table (every column, so one executemany / COPY fits all rows) and the audit
events the flush hook would have written for them: one insert event per main record, with its
`__audit_exclude__` fields hidden. Status changes are folded into that snapshot: a donor, lot, patient or bag
shows the state the run leaves it in (a bag's custody events tell its way there), where the application would
have written a state event per change; a signed record shows itself unsigned (`first`), as first saved, with
its signature's own insert event after it. Detail rows (screening answers, process steps, test results,
custody events, weights, allocations, bedside checks) carry no event of their own: at a million bags that
would be over four events a bag, where the benchmark needs one.
Events are hash-chained with mscbatch.core.audit_chain exactly like mscbatch.audit.trail.append_events, when the
chunk is complete (`finish`), so snapshots are taken then; the writer stores them.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from json.encoder import encode_basestring
from types import SimpleNamespace
from typing import Any

from sqlalchemy import inspect

from mscbatch.core.audit_chain import canonical_value, event_hash
from mscbatch.core.signing import content_hash, signature_mac
from mscbatch.signatures.models import Signature


class Ids:
    """The next primary key per table, starting after what the database holds."""

    def __init__(self, start: dict[str, int]):
        self.next = dict(start)

    def __call__(self, table: str) -> int:
        value = self.next[table]
        self.next[table] = value + 1
        return value


def _snapshot_json(prefixes: list[tuple[str, str, bool]], shown: dict[str, Any]) -> str:
    """canonical_json(snapshot) of a row, assembled from pre-encoded, pre-sorted keys (the same text: sorted
    keys, "," and ":" separators, non-ASCII kept, every value a string or null). `prefixes`: (key, '"key":',
    hidden), sorted by key."""
    parts = []
    for key, prefix, hidden in prefixes:
        value = shown[key]
        if value is None:
            parts.append(prefix + "null")
        elif hidden:
            parts.append(prefix + '"(hidden)"')
        else:
            parts.append(prefix + encode_basestring(value if type(value) is str else canonical_value(value)))
    return "{" + ",".join(parts) + "}"


def _template(model: Any) -> tuple[str, list[str], dict[str, Any], frozenset[str]]:
    mapper = inspect(model)
    defaults: dict[str, Any] = {}
    needed = set()
    for column in model.__table__.columns:
        default = column.default
        if default is not None and getattr(default, "is_scalar", False):
            defaults[column.key] = default.arg
        elif default is not None and not column.primary_key:
            needed.add(column.key)  # callable default (utcnow): the generator gives the business time
        else:
            defaults[column.key] = None
    keys = [attr.key for attr in mapper.column_attrs]
    return model.__tablename__, keys, defaults, frozenset(needed)


class Batch:
    """Rows and chained audit events of one chunk, in insertion order."""

    def __init__(self, key: bytes, reason: str):
        self.key, self.reason = key, reason
        self.seq, self.hash = 0, ""
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.events: list[dict[str, Any]] = []
        #: (actor id, actor name, action, table, entity id, field, old, new or (prefixes, row, first)) until
        #: `finish`: plain values, so a chunk pickles cheaply to the writing process
        self.pending: list[tuple[Any, ...]] = []
        self._templates: dict[Any, tuple[str, list[str], dict[str, Any], frozenset[str]]] = {}
        self._prefixes: dict[Any, list[tuple[str, str, bool]]] = {}

    def finish(self, last_seq: int, last_hash: str, occurred_at: datetime) -> list[dict[str, Any]]:
        """Snapshot the inserted rows as they now stand (with their `first` values) and chain every event after
        the chain head (last_seq, last_hash)."""
        key, reason = self.key, self.reason
        events, seq, last = self.events, last_seq, last_hash
        for actor_id, actor_name, action, table, entity_id, field, old, new in self.pending:
            if type(new) is tuple:
                prefixes, row, first = new
                new = _snapshot_json(prefixes, {**row, **first} if first else row)
            seq += 1
            event = {"seq": seq, "occurred_at": occurred_at, "actor_id": actor_id, "actor_name": actor_name,
                     "action": action, "entity_type": table, "entity_id": str(entity_id), "field": field,
                     "old_value": old, "new_value": new, "reason": reason, "prev_hash": last}
            event["hash"] = last = event_hash(key, last, event)
            events.append(event)
        self.pending.clear()
        self.seq, self.hash = seq, last
        return events

    def add(self, model: Any, actor: Any, first: dict[str, Any] | None = None, *, audit: bool = True,
            **values: Any) -> dict[str, Any]:
        """Add a complete row of `model` and its insert event. `first`: values the snapshot shows instead (the
        record as first saved, before it was signed). `audit=False` for the detail rows of a record (see the
        module docstring): the record they belong to carries the event."""
        template = self._templates.get(model)
        if template is None:
            template = self._templates[model] = _template(model)
            hidden = model.__audit_exclude__
            self._prefixes[model] = [(k, encode_basestring(k) + ":", k in hidden) for k in sorted(template[1])]
        table, _keys, defaults, needed = template
        if needed and not needed <= values.keys():
            raise ValueError(f"{table}: give {', '.join(sorted(needed - values.keys()))}")
        row = {**defaults, **values}
        self.rows[table].append(row)
        if audit:
            self.pending.append((actor.id, actor.username, "insert", table, row["id"], None, None,
                                 (self._prefixes[model], row, first)))
        return row

    def sign(self, signature_id: int, model: Any, row: dict[str, Any], signer: Any, meaning: str,
             at: datetime) -> dict[str, Any]:
        """A signature row over a record (its model and final row), as signatures.services.sign makes it: the
        model's own signed_content() read from the row (a plain namespace: no ORM instance needed)."""
        entity_type, entity_id = model.__tablename__, str(row["id"])
        digest = content_hash(model.signed_content(SimpleNamespace(**row)))
        mac = signature_mac(self.key, signer_id=signer.id, printed_name=signer.full_name, signed_at=at,
                            meaning=meaning, entity_type=entity_type, entity_id=entity_id, content_sha256=digest)
        return self.add(Signature, signer, id=signature_id, signer_id=signer.id, printed_name=signer.full_name,
                        signed_at=at, meaning=meaning, entity_type=entity_type, entity_id=entity_id,
                        content_sha256=digest, mac=mac)
