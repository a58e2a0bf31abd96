"""A conditional release's flag named its pending tests by their ids ("CONDITIONAL RELEASE: pending sterility"); the
words now name them as the lot's specification does ("Sterility"), as the LATE OOS flag already did
(release.queries.spec_test_names). The API's `pending_tests` stays the ids a client matches on."""
from __future__ import annotations

from sqlalchemy import select

from mscbatch.lots.models import Bag, Lot
from mscbatch.release import release
from mscbatch.release.demo import enter_panel
from mscbatch.release.queries import release_state
from tests.conftest import PASSWORD, api_token_for
from tests.integration.test_release_support import seed_quarantine_lot, user

FLAG = "CONDITIONAL RELEASE: pending Sterility"


def test_the_conditional_release_flag_names_the_pending_tests_as_the_specification_does(
        app, users, client_as, monkeypatch):  # type: ignore[no-untyped-def]
    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id, skip=("sterility",))
        release.release_lot(session, user(session, "qa"), lot_id, PASSWORD, conditional_tests=("sterility",),
                            justification="Sterility incubating, 14 days; patient scheduled")
        session.commit()
        state = release_state(session, session.get(Lot, lot_id))
        assert state.flag == FLAG
        assert state.pending_tests == ("sterility",) and state.pending_names == ("Sterility",)
        bag_id = session.scalar(select(Bag.id).where(Bag.lot_id == lot_id).order_by(Bag.id).limit(1))

    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}
    answer = app.test_client().get(f"/api/v1/release/bags/{bag_id}", headers=headers).get_json()
    assert answer["flag"] == FLAG and answer["pending_tests"] == ["sterility"]  # ids for clients, names in words
    assert "pending_names" not in answer
    assert FLAG in client_as("qa2").get(f"/release/lots/{lot_id}").get_data(as_text=True)
