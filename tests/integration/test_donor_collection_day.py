"""A donor's serology and NAT count from the day the tissue is really collected (DOMAIN.md section 3: "living
tissue donors: sample at donation or up to +7 days ... A result outside its window does not count: the test is
'missing', not 'negative'").

QA approves a donor on the screening judged at the planned collection. Before, a lot collected months later was
still "approved" (the samples were never compared with the real donation day) and could be released. Now the
lot's own collection day is judged again: outside the windows the lot is flagged pending and cannot be released
until the donor is screened for that donation.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from mscbatch.lots.models import Lot
from mscbatch.lots.services import current_gate
from mscbatch.release.release import refusals
from tests.integration.lot_factories import TODAY, approved_adipose_donor, start_lot
from tests.integration.test_donors import db_session, user  # noqa: F401 (fixture)


def test_a_lot_collected_outside_the_sample_windows_is_pending(app, users, db_session, client_as):  # noqa: F811
    donor_id = approved_adipose_donor(db_session, days_ago=20)  # samples taken the day after a donation 20 days ago
    within = start_lot(db_session, donor_id, days_ago=20)
    assert current_gate(db_session, db_session.get(Lot, within)) == "approved"
    db_session.rollback()

    later = client_as("technician").post("/lots/new", data={
        "donor_id": donor_id, "product_id": "AT-MSC", "collection_at": (TODAY - timedelta(days=2)).isoformat() + "T09:00",
        "collection_site": "Theatre 3", "tissue_amount": "40", "tissue_unit": "g"})
    assert later.status_code == 302, later.get_data(as_text=True)[:2000]
    lot = db_session.scalars(select(Lot).order_by(Lot.id.desc())).first()
    assert lot is not None and lot.id != within
    assert lot.donor_gate == "pending" and lot.eligibility_pending  # 18 days after the samples: not covered
    assert current_gate(db_session, lot) == "pending"
    assert any("donor" in reason for reason in refusals(db_session, lot, user(db_session, "qa")))


def test_the_lot_state_machine_judges_the_donor_at_the_lots_own_collection_day(app, users, db_session):  # noqa: F811
    """apply_lot_transition, the one place a lot is moved to released, judges the donor gate at the lot's own
    collection day, as the release page does: at the planned collection (its old call) the donor of a lot collected
    18 days after the samples read "approved"."""
    import pytest

    from mscbatch.audit.context import use_case
    from mscbatch.errors import Conflict
    from mscbatch.lots.services import apply_lot_transition
    from tests.integration.lot_factories import start_lot

    donor_id = approved_adipose_donor(db_session, days_ago=20)
    lot = db_session.get(Lot, start_lot(db_session, donor_id, days_ago=2))  # 18 days after the samples
    with use_case(db_session, user(db_session, "technician"), "test set-up: the lot's record was completed"):
        lot.status = "quarantine"
    db_session.commit()
    with pytest.raises(Conflict), use_case(db_session, user(db_session, "qa"), "release"):
        apply_lot_transition(db_session, user(db_session, "qa"), lot, "released")
    db_session.rollback()
    assert db_session.get(Lot, lot.id).status == "quarantine"
