"""Session 34, labelling: a label print decides on the lot's status under the lot's lock (PostgreSQL).

print_labels read the lot (session.get) before taking any lock, then locked only the bags. A rejection of the lot
committed between that read and the print (it locks the lot row, not the bags) went unseen: the label was printed
and recorded with the old "quarantine" status for a lot already rejected. The print now locks the lot row first and
reads its status under the lock: a rejection committed meanwhile is seen (the print is refused), or it waits for
the print to commit (the label was printed while the lot could still have one)."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import event, select

from mscbatch.audit.models import AuditEvent
from mscbatch.errors import Conflict
from mscbatch.labelling import services
from mscbatch.labelling.models import LabelPrint
from mscbatch.lots.models import Lot
from mscbatch.release import release
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_labelling import make_lot


def _db(app: Any) -> Any:
    return app.extensions["mscbatch.db"]


def test_a_rejection_committed_after_the_print_first_read_the_lot_never_gets_a_label_printed_after_it(
        app, users):  # type: ignore[no-untyped-def]
    db = _db(app)
    if db.engine.dialect.name != "postgresql":
        pytest.skip("READ COMMITTED interleaving exists on PostgreSQL only (SQLite serialises writers)")
    lot_id, _bags = make_lot(app, status="quarantine", bags=2)
    printer = threading.current_thread()
    rival_done: list[Any] = []

    def reject() -> None:  # QA rejects the lot in a session of its own, the real signed use case
        with db.new_session() as other:
            try:
                release.reject_lot(other, user(other, "qa"), lot_id, PASSWORD, "Sterility positive at day 14")
                rival_done.append("rejected")
            except Exception as error:  # noqa: BLE001 - reported by the assertion below
                rival_done.append(error)

    rival = threading.Thread(target=reject)
    fired: list[bool] = []

    def after_first_lot_read(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        """Right after the print's first read of the lot row: the rejection starts and is given 3 s to commit
        (it commits unless the print holds the lot's lock, then it waits for the print)."""
        if fired or threading.current_thread() is not printer or "FROM lot \nWHERE lot.id" not in statement:
            return
        fired.append(True)
        rival.start()
        rival.join(3)

    event.listen(db.engine, "after_cursor_execute", after_first_lot_read)
    try:
        with db.new_session() as session:
            try:
                services.print_labels(session, user(session, "technician"), lot_id, print_format="lot",
                                      base_url="https://mscbatch.example.org", key="k")
                outcome: Any = "printed"
            except Conflict as refusal:
                session.rollback()
                outcome = refusal
    finally:
        event.remove(db.engine, "after_cursor_execute", after_first_lot_read)
        if rival.is_alive() or fired:
            rival.join(30)
    assert fired and rival_done == ["rejected"], (fired, rival_done)
    with db.new_session() as session:
        assert session.get(Lot, lot_id).status == "rejected"
        rejected_at = session.scalar(select(AuditEvent.seq).where(
            AuditEvent.entity_type == "lot", AuditEvent.entity_id == str(lot_id), AuditEvent.field == "status",
            AuditEvent.new_value == "rejected"))
        printed_at = session.scalars(select(AuditEvent.seq).where(
            AuditEvent.entity_type == LabelPrint.__tablename__, AuditEvent.action == "insert")).all()
    if outcome == "printed":  # the rejection waited for the print's lock: the label came before it
        assert len(printed_at) == 1 and printed_at[0] < rejected_at, (printed_at, rejected_at)
    else:  # the rejection committed first and the print, reading under the lock, saw it
        assert "is rejected" in str(outcome) and printed_at == [], (outcome, printed_at)
