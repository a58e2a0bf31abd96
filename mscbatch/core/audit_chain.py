"""The audit trail's hash chain (21 CFR 11.10(e), EU GMP Annex 11 s.9): pure functions, no database.

Each event's hash is an HMAC-SHA256, keyed with a secret kept outside the database, over the previous
event's hash and the event's own canonical content. Changing a value, reordering, inserting or deleting any
event breaks the chain from that point; without the key nobody can recompute a consistent chain.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

GENESIS_HASH = "0" * 64
CHAINED_FIELDS = ("seq", "occurred_at", "actor_id", "actor_name", "action", "entity_type", "entity_id",
                  "field", "old_value", "new_value", "reason")


def canonical_value(value: Any) -> str | None:
    """How a column value is written into the audit trail: stable text, never a Python repr."""
    kind = type(value)
    # fast paths first: `audit verify` calls this eleven times per event, a million events at a time
    if kind is str:
        return value  # type: ignore[no-any-return]
    if value is None:
        return None
    if kind is int:
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    if isinstance(value, Mapping):
        return canonical_json({str(k): canonical_value(v) for k, v in value.items()})
    if isinstance(value, list | tuple | set | frozenset):
        items = [canonical_value(v) for v in value]
        return canonical_json(sorted(items, key=str) if isinstance(value, set | frozenset) else items)
    return str(value)


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=canonical_value)


def canonical_json(data: Any) -> str:
    return _ENCODER.encode(data)


# The hashed payload is the chained fields as JSON with sorted keys, written field by field (values_hash):
# `audit verify` hashes a million events at a time.
_SORTED_FIELDS = tuple(sorted(CHAINED_FIELDS))
_encode_string = json.encoder.encode_basestring  # type: ignore[attr-defined]
_SORTED_PARTS = tuple((json.dumps(name) + ":", CHAINED_FIELDS.index(name)) for name in _SORTED_FIELDS)
ROW_FIELDS = CHAINED_FIELDS + ("prev_hash", "hash")
"""The column order `verify_rows` expects: the chained fields, then prev_hash and hash."""


def event_hash(key: bytes, prev_hash: str, event: Mapping[str, Any]) -> str:
    return values_hash(key, prev_hash, [event.get(name) for name in CHAINED_FIELDS])


def values_hash(key: bytes, prev_hash: str, values: Sequence[Any]) -> str:
    """event_hash of an event given as its CHAINED_FIELDS values in order (a database row, without a dict).

    Writes the payload's JSON directly: every canonical value is a string or null, and encode_basestring is
    json's own string escaping (ensure_ascii=False), so the text is the one json.dumps(sort_keys=True) gives
    (a known-answer test holds it to the first release's bytes)."""
    parts = []
    for prefix, position in _SORTED_PARTS:
        value = values[position]
        if type(value) is not str:
            value = canonical_value(value)
        parts.append(prefix + ("null" if value is None else _encode_string(value)))
    message = prev_hash + "|{" + ",".join(parts) + "}"
    return hmac.digest(key, message.encode(), "sha256").hex()  # one C call: the same bytes as hmac.new(...)


def same_digest(expected: str, stored: Any) -> bool:
    """A computed hex digest against one read back from storage, in constant time. A tampered stored value may be
    anything (NULL, text with non-ASCII letters): it is simply not the digest, where hmac.compare_digest raised a
    TypeError and `audit verify` stopped on a traceback instead of naming the altered event."""
    try:  # no conversion on the way: verify calls this once per event of the trail
        return hmac.compare_digest(expected, stored)
    except TypeError:  # not text, or text that is not ASCII: never a hex digest
        return False


def head_mac(key: bytes, seq: int, last_hash: str) -> str:
    return hmac.new(key, f"head|{seq}|{last_hash}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ChainVerdict:
    ok: bool
    events_checked: int
    first_bad_seq: int | None = None
    problem: str | None = None


def verify_chain(key: bytes, events: Iterable[Mapping[str, Any]],
                 head: tuple[int, str, str] | None) -> ChainVerdict:
    """Walk events in seq order; name the first one that does not fit.

    `head` is (last_seq, last_hash, mac) as stored beside the chain: it catches deletion of the newest events.
    """
    return verify_rows(key, ([event.get(name) for name in ROW_FIELDS] for event in events), head)


def verify_rows(key: bytes, rows: Iterable[Sequence[Any]], head: tuple[int, str, str] | None) -> ChainVerdict:
    """verify_chain over rows of ROW_FIELDS values (what `SELECT <ROW_FIELDS> ORDER BY seq` returns)."""
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    for row in rows:
        seq = row[0]
        if seq != expected_seq:
            what = "missing (deleted?)" if seq > expected_seq else "out of order or duplicated"
            return ChainVerdict(False, checked, expected_seq, f"event {expected_seq} is {what}")
        if row[11] != prev_hash:
            return ChainVerdict(False, checked, seq, f"event {seq} does not follow event {seq - 1}")
        if not same_digest(values_hash(key, prev_hash, row), row[12]):
            return ChainVerdict(False, checked, seq, f"event {seq} was altered (its content does not match its hash)")
        prev_hash, expected_seq, checked = row[12], seq + 1, checked + 1
    if head is not None:
        last_seq, last_hash, mac = head
        if not same_digest(head_mac(key, last_seq, last_hash), mac):
            return ChainVerdict(False, checked, last_seq, "the chain head record was altered")
        if last_seq != checked or last_hash != prev_hash:
            return ChainVerdict(False, checked, checked + 1,
                                f"the chain ends at event {checked} but the head says {last_seq}: events deleted")
    return ChainVerdict(True, checked)
