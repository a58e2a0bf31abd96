"""Review 13 (Part 11): the chain's and the checkpoints' comparisons judge a tampered stored value (non-ASCII text,
NULL) as not matching, where hmac.compare_digest raised TypeError."""
from __future__ import annotations

from mscbatch.audit import checkpoints
from mscbatch.core.audit_chain import GENESIS_HASH, event_hash, head_mac, same_digest, verify_rows

KEY = b"key"


def _rows(count: int) -> list[list[object]]:
    rows, prev = [], GENESIS_HASH
    for seq in range(1, count + 1):
        event = {"seq": seq, "occurred_at": "2026-01-01T00:00:00", "actor_id": 1, "actor_name": "qa",
                 "action": "login", "entity_type": "user_account", "entity_id": "1", "field": None,
                 "old_value": None, "new_value": None, "reason": None}
        digest = event_hash(KEY, prev, event)
        rows.append([*event.values(), prev, digest])
        prev = digest
    return rows


def test_same_digest_is_false_for_any_stored_value_but_the_digest():
    digest = head_mac(KEY, 1, GENESIS_HASH)
    assert same_digest(digest, digest)
    for stored in ("\u00e9" * 64, None, 42, "\ud800", digest.upper(), ""):
        assert same_digest(digest, stored) is False


def test_verify_rows_names_an_event_whose_hash_is_non_ascii():
    rows = _rows(3)
    rows[1][12] = "\u00e9" * 64
    verdict = verify_rows(KEY, rows, None)
    assert not verdict.ok and verdict.first_bad_seq == 2 and "altered" in (verdict.problem or "")


def test_verify_rows_names_a_head_mac_that_is_non_ascii():
    rows = _rows(2)
    verdict = verify_rows(KEY, rows, (2, rows[-1][12], "\u00e9" * 64))
    assert not verdict.ok and verdict.problem == "the chain head record was altered"


def test_a_checkpoint_line_with_non_ascii_text_is_unreadable_not_a_crash():
    line = checkpoints.checkpoint_line(KEY, 0, GENESIS_HASH, "2026-01-01T00:00:00Z").replace('"mac":"', '"mac":"\u00e9')
    verdict = checkpoints.judge(KEY, checkpoints.parse_lines([line]), {}, 5)
    assert not verdict.ok and "line 1 is not a checkpoint" in (verdict.problem or "")
