"""The audit trail names a bag by its DIN as its label prints it, a lot by its number and a donor by its code,
beside the record's id: "bag 24" alone told a reviewer nothing."""
from __future__ import annotations

import html

from mscbatch.core.identifiers import din_shown
from mscbatch.donors.models import Donor
from mscbatch.lots.models import Lot
from tests.integration.patient_factories import donor, lot_with_bags, user


def test_bag_lot_and_donor_rows_say_the_name_users_know(app, users, client_as):  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        tech = user(session, "technician")
        the_donor = donor(session, tech)
        bag = lot_with_bags(session, tech, the_donor, bags=1)[0]
        session.commit()
        bag_id, shown = bag.id, din_shown(bag)
        lot = session.get(Lot, bag.lot_id)
        lot_id, lot_number = lot.id, lot.lot_number
        donor_id, code = the_donor.id, session.get(Donor, the_donor.id).code
    qa = client_as("qa")
    for record_type, record_id, name in (("bag", bag_id, shown), ("lot", lot_id, lot_number),
                                         ("donor", donor_id, code)):
        answer = qa.get("/audit", query_string={"entity_type": record_type, "entity_id": str(record_id)})
        page = html.unescape(answer.get_data(as_text=True))
        assert answer.status_code == 200
        assert f'{record_type} {record_id} <span class="known-as">({name})</span>' in page, (record_type, page)
