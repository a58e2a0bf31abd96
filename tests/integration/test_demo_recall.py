"""The demo's recall (mscbatch.recall.demo, the last of mscbatch.demo.DEMO_STEPS), seeded twice as
tests/integration/test_demo.py does: a donor recall is active, reaching only the second adipose donor's lot, its bags
held, the lookback closed by it, the donor no longer approved; QA sees it on the Recalls page; the other demo stories
are untouched (the late deviation on the first adipose lot still waits for QA's assessment, and QA can sign it); a
second seeding adds nothing."""
from __future__ import annotations

from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.auth.models import User
from mscbatch.demo import DEMO_STEPS, seed_demo
from mscbatch.donors.models import Donor, DonorLookback
from mscbatch.lots.models import Bag, Deviation, Lot
from mscbatch.recall.demo import RECALL_REASON, demo_recall, recall_donor
from mscbatch.recall.models import BagHold, Recall
from mscbatch.release import deviations
from mscbatch.release.demo import DEMO_LATE_DEVIATION, DEMO_PASSWORD
from mscbatch.release.queries import deviations_to_assess
from mscbatch.signatures.models import Signature
from tests.conftest import login


def _counts(session) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {model.__name__: session.scalar(select(func.count()).select_from(model))
            for model in (Donor, DonorLookback, Lot, Bag, Recall, BagHold, Deviation, Signature, AuditEvent)}


def test_the_demo_leaves_an_active_donor_recall_for_qa_and_keeps_the_other_stories(app):
    session = app.extensions["mscbatch.db"].new_session()
    try:
        first = seed_demo(session, hash_profile="fast")
        session.rollback()
        assert DEMO_STEPS[-1][0].startswith("Demo recall"), "the recall is the demo's last step"
        recall = demo_recall(session)
        assert recall is not None and recall.status == "active" and recall.scope == "donor"
        assert recall.reason == RECALL_REASON
        donor = recall_donor(session)
        assert recall.donor_id == donor.id
        text = "\n".join(first)
        assert f"R-{recall.id}" in text and "Recalls" in text, text

        # only the new lot is recalled by it; its 4 bags are held, none of another lot (the demo's other recalled
        # lot, MSC-...-0006, is the late-OOS recall's: mscbatch.recall.demo_notices, its bags all infused, none held)
        recalled = list(session.scalars(select(Lot).where(Lot.status == "recalled", Lot.donor_id == donor.id)))
        [lot] = recalled
        assert session.scalar(select(func.count()).select_from(Lot).where(Lot.status == "recalled")) == 2
        assert lot.donor_id == donor.id and lot.product_id == "AT-MSC"
        holds = list(session.scalars(select(BagHold).where(BagHold.recall_id == recall.id)))
        lot_bags = list(session.scalars(select(Bag).where(Bag.lot_id == lot.id)))
        assert len(lot_bags) == 4 and {h.bag_id for h in holds} == {b.id for b in lot_bags}
        assert all(h.lifted_at is None for h in holds)
        assert session.scalar(select(func.count()).select_from(BagHold)) == 4

        # the lookback the late positive opened is closed by the recall; the donor is no longer approved
        [lookback] = session.scalars(select(DonorLookback).where(DonorLookback.donor_id == donor.id))
        assert lookback.closed_at is not None and recall.lookback_id == lookback.id
        assert lookback.closure_note.startswith(f"Recall R-{recall.id} started")
        assert donor.status != "approved"
        first_adipose = session.scalar(select(Donor).where(Donor.tissue_source == "adipose_tissue",
                                                           Donor.initials == "AB"))
        assert first_adipose.status == "approved"

        # the late deviation on the first adipose lot still waits for QA's assessment
        late = session.scalar(select(Deviation).where(Deviation.description == DEMO_LATE_DEVIATION))
        assert session.get(Lot, late.lot_id).lot_number == "MSC-2026-0001"
        assert late.id in {d.id for d, _lot in deviations_to_assess(session)}
        recall_id, donor_code, lot_number, late_id = recall.id, donor.code, lot.lot_number, late.id
        session.rollback()  # the SQLite write lock: released before the client's requests

        # QA's Recalls page lists it, and its page shows the held bags
        client = app.test_client()
        assert login(client, "qa", DEMO_PASSWORD).status_code == 302
        page = client.get("/recalls")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert f"R-{recall_id}" in html and donor_code in html
        detail = client.get(f"/recalls/{recall_id}")
        assert detail.status_code == 200 and lot_number in detail.get_data(as_text=True)

        # a second seeding adds nothing and says where the recall stands
        before = _counts(session)
        second = seed_demo(session, hash_profile="fast")
        session.rollback()
        assert _counts(session) == before, "\n".join(second)
        again = "\n".join(second)
        assert f"R-{recall_id}, donor {donor_code}" in again and "active" in again and "4 bag(s) held" in again, again

        # and QA can still sign the late deviation's assessment
        qa2 = session.scalar(select(User).where(User.username == "qa2"))
        deviations.assess_deviation(session, qa2, late_id, outcome="no_impact",
                                    rationale="Tank log stayed below -150 C throughout.", password=DEMO_PASSWORD)
        session.rollback()
        assert late_id not in {d.id for d, _lot in deviations_to_assess(session)}
    finally:
        session.close()
