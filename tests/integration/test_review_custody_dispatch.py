"""Safety review of custody: a bag that may not be given must not leave the unit."""
from __future__ import annotations

from datetime import timedelta

from mscbatch.audit.context import use_case
from mscbatch.database import utcnow
from mscbatch.lots.models import Bag
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import prescribed_bag, token_of


def test_a_bag_past_its_expiry_cannot_be_dispatched_to_the_ward(app, users, client_as):
    """Allocated while in date, then left in the tank past its expiry (its lot not yet marked expired): the dispatch
    form sent it to the ward, where it could only be refused (and thawed in vain)."""
    session = app.extensions["mscbatch.db"].new_session()
    ward = prescribed_bag(session, state="allocated")
    bag = session.get(Bag, ward.bag_id)
    with use_case(session, user(session, "qa"), "test: the bag's expiry has passed"):
        bag.expires_at = utcnow() - timedelta(hours=1)
    token = token_of(bag)
    session.close()
    response = client_as("technician").post("/ward/dispatch", data={
        "bag": token, "courier": "Fast Courier", "shipper": "Dry shipper DS-3", "temperature_logger_id": "TL-0042"})
    body = response.get_data(as_text=True)
    assert response.status_code == 409, body
    assert "expired" in body and "cannot leave the unit" in body
    session = app.extensions["mscbatch.db"].new_session()
    assert session.get(Bag, ward.bag_id).status == "allocated"
    session.close()
