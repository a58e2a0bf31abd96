"""A bag that became unfit on the ward is not thawed (found by review): a recall, an expiry, a hold reached the bag
after it left the unit, and the nurse's "Thaw" still thawed it. The bedside check would then stop it, but a thawed
bag is lost (familial marrow products are few) and no longer the frozen bag the inquiry needs. The thaw now makes
the product checks of the dispatch and refuses in words, leaving the bag as it was, with nothing written."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.custody.models import CustodyEvent
from mscbatch.database import utcnow
from mscbatch.lots.models import Bag
from mscbatch.recall import services as recalls
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import prescribed_bag


def _written(app: Any) -> tuple[int, int]:
    with app.extensions["mscbatch.db"].new_session() as session:
        return (session.scalar(select(func.count()).select_from(CustodyEvent)),
                session.scalar(select(func.count()).select_from(AuditEvent)))


def _status(app: Any, bag_id: int) -> str:
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.get(Bag, bag_id).status


def test_a_bag_whose_lot_was_recalled_on_the_ward_is_not_thawed(app, users, client_as):
    with app.extensions["mscbatch.db"].new_session() as session:
        ward = prescribed_bag(session, state="received")
        recalls.start_recall(session, user(session, "qa"), scope="lot", target_id=ward.lot_id,
                             reason="late positive sterility", password=PASSWORD)
    nurse = client_as("nurse")  # signed in first: the sign-in is audited
    before = _written(app)
    answer = nurse.post("/ward/event", data={"bag": ward.token, "action": "thaw"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 409, page
    assert "DO NOT THAW bag" in page and "has been RECALLED" in page and "Keep it frozen" in page
    assert _status(app, ward.bag_id) == "received" and _written(app) == before


def test_an_expired_bag_is_not_thawed_through_the_api_either(app, users):
    with app.extensions["mscbatch.db"].new_session() as session:
        ward = prescribed_bag(session, state="received")
        with use_case(session, user(session, "qa"), "test: the bag's expiry has passed"):
            session.get(Bag, ward.bag_id).expires_at = utcnow() - timedelta(minutes=5)
    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}  # made first: a new token is audited
    before = _written(app)
    answer = app.test_client().post("/api/v1/custody/events", json={"kind": "thawed", "bag": ward.token},
                                    headers=headers)
    assert answer.status_code == 409, answer.get_json()
    assert "DO NOT THAW" in answer.get_json()["detail"] and "it expired on" in answer.get_json()["detail"]
    assert _status(app, ward.bag_id) == "received" and _written(app) == before


def test_a_fit_bag_on_the_ward_is_thawed(app, users, client_as):
    with app.extensions["mscbatch.db"].new_session() as session:
        ward = prescribed_bag(session, state="received")
    assert client_as("nurse").post("/ward/event", data={"bag": ward.token, "action": "thaw"}).status_code == 302
    assert _status(app, ward.bag_id) == "thawed"
