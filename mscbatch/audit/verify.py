"""Reading the chain back, and every signature's seal: `mscbatch audit verify`."""
from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.audit import checkpoints
from mscbatch.audit.models import AuditEvent, AuditHead
from mscbatch.audit.words import record_type_words
from mscbatch.core.audit_chain import (
    GENESIS_HASH,
    ROW_FIELDS,
    ChainVerdict,
    canonical_value,
    head_mac,
    same_digest,
    verify_rows,
)
from mscbatch.core.signing import signature_mac

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


# ---- the signatures ---------------------------------------------------------------------------------------

#: how many altered signatures a verdict names (the count says the rest)
NAMED_AT_MOST = 10


@dataclass(frozen=True)
class AlteredSignature:
    id: int
    meaning: str
    entity_type: str
    entity_id: str

    def words(self) -> str:
        """"signature 6 (“Released for clinical use”, on Release disposition 1)"."""
        return f"signature {self.id} (“{self.meaning}”, on {record_type_words(self.entity_type)} {self.entity_id})"


@dataclass(frozen=True)
class SignatureVerdict:
    ok: bool
    signatures_checked: int
    altered: tuple[AlteredSignature, ...] = ()
    altered_count: int = 0

    def problem(self) -> str:
        """The altered signatures in words ("" when none is)."""
        if self.ok:
            return ""
        named = "; ".join(a.words() for a in self.altered)
        more = self.altered_count - len(self.altered)
        return (f"{self.altered_count} electronic signature{'' if self.altered_count == 1 else 's'} altered after "
                f"signing (printed name, date-time, meaning or record no longer match the signature's seal): {named}"
                + (f"; and {more} more" if more > 0 else ""))


_encode_string = json.encoder.encode_basestring  # type: ignore[attr-defined]


def row_signature_mac(key: bytes, signer_id: Any, printed_name: Any, signed_at: Any, meaning: Any, entity_type: Any,
                      entity_id: Any, content_sha256: Any) -> str:
    """core.signing.signature_mac of a signature row's values, its JSON written directly (sorted keys, json's own
    string escaping, as values_hash does for events): half the cost, for a pass over every signature. A value of
    any other type than the columns' (a NULL written over one) goes through signature_mac itself."""
    signed = canonical_value(signed_at)
    if type(signer_id) is not int or not all(type(v) is str for v in (printed_name, signed, meaning, entity_type,
                                                                     entity_id, content_sha256)):
        return signature_mac(key, signer_id=signer_id, printed_name=printed_name, signed_at=signed_at,
                             meaning=meaning, entity_type=entity_type, entity_id=entity_id,
                             content_sha256=content_sha256)
    message = (f'{{"content_sha256":{_encode_string(content_sha256)},"entity_id":{_encode_string(entity_id)},'
               f'"entity_type":{_encode_string(entity_type)},"meaning":{_encode_string(meaning)},'
               f'"printed_name":{_encode_string(printed_name)},"signed_at":{_encode_string(signed)},'
               f'"signer_id":{signer_id}}}')
    return hmac.digest(key, message.encode(), "sha256").hex()


def verify_signatures(session: Session, key: str | bytes) -> SignatureVerdict:
    """Every signature row's MAC (21 CFR 11.70: the name, date-time, meaning and record a signature says are those
    it was made with), streamed in batches of plain columns: no record is loaded and no query runs per row. Whether
    the signed record is unchanged since (its content hash) is `audit reconcile`'s business, which compares every
    record with its trail."""
    from mscbatch.signatures.models import Signature  # imports the audit trail: read when used

    key_bytes = key.encode() if isinstance(key, str) else key
    columns = Signature.__table__.c
    result = session.execute(select(columns.id, columns.signer_id, columns.printed_name, columns.signed_at,
                                    columns.meaning, columns.entity_type, columns.entity_id, columns.content_sha256,
                                    columns.mac).order_by(columns.id).execution_options(yield_per=5000))
    checked, altered_count = 0, 0
    altered: list[AlteredSignature] = []
    for sig_id, signer_id, printed_name, signed_at, meaning, entity_type, entity_id, content_sha256, mac in result:
        checked += 1
        expected = row_signature_mac(key_bytes, signer_id, printed_name, signed_at, meaning, entity_type, entity_id,
                                     content_sha256)
        # on bytes: a tampered non-ASCII value must not raise TypeError (signatures.services.verify does the same)
        if not hmac.compare_digest(expected.encode(), (mac or "").encode()):
            altered_count += 1
            if len(altered) < NAMED_AT_MOST:
                altered.append(AlteredSignature(sig_id, str(meaning), str(entity_type), str(entity_id)))
    return SignatureVerdict(altered_count == 0, checked, tuple(altered), altered_count)
