"""Reading the chain back: `mscbatch audit verify`."""
from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.audit import checkpoints
from mscbatch.audit.models import AuditEvent, AuditHead
from mscbatch.core.audit_chain import (
    GENESIS_HASH,
    ROW_FIELDS,
    ChainVerdict,
    head_mac,
    same_digest,
    verify_rows,
)

_COLUMNS = [AuditEvent.__table__.c[name] for name in ROW_FIELDS]
log = logging.getLogger(__name__)


def verify_database(session: Session, key: str | bytes) -> ChainVerdict:
    key_bytes = key.encode() if isinstance(key, str) else key
    head_row = session.execute(select(AuditHead.last_seq, AuditHead.last_hash, AuditHead.mac)
                               .where(AuditHead.id == 1)).first()
    head = tuple(head_row) if head_row else None
    result = session.execute(select(*_COLUMNS).order_by(AuditEvent.seq).execution_options(yield_per=5000))
    verdict = verify_rows(key_bytes, result, head)
    if head is None and verdict.ok:
        # `mscbatch init` writes the head before any event, and nothing deletes it: a database without one had it
        # deleted, with or without its events (an empty trail with no head is a wiped trail, not a new one)
        return ChainVerdict(False, verdict.events_checked, verdict.events_checked + 1,
                            "the chain head record is missing (deleted?)")
    return verdict


def verify_checkpoints(session: Session, key: str | bytes, lines: Iterable[str],
                       chain_end: int) -> checkpoints.CheckpointVerdict:
    """Judge the checkpoint file's lines against the chain (which verified up to `chain_end`): the hashes of the
    checkpointed seqs only, read by primary key (a few rows, not another pass over the trail)."""
    key_bytes = key.encode() if isinstance(key, str) else key
    entries = checkpoints.parse_lines(lines)
    wanted = sorted(checkpoints.seqs_to_look_up(entries))
    hashes: dict[int, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        rows = session.execute(select(AuditEvent.seq, AuditEvent.hash).where(AuditEvent.seq.in_(chunk)))
        hashes.update((seq, event_hash) for seq, event_hash in rows)
    return checkpoints.judge(key_bytes, entries, hashes, chain_end)


class CheckpointRefused(RuntimeError):
    pass


def checkpoint_head(session: Session, key: str | bytes) -> tuple[int, str]:
    """The head (seq, hash) to checkpoint, after checking its MAC and that the event it names has its hash (two
    reads by primary key): a tampered head is refused, never anchored."""
    key_bytes = key.encode() if isinstance(key, str) else key
    head = session.execute(select(AuditHead.last_seq, AuditHead.last_hash, AuditHead.mac)
                           .where(AuditHead.id == 1)).first()
    if head is None:
        raise CheckpointRefused("the chain head record is missing (deleted?)")
    seq, last_hash, mac = head
    if not same_digest(head_mac(key_bytes, seq, last_hash), mac):
        raise CheckpointRefused("the chain head record was altered")
    found = GENESIS_HASH if seq == 0 else session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == seq))
    if found != last_hash:
        raise CheckpointRefused(f"the chain head does not match event {seq}")
    return seq, last_hash


def ensure_chain_head(session: Session) -> None:
    """Write the empty chain's head at initialisation (it is keyed, so the migration cannot).

    Only on a new database. Every start runs this (`mscbatch init`, AUTO_MIGRATE): a head written afresh beside
    existing records would start a new chain over a deleted trail and hide the deletion. Without its head, such
    a database fails `audit verify` and refuses audited writes until someone looks."""
    key = session.info["audit_key"]
    key_bytes = key.encode() if isinstance(key, str) else key
    if session.get(AuditHead, 1) is not None:
        return
    if _holds_records(session):
        log.warning("The audit chain head is missing on a database that holds records: not recreated. "
                    "Run `mscbatch audit verify`.")
        return
    session.add(AuditHead(id=1, last_seq=0, last_hash=GENESIS_HASH, mac=head_mac(key_bytes, 0, GENESIS_HASH)))
    session.commit()


def _holds_records(session: Session) -> bool:
    """Any audit event or user account: every record is made by a user, and every user's creation is audited."""
    from mscbatch.auth.models import User

    return any(session.scalar(select(column).limit(1)) is not None for column in (AuditEvent.seq, User.id))
