"""Review 2 of lots, storage: a bag allocated to a patient (still in the tank, reserved by a prescription) could not
be moved, e.g. out of a failing tank: storage refused it as "not in the unit's custody" while the custody log
allows a "moved" event from allocated. The states a bag can be moved in now come from that one place
(custody.services.STATELESS_FROM["moved"]); the bag stays allocated to its patient. Through the API and the lot
page."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mscbatch.lots import storage
from mscbatch.lots.models import Bag
from mscbatch.patients import prescriptions
from mscbatch.patients.models import Allocation
from tests.conftest import PASSWORD, api_token_for
from tests.integration.lot_factories import box
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_donors import db_session  # noqa: F401 (fixture)


def _allocated_bag(session: Any) -> tuple[int, int, int]:
    """One stored bag in box position 1, allocated by a signed prescription: (lot, bag, box)."""
    tech, clinician = user(session, "technician"), user(session, "clinician")
    [bag] = lot_with_bags(session, tech, donor(session, tech), bags=1, cells=200_000_000, placed=False)
    box_id = box(session)
    storage.store_bag(session, tech, bag.id, box_id, 1)
    prescriptions.prescribe(session, clinician, PASSWORD, patient(session, clinician).id)
    found = session.get(Bag, bag.id)
    assert found.status == "allocated"
    ids = (found.lot_id, found.id, box_id)
    session.rollback()
    return ids


def _where(session: Any, bag_id: int) -> tuple[str, int | None, int | None]:
    bag = session.get(Bag, bag_id)
    active = session.scalar(select(Allocation.active_bag_id).where(Allocation.bag_id == bag_id))
    session.rollback()
    return bag.status, bag.position, active


def test_an_allocated_bag_is_moved_through_the_api_and_stays_allocated(app, users, db_session):  # noqa: F811
    _lot_id, bag_id, box_id = _allocated_bag(db_session)
    answer = app.test_client().post(f"/api/v1/bags/{bag_id}/storage",
                                    json={"box_id": box_id, "position": 9, "reason": "Tank LN2 alarm: transfer"},
                                    headers={"Authorization": f"Bearer {api_token_for(app, 'technician')}"})
    assert answer.status_code == 200, answer.get_json()
    assert _where(db_session, bag_id) == ("allocated", 9, bag_id)


def test_an_allocated_bag_is_offered_and_moved_on_the_lot_page(app, users, db_session, client_as):  # noqa: F811
    lot_id, bag_id, box_id = _allocated_bag(db_session)
    tech = client_as("technician")
    page = tech.get(f"/lots/{lot_id}").get_data(as_text=True)
    assert f'<option value="{bag_id}"' in page.split('name="store-bag_id"')[1].split("</select>")[0]
    moved = tech.post(f"/lots/{lot_id}/store", data={"store-bag_id": bag_id, "store-box_id": box_id,
                                                     "store-position": "B2", "store-reason": "Tank LN2 alarm"})
    assert moved.status_code == 302
    assert _where(db_session, bag_id) == ("allocated", 5, bag_id)
