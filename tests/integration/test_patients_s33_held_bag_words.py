"""Tablet walkthrough, session 33: cancelling a course whose bags a recall holds said "<DIN> back in stock", as if
the bag could be prescribed again: it is back in the unit, on hold, for no patient. Bags are named with their check
character, as everywhere else."""
from __future__ import annotations

import re

from sqlalchemy import select

from mscbatch.core.identifiers import din_shown
from mscbatch.lots.models import Bag
from mscbatch.patients.models import Allocation
from mscbatch.recall import services as recalls
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import ward_bag


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_a_held_bag_let_go_by_a_cancel_is_not_said_back_in_stock(app, users, client_as):
    ward = ward_bag(app, state="allocated")  # the course's bags still in the unit
    with app.extensions["mscbatch.db"].new_session() as session:
        recalls.start_recall(session, user(session, "qa"), scope="lot", target_id=ward.lot_id,
                             reason="late positive sterility culture", password=PASSWORD)
        shown = din_shown(session.get(Bag, ward.bag_id))
        prescription_id = session.scalar(select(Allocation.prescription_id).where(Allocation.bag_id == ward.bag_id))
    page = _text(client_as("clinician").post(f"/patients/prescriptions/{prescription_id}/cancel",
                                              data={"password": PASSWORD, "reason": "lot recalled: new course from another lot"},
                                              follow_redirects=True).get_data(as_text=True))
    assert f"{shown} back in the unit, ON HOLD (on hold by" in page, page[:3000]
    assert f"{shown} back in stock" not in page
