"""Review 2 of lots: QA could move a released lot whose bags expire in months to "expired" (a final state) with a
plain button and a reason, no signature: a way of taking a lot out of use without the signed rejection or recall.
"expired" is now allowed only once the lot's expiry has passed; before, the page does not offer it and the
request is refused with words saying to recall (or reject) it with a signature. Through the lot page and the API."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from mscbatch.audit.context import use_case
from mscbatch.database import utcnow
from mscbatch.lots.models import Lot
from tests.conftest import api_token_for
from tests.integration.lot_factories import approved_adipose_donor, cryopreserved_lot
from tests.integration.test_donors import db_session, user  # noqa: F401 (fixture)
from tests.time_words import site_then_utc


def _released_lot(session: Any) -> int:
    """A cryopreserved lot put in "released" directly: the release signing is not what is tested here."""
    lot_id, _bags = cryopreserved_lot(session, approved_adipose_donor(session))
    with use_case(session, user(session, "qa"), "released (test set-up)"):
        session.get(Lot, lot_id).status = "released"
    session.rollback()
    return lot_id


def _status(session: Any, lot_id: int) -> str:
    status = session.get(Lot, lot_id).status
    session.rollback()
    return status


def test_a_released_lot_cannot_be_marked_expired_before_its_expiry(app, users, db_session, client_as):  # noqa: F811
    lot_id = _released_lot(db_session)
    lot = db_session.get(Lot, lot_id)
    assert lot.expires_at > utcnow() + timedelta(days=30)
    number = lot.lot_number
    expires = site_then_utc(lot.expires_at)
    db_session.rollback()
    qa = client_as("qa")
    assert 'value="expired"' not in qa.get(f"/lots/{lot_id}").get_data(as_text=True)

    refused = qa.post(f"/lots/{lot_id}/transition", data={"transition-target": "expired",
                                                          "transition-reason": "clean-up"})
    assert refused.status_code == 409
    text = refused.get_data(as_text=True)
    assert f"Lot {number} expires on {expires}: it cannot be marked expired before then" in text, text
    assert "recalls it (or rejects it) with an electronic signature" in text
    assert _status(db_session, lot_id) == "released"

    answer = app.test_client().post(f"/api/v1/lots/{lot_id}/transitions", json={"target": "expired", "reason": "x"},
                                    headers={"Authorization": f"Bearer {api_token_for(app, 'qa')}"})
    assert answer.status_code == 409
    assert "it cannot be marked expired before then" in str(answer.get_json())
    assert _status(db_session, lot_id) == "released"


def test_a_lot_past_its_expiry_is_marked_expired_by_qa(app, users, db_session, client_as):  # noqa: F811
    lot_id = _released_lot(db_session)
    with use_case(db_session, user(db_session, "qa"), "expiry reached (test set-up)"):
        db_session.get(Lot, lot_id).expires_at = utcnow() - timedelta(minutes=1)
    db_session.rollback()
    qa = client_as("qa")
    assert 'value="expired"' in qa.get(f"/lots/{lot_id}").get_data(as_text=True)
    done = qa.post(f"/lots/{lot_id}/transition", data={"transition-target": "expired",
                                                       "transition-reason": "Shelf life reached"})
    assert done.status_code == 302
    assert _status(db_session, lot_id) == "expired"
