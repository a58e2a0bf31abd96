"""The bedside STOP of a held bag names the recall (R-n) in a nurse's words, not QA's free-text reason (any length:
on a tablet it pushed the STOP off the screen) nor a UTC day or "completed" (read as "the recall is over"). The unit's
own pages keep the reason, with the recall's days as the site's days."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from mscbatch.custody import checks
from mscbatch.lots.models import Bag
from mscbatch.patients.models import Patient
from mscbatch.recall.models import Recall
from mscbatch.recall.queries import bag_hold, recall_words
from tests.conftest import TEST_CONFIG
from tests.integration.test_recall import scene, start

pytestmark = pytest.mark.usefixtures("users")
REASON = "Look-back retest of the retained donor sample: anti-HIV-1/2 reactive " + "(confirmation pending) " * 40


def test_the_ward_stop_names_the_recall_not_its_reason(app, client_as):  # type: ignore[no-untyped-def]
    s = scene(app)
    assert start(client_as("qa"), "donor", s.donor_code, reason=REASON).status_code == 302
    session = app.extensions["mscbatch.db"].new_session()
    try:
        bag = session.get(Bag, s.dispatched_bag_id)
        recall_id = session.scalar(select(Recall.id).order_by(Recall.id.desc()))
        wristband = session.get(Patient, s.patient_id).wristband_id
        result = checks.evaluate(session, wristband, bag.din + bag.check_character, TEST_CONFIG["LABEL_KEY"])
        [held] = [f.message for f in result.failures if f.code == "on_hold"]
        assert held == f"This bag is ON HOLD (recall R-{recall_id}). Do not give it. Call the cell therapy unit."
        assert "anti-HIV" in (bag_hold(session, bag.id) or "")  # the unit's pages keep QA's reason
    finally:
        session.close()


def test_a_recalls_days_are_the_sites_days():
    recall = Recall(id=7, scope="lot", reason="Supplier notice", status="completed",
                    started_at=datetime(2026, 12, 5, 23, 30, tzinfo=UTC), ended_at=datetime(2026, 12, 6, 23, 10, tzinfo=UTC))
    words = recall_words(recall)  # Paris: 00:30 on the 6th, 00:10 on the 7th
    assert words == "recall R-7 (lot recall started 2026-12-06, completed 2026-12-07): Supplier notice", words
