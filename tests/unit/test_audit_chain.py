"""The audit hash chain with plain values: any single change, reorder or deletion is detected."""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from mscbatch.core.audit_chain import GENESIS_HASH, canonical_value, event_hash, head_mac, verify_chain

KEY = b"unit-test-key"


def _chain(n: int) -> tuple[list[dict], tuple[int, str, str]]:
    events, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        event = {"seq": seq, "occurred_at": datetime(2026, 1, 1, tzinfo=UTC), "actor_id": 1, "actor_name": "qa",
                 "action": "update", "entity_type": "lot", "entity_id": str(seq), "field": "status",
                 "old_value": "quarantine", "new_value": "released", "reason": None, "prev_hash": prev}
        event["hash"] = prev = event_hash(KEY, prev, event)
        events.append(event)
    return events, (n, prev, head_mac(KEY, n, prev))


def test_an_intact_chain_verifies():
    events, head = _chain(5)
    assert verify_chain(KEY, events, head).ok


@given(st.integers(min_value=0, max_value=4), st.sampled_from(["new_value", "actor_name", "reason", "field"]))
def test_changing_any_field_of_any_event_is_detected(index, field):
    events, head = _chain(5)
    events[index][field] = "tampered"
    verdict = verify_chain(KEY, events, head)
    assert not verdict.ok and verdict.first_bad_seq == index + 1


def test_a_deleted_event_in_the_middle_is_named():
    events, head = _chain(5)
    del events[2]
    verdict = verify_chain(KEY, events, head)
    assert not verdict.ok and verdict.first_bad_seq == 3


def test_deleting_the_newest_event_is_caught_by_the_head():
    events, head = _chain(5)
    verdict = verify_chain(KEY, events[:-1], head)
    assert not verdict.ok and "head" in verdict.problem


def test_values_are_written_as_stable_text():
    assert canonical_value(Decimal("2.50")) == "2.50"
    assert canonical_value(Decimal("2E+6")) == "2000000"
    assert canonical_value(True) == "true"
    assert canonical_value(["b", "a"]) == '["b","a"]'
    assert canonical_value({"x": 1}) == '{"x":"1"}'


def test_event_hash_is_stable_across_releases():
    """Known answer, computed by the first release's json.dumps + hmac.new implementation: a faster
    event_hash must give the same bytes, or every existing audit trail would stop verifying."""
    event = {"seq": 7, "occurred_at": datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC), "actor_id": 3,
             "actor_name": "Zo\u00eb Tech", "action": "update", "entity_type": "bag", "entity_id": "42",
             "field": "volume_ml", "old_value": "10.5", "new_value": None, "reason": "typo \u00e9"}
    assert event_hash(b"known-answer-key", "ab" * 32, event) == (
        "302255cc19fd3fedb00c68190c6210f9d49cfd1100cc6f1e841f6f26f561ea5b")


def test_event_hash_escapes_like_json_dumps():
    """Quotes, backslashes, control characters, line separators, emoji, numbers and booleans: the payload is
    written field by field and must still be the text json.dumps gave in the first release."""
    event = {"seq": 8, "occurred_at": datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC), "actor_id": None,
             "actor_name": "O'Brien \"Q\"", "action": "insert", "entity_type": "lot", "entity_id": "9",
             "field": None, "old_value": "line1\nline2\ttab\\ \x01 \u2028 \U0001f600", "new_value": Decimal("12.50"),
             "reason": True}
    assert event_hash(b"k2", "cd" * 32, event) == (
        "673a9b337caff40a53409652f481296dfe4f538e0aa44eaaf3ebaea223354e96")
