"""Checkpoints of the audit chain, pure: the line, its MAC, and judging checkpoints against (seq -> hash)."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from mscbatch.audit.checkpoints import (
    Checkpoint,
    Unreadable,
    append_line,
    checkpoint_line,
    checkpoint_mac,
    judge,
    parse_lines,
    read_lines,
    seqs_to_look_up,
    utc_stamp,
)
from mscbatch.core.audit_chain import GENESIS_HASH, head_mac

KEY = b"unit-test-key"
HASHES = {seq: f"{seq:064x}" for seq in range(1, 11)}


def _line(seq: int, at: str = "2026-01-01T00:00:00Z", key: bytes = KEY) -> str:
    return checkpoint_line(key, seq, GENESIS_HASH if seq == 0 else HASHES[seq], at)


def _judge(*lines: str, hashes=HASHES, chain_end=10):  # type: ignore[no-untyped-def]
    return judge(KEY, parse_lines(lines), hashes, chain_end)


def test_a_line_is_json_with_the_head_time_and_a_mac_that_is_not_the_head_mac():
    data = json.loads(_line(3))
    assert data == {"at": "2026-01-01T00:00:00Z", "seq": 3, "hash": HASHES[3],
                    "mac": checkpoint_mac(KEY, 3, HASHES[3], "2026-01-01T00:00:00Z")}
    assert data["mac"] != head_mac(KEY, 3, HASHES[3])  # a head row's MAC cannot pass for a checkpoint's
    assert checkpoint_mac(KEY, 3, HASHES[3], "2026-01-01T00:00:01Z") != data["mac"]  # the time is covered


def test_utc_stamp_is_utc_whatever_the_zone():
    paris = datetime(2026, 7, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    assert utc_stamp(paris) == "2026-07-01T12:30:00Z"
    assert utc_stamp().endswith("Z") and utc_stamp(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00Z"


def test_checkpoints_held_by_the_chain_verify():
    verdict = _judge(_line(0), _line(4), "", _line(4, "2026-01-01T01:00:00Z"), _line(10))
    assert verdict.ok and verdict.checkpoints_checked == 4


def test_only_the_checkpointed_seqs_are_looked_up():
    assert seqs_to_look_up(parse_lines([_line(0), _line(4), _line(4), _line(9), "junk"])) == {4, 9}


def test_a_trail_shorter_than_a_checkpoint_is_broken():
    verdict = _judge(_line(4), _line(9, "2026-01-02T00:00:00Z"), hashes={s: h for s, h in HASHES.items() if s <= 6},
                     chain_end=6)
    assert not verdict.ok and verdict.bad_seq == 9 and verdict.checkpoints_checked == 1
    assert verdict.problem == ("the audit trail is shorter than checkpoint of 2026-01-02T00:00:00Z (seq 9): "
                               "events were deleted")


def test_an_event_that_no_longer_matches_is_broken():
    verdict = _judge(_line(4), hashes={**HASHES, 4: "f" * 64})
    assert not verdict.ok and verdict.bad_seq == 4
    assert verdict.problem == "event 4 no longer matches the checkpoint of 2026-01-01T00:00:00Z"


def test_an_emptied_trail_does_not_match_an_empty_chain_checkpoint_with_another_hash():
    forged_zero = checkpoint_line(KEY, 0, "a" * 64, "2026-01-01T00:00:00Z")
    assert not _judge(forged_zero).ok
    assert _judge(_line(0), hashes={}, chain_end=0).ok


def test_forged_and_unreadable_lines_are_broken():
    good = json.loads(_line(4))
    cases = [_line(4, key=b"another-key"), json.dumps({**good, "seq": 5}), json.dumps({**good, "at": "2020"}),
             json.dumps({**good, "seq": "4"}), json.dumps({**good, "seq": True}), "{", "[]", '{"seq": 4}']
    for forged in cases:
        verdict = _judge(_line(2), forged)
        assert not verdict.ok and verdict.checkpoints_checked == 1, forged
        assert "line 2" in verdict.problem and "forged" in verdict.problem, verdict


def test_parse_keeps_line_numbers_and_skips_blank_lines():
    entries = parse_lines(["", _line(1), "oops"])
    assert isinstance(entries[0], Checkpoint) and entries[0].line_no == 2
    assert entries[1] == Unreadable(3)


def test_the_file_is_appended_to_and_absent_means_none(tmp_path):
    path = tmp_path / "sub" / "checkpoints.jsonl"
    assert read_lines(path) is None
    append_line(path, _line(1))
    append_line(path, _line(2))
    assert read_lines(path) == [_line(1), _line(2)]
