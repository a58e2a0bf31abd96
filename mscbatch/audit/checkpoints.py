"""External anchoring of the audit chain: `mscbatch audit checkpoint` / `mscbatch audit verify`.

The chain head in the database is MACed, but nothing ties it to a time or to anything outside the database:
someone with database access can delete the newest events and write back an older head row (its MAC is still
valid). A checkpoint is one line appended, by cron, to a file outside the database: the head's (seq, hash), the
UTC time and an HMAC over them with the audit key. `audit verify` then requires that the chain still holds every
checkpointed (seq, hash). Everything here is pure but the two small file functions at the end.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mscbatch.core.audit_chain import GENESIS_HASH

DEFAULT_FILE_NAME = "audit-checkpoints.jsonl"


def configured_file(config: Mapping[str, object]) -> Path:
    """The checkpoint file the app's configuration names (MSCBATCH_AUDIT_CHECKPOINT_FILE), else the default one in
    the instance folder: `audit checkpoint` writes it, `audit verify` and the audit page's check read it."""
    configured = config.get("AUDIT_CHECKPOINT_FILE")
    return Path(str(configured)) if configured else Path(str(config["INSTANCE_DIR"])) / DEFAULT_FILE_NAME


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str  # UTC, ISO 8601, exactly as written in the file (the MAC covers this text)
    mac: str
    line_no: int = 0


@dataclass(frozen=True)
class Unreadable:
    line_no: int


@dataclass(frozen=True)
class CheckpointVerdict:
    ok: bool
    checkpoints_checked: int
    bad_seq: int | None = None
    problem: str | None = None


def checkpoint_mac(key: bytes, seq: int, last_hash: str, at: str) -> str:
    return hmac.new(key, f"checkpoint|{seq}|{last_hash}|{at}".encode(), hashlib.sha256).hexdigest()


def utc_stamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def checkpoint_line(key: bytes, seq: int, last_hash: str, at: str) -> str:
    """One line of the checkpoint file (JSON, no newline)."""
    return json.dumps({"at": at, "seq": seq, "hash": last_hash, "mac": checkpoint_mac(key, seq, last_hash, at)},
                      separators=(",", ":"))


def parse_lines(lines: Iterable[str]) -> list[Checkpoint | Unreadable]:
    """Blank lines are skipped; a line that is not a well-formed checkpoint is Unreadable (judged forged)."""
    entries: list[Checkpoint | Unreadable] = []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            seq, last_hash, at, mac = data["seq"], data["hash"], data["at"], data["mac"]
        except (ValueError, TypeError, KeyError):
            entries.append(Unreadable(line_no))
            continue
        # what checkpoint_line writes is ASCII: other text (a forged line's, or a damaged file's replacement
        # characters) is unreadable, never compared (hmac.compare_digest raised TypeError on non-ASCII text)
        if type(seq) is not int or seq < 0 or not all(isinstance(v, str) and v.isascii() for v in (last_hash, at, mac)):
            entries.append(Unreadable(line_no))
            continue
        entries.append(Checkpoint(seq, last_hash, at, mac, line_no))
    return entries


def seqs_to_look_up(entries: Iterable[Checkpoint | Unreadable]) -> set[int]:
    """The event seqs whose hash the judge needs (seq 0 is the empty chain: nothing to read)."""
    return {entry.seq for entry in entries if isinstance(entry, Checkpoint) and entry.seq > 0}


def judge(key: bytes, entries: Iterable[Checkpoint | Unreadable], hashes: Mapping[int, str],
          chain_end: int) -> CheckpointVerdict:
    """Judge the checkpoints (in file order; the first problem is named) against the chain's (seq -> hash) and
    its last seq (`chain_end`, from a chain that verified)."""
    checked = 0
    for entry in entries:
        if isinstance(entry, Unreadable):
            return CheckpointVerdict(False, checked, None, f"checkpoint line {entry.line_no} is not a checkpoint "
                                     "(forged or damaged checkpoint)")
        if not hmac.compare_digest(checkpoint_mac(key, entry.seq, entry.hash, entry.at), entry.mac):
            return CheckpointVerdict(False, checked, entry.seq, f"checkpoint line {entry.line_no} (of {entry.at}, "
                                     f"seq {entry.seq}) does not verify: forged checkpoint")
        if entry.seq > chain_end:
            return CheckpointVerdict(False, checked, entry.seq, f"the audit trail is shorter than checkpoint of "
                                     f"{entry.at} (seq {entry.seq}): events were deleted")
        found = GENESIS_HASH if entry.seq == 0 else hashes.get(entry.seq)
        if found is None:
            return CheckpointVerdict(False, checked, entry.seq, f"event {entry.seq} of the checkpoint of "
                                     f"{entry.at} is missing: events were deleted")
        if not hmac.compare_digest(found, entry.hash):
            return CheckpointVerdict(False, checked, entry.seq,
                                     f"event {entry.seq} no longer matches the checkpoint of {entry.at}")
        checked += 1
    return CheckpointVerdict(True, checked)


# ---- the file --------------------------------------------------------------------------------------------

def read_lines(path: Path) -> list[str] | None:
    """The file's lines, or None when there is no checkpoint file."""
    try:
        # a damaged byte makes its line unreadable (judged forged or damaged), not the whole verify a traceback
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return None


def append_line(path: Path, line: str) -> None:
    """Append one line and fsync it (the file is only ever appended to)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())
