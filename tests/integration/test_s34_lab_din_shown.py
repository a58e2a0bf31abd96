"""Session 34, labelling / lots / release: a bag is named in words as its label names it (core.identifiers.din_shown,
"X9999 26 000001 A", with the check character K), never by the bare stored DIN ("X999926000001"): the reprint and
refusal messages of label printing and the print page, the storage refusals, the bag content correction refusal and
a late OOS's summary of the patients to notify."""
from __future__ import annotations

import html
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from mscbatch.audit.context import use_case
from mscbatch.core.identifiers import din_shown
from mscbatch.errors import Conflict, ValidationFailed
from mscbatch.labelling import services
from mscbatch.lots import corrections
from mscbatch.lots.models import Bag
from mscbatch.lots.storage import store_bag
from mscbatch.release.oos import patients_who_received
from tests.integration.lot_factories import approved_adipose_donor, box, cryopreserved_lot
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import prescribed_bag
from tests.integration.test_labelling import make_lot


def _session(app: Any) -> Any:
    return app.extensions["mscbatch.db"].new_session()


def _names(app: Any, bag_ids: list[int]) -> list[tuple[str, str]]:
    """(stored DIN, DIN as shown) of each bag."""
    with _session(app) as session:
        return [(bag.din, din_shown(bag)) for bag in (session.get(Bag, bag_id) for bag_id in bag_ids)]


def test_a_reprint_refusal_and_the_print_page_name_each_bag_with_its_check_character(
        app, users, client_as):  # type: ignore[no-untyped-def]
    lot_id, bags = make_lot(app, bags=2)
    (raw1, shown1), (raw2, shown2) = _names(app, [bag_id for bag_id, _ in bags])
    with _session(app) as session:
        services.print_labels(session, user(session, "technician"), lot_id, print_format="lot",
                              base_url="https://mscbatch.example.org", key="k")
        with pytest.raises(ValidationFailed) as refused:
            services.print_labels(session, user(session, "technician"), lot_id, print_format="lot",
                                  base_url="https://mscbatch.example.org", key="k")
    said = str(refused.value)
    assert f"Labels were printed before for {shown1}, {shown2}: a reprint needs a reason" in said, said
    assert raw1 not in said and raw2 not in said
    page = html.unescape(client_as("technician").get(f"/labels/lots/{lot_id}").get_data(as_text=True))
    assert f"bag 1 · {shown1}</option>" in page and f"<td>{shown1}, {shown2}</td>" in page  # choice and history
    assert f"· {raw1}</option>" not in page and f"<td>{raw1}, {raw2}</td>" not in page


def test_storage_and_content_correction_refusals_name_the_bag_with_its_check_character(app, users):  # type: ignore[no-untyped-def]
    with _session(app) as session:
        lot_id, made = cryopreserved_lot(session, approved_adipose_donor(session), count=3)
        bag_ids = [bag.id for bag in made]
        box_id = box(session)
        tech = user(session, "technician")
        store_bag(session, tech, bag_ids[0], box_id, 1)
        with use_case(session, user(session, "qa"), "test: QA put the bag on hold"):
            session.get(Bag, bag_ids[2]).status = "on_hold"
    (raw1, shown1), _second, (raw3, shown3) = _names(app, bag_ids)
    with _session(app) as session:
        tech = user(session, "technician")
        with pytest.raises(Conflict) as again:
            store_bag(session, tech, bag_ids[0], box_id, 1, reason="moved back")
        with pytest.raises(Conflict) as occupied:
            store_bag(session, tech, bag_ids[1], box_id, 1)
        with pytest.raises(Conflict) as held:
            corrections.correct_bag_content(session, tech, lot_id, bag_ids[2], volume_ml=Decimal(20),
                                            cells_per_ml=1_100_000, dmso_percent=Decimal(10),
                                            reason="typing error at cryopreservation")
    assert f"Bag {shown1} is already in Box 1" in str(again.value), again.value
    assert f"is occupied by bag {shown1} (bag 1 of 3)" in str(occupied.value), occupied.value
    assert f"Bag 3 of 3 ({shown3}) is on hold" in str(held.value), held.value
    assert not any(raw in str(e.value) for raw in (raw1, raw3) for e in (again, occupied, held))


def test_a_late_oos_summary_of_the_patients_to_notify_names_their_bags_with_the_check_character(
        app, users):  # type: ignore[no-untyped-def]
    with _session(app) as session:
        ward = prescribed_bag(session, state="received")
        session.commit()
        bag = session.get(Bag, ward.bag_id)
        raw, shown = bag.din, din_shown(bag)
        [entry] = patients_who_received(session, ward.lot_id)
        lot_bags = session.scalars(select(Bag).where(Bag.lot_id == ward.lot_id)).all()
    assert f"bag {shown} received" in entry["summary"] and raw not in entry["summary"], entry["summary"]
    assert {b["din"] for b in entry["bags"]} <= {b.din for b in lot_bags}  # the stored data keeps the DIN itself
