"""Reading the chain back: `mscbatch audit verify`."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.audit.models import AuditEvent, AuditHead
from mscbatch.core.audit_chain import GENESIS_HASH, ROW_FIELDS, ChainVerdict, head_mac, verify_rows

_COLUMNS = [AuditEvent.__table__.c[name] for name in ROW_FIELDS]


def verify_database(session: Session, key: str | bytes) -> ChainVerdict:
    key_bytes = key.encode() if isinstance(key, str) else key
    head_row = session.execute(select(AuditHead.last_seq, AuditHead.last_hash, AuditHead.mac)
                               .where(AuditHead.id == 1)).first()
    head = tuple(head_row) if head_row else None
    result = session.execute(select(*_COLUMNS).order_by(AuditEvent.seq).execution_options(yield_per=5000))
    verdict = verify_rows(key_bytes, result, head)
    if head is None and verdict.ok and verdict.events_checked:
        return ChainVerdict(False, verdict.events_checked, verdict.events_checked, "the chain head record is missing")
    return verdict


def ensure_chain_head(session: Session) -> None:
    """Write the empty chain's head at initialisation (it is keyed, so the migration cannot)."""
    key = session.info["audit_key"]
    key_bytes = key.encode() if isinstance(key, str) else key
    if session.get(AuditHead, 1) is None:
        session.add(AuditHead(id=1, last_seq=0, last_hash=GENESIS_HASH, mac=head_mac(key_bytes, 0, GENESIS_HASH)))
        session.commit()
