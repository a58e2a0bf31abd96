"""A recall reads its lots, then QA releases one of them in another transaction before the recall writes
(PostgreSQL, READ COMMITTED). The recall read the lot's status from its first read and never again: the released
lot was judged as still in quarantine (not recalled, its trail event's old value wrong). Each lot is now read
afresh under its lock (lots.services.lock_lot) before the recall decides on it."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from mscbatch.audit.models import AuditEvent
from mscbatch.lots.models import Lot
from mscbatch.recall import services as recall_services
from mscbatch.release import release
from mscbatch.release.demo import enter_panel
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_release_support import seed_quarantine_lot


def test_a_lot_released_while_a_recall_reads_its_lots_is_recalled(app, users, monkeypatch):
    db = app.extensions["mscbatch.db"]
    if db.engine.dialect.name == "sqlite":
        pytest.skip("SQLite: the recall's transaction holds the write lock from its first statement (BEGIN IMMEDIATE)")
    lot_id = seed_quarantine_lot(app, monkeypatch)
    with db.new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id)
        lot_number = session.get(Lot, lot_id).lot_number
    listed = recall_services.affected_lots

    def released_meanwhile(session: Any, scope: str, target_id: int) -> list[Lot]:
        lots = listed(session, scope, target_id)
        assert [lot.status for lot in lots] == ["quarantine"]
        with db.new_session() as other:
            release.release_lot(other, user(other, "qa2"), lot_id, PASSWORD)
        return lots

    monkeypatch.setattr(recall_services, "affected_lots", released_meanwhile)
    with db.new_session() as session:
        started = recall_services.start_recall(session, user(session, "qa"), scope="lot", target_id=lot_id,
                                               reason="supplier notice", password=PASSWORD)
    assert started.recalled_lots == [lot_number] and started.lots_kept == []
    with db.new_session() as session:
        assert session.get(Lot, lot_id).status == "recalled"
        moves = session.execute(select(AuditEvent.old_value, AuditEvent.new_value).where(
            AuditEvent.entity_type == "lot", AuditEvent.entity_id == str(lot_id), AuditEvent.field == "status")
            .order_by(AuditEvent.seq)).all()
        assert moves[-1] == ("released", "recalled"), moves
