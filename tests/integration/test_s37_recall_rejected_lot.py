"""A recall of a rejected lot is refused (409), nothing recorded: rejected before any release, none of its bags can
be labelled, sent or given, and a signed, active recall 'of' it said a lot had gone out that never did ('No lot is
affected'). A lot in quarantine may still be recalled: its bags are held while the alert is investigated."""
from __future__ import annotations

import html

from sqlalchemy import func, select

from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.lots.models import Lot
from mscbatch.lots.services import apply_lot_transition
from mscbatch.recall.models import Recall
from mscbatch.signatures.models import Signature
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_recall_support import scene


def test_a_rejected_lot_is_not_recalled_and_nothing_is_recorded(app, users, client_as):  # type: ignore[no-untyped-def]
    s = scene(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        qa_user = user(session, "qa")
        with use_case(session, qa_user, "test set-up: QA rejects the quarantine lot"):
            apply_lot_transition(session, qa_user, session.get(Lot, s.quarantine_lot_id), "rejected")
        lot_number = session.get(Lot, s.quarantine_lot_id).lot_number
        session.commit()
    qa = client_as("qa")  # signed in (an audited session) before the count
    with app.extensions["mscbatch.db"].new_session() as session:
        before = (session.scalar(select(func.count()).select_from(AuditEvent)),
                  session.scalar(select(func.count()).select_from(Signature)))
    refused = qa.post("/recalls/new", data={"scope": "lot", "target": lot_number, "password": PASSWORD,
                                            "reason": "Supplier sterility alert on the medium"})
    words = html.unescape(refused.get_data(as_text=True))
    assert refused.status_code == 409, words
    assert f"Lot {lot_number} is rejected: it was never released and none of its bags can be labelled, sent or " \
           "given, so there is nothing to recall. Nothing was recorded." in words, words
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.scalar(select(func.count()).select_from(Recall)) == 0
        assert (session.scalar(select(func.count()).select_from(AuditEvent)),
                session.scalar(select(func.count()).select_from(Signature))) == before


def test_a_quarantine_lot_may_still_be_recalled_to_hold_its_bags(app, users, client_as):  # type: ignore[no-untyped-def]
    s = scene(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        lot_number = session.get(Lot, s.quarantine_lot_id).lot_number
    started = client_as("qa").post("/recalls/new", data={"scope": "lot", "target": lot_number, "password": PASSWORD,
                                                        "reason": "Supplier sterility alert on the medium"})
    assert started.status_code == 302, started.get_data(as_text=True)
