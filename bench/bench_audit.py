"""`audit verify` over the large database's audit trail (at least 1 000 000 events) and its electronic signatures
(each one's seal) vs plain SELECTs reading the same rows the same way (ratio <= 3.0): the chain's and the
signatures' HMACs may cost at most twice the reading itself."""
from __future__ import annotations

import time

from sqlalchemy import select

from bench.common import Row, opened, sizes
from mscbatch.audit.models import AuditEvent
from mscbatch.audit.verify import _COLUMNS, verify_database, verify_signatures
from mscbatch.signatures.models import Signature

ROUNDS = 3
_SIGNATURE_COLUMNS = [Signature.__table__.c[name] for name in (
    "id", "signer_id", "printed_name", "signed_at", "meaning", "entity_type", "entity_id", "content_sha256", "mac")]


def run(kind: str) -> list[Row]:
    _, large_bags = sizes()
    verify_times, select_times, events, signatures = [], [], 0, 0
    with opened(kind, large_bags) as app:
        key = app.config["AUDIT_KEY"]
        for _ in range(ROUNDS):
            with app.extensions["mscbatch.db"].new_session() as session:
                start = time.perf_counter()
                count = 0
                for _row in session.execute(select(*_COLUMNS).order_by(AuditEvent.seq)
                                            .execution_options(yield_per=5000)):
                    count += 1
                signatures = sum(1 for _row in session.execute(select(*_SIGNATURE_COLUMNS).order_by(Signature.id)
                                                               .execution_options(yield_per=5000)))
                select_times.append(time.perf_counter() - start)
            with app.extensions["mscbatch.db"].new_session() as session:
                start = time.perf_counter()
                verdict = verify_database(session, key)
                signed = verify_signatures(session, key)  # as the `audit verify` command does after the chain
                verify_times.append(time.perf_counter() - start)
            if not verdict.ok or verdict.events_checked != count:
                raise RuntimeError(f"audit verify failed on the benchmark database: {verdict}")
            if not signed.ok or signed.signatures_checked != signatures:
                raise RuntimeError(f"audit verify found altered signatures on the benchmark database: {signed}")
            events = count
    return [Row(kind, f"audit verify, {events:,} events, {signatures:,} signatures", "plain SELECT",
                min(verify_times), min(select_times), 3.0, unit="s")]
