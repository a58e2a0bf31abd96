"""Review 7, recalls and traceability, through the pages on both databases: a bag the ward destroys after a recall
held it is not reported as discarded before the recall; the traces say when a patient's infusion started, not the
allocation's time as the day product was "received"; a reagent recall typed as the supplier's notice spells the lot
finds it, and a second recall of one supplier lot under another row of it is refused."""
from __future__ import annotations

import io
import re
from datetime import timedelta
from typing import Any

from pypdf import PdfReader
from sqlalchemy import func, select

from mscbatch.audit.context import use_case
from mscbatch.custody import handover, infusions
from mscbatch.lots.models import Bag, Lot, ReagentLot, ReagentUse
from mscbatch.patients.models import Patient
from mscbatch.recall.models import BagHold, Recall
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.patient_factories import donor, lot_with_bags, user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag
from tests.time_words import site_then_utc


def start(client: Any, scope: str, target: str, reason: str = "Supplier notice: endotoxin above limit") -> Any:
    return client.post("/recalls/new", data={"scope": scope, "target": target, "reason": reason,
                                             "password": PASSWORD})


def pdf_text(response: Any) -> str:
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    return " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(response.data)).pages)


def test_a_held_bag_discarded_on_the_ward_is_not_reported_as_discarded_before_the_recall(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    ward = prescribed_bag(session, state="received")
    lot_number = session.get(Lot, ward.lot_id).lot_number
    din = session.get(Bag, ward.bag_id).din
    session.close()
    qa = client_as("qa")
    assert start(qa, "lot", lot_number).status_code == 302
    session = app.extensions["mscbatch.db"].new_session()
    recall_id = session.scalars(select(Recall.id)).one()
    assert session.scalars(select(BagHold).where(BagHold.bag_id == ward.bag_id)).one().lifted_at is None
    handover.discard(session, user(session, "nurse"), ward.bag_id, reason="Recalled lot: destroyed on the ward",
                     location="Ward 3")
    session.close()

    page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    held_now = page.split('id="held-now">Bags on hold now: <strong>', 1)[1].split("<", 1)[0]
    # the list to notify names patients whose bag left the unit for them, infused or not: not "who received" it
    assert "Patients given or sent affected product (infused, or the bag left the unit for them)" in page
    row = page[page.index(f'data-din="{din}"'):]
    row = row[:row.index("</tr>")]
    assert "Discarded before the recall" not in row
    assert "Discarded after the recall started" in row
    text = pdf_text(qa.get(f"/recalls/{recall_id}/report.pdf"))
    assert "Discarded before the recall" not in text and "Discarded after the recall started" in text
    session = app.extensions["mscbatch.db"].new_session()  # the discarded bag is no longer counted as on hold
    still_held = session.scalar(select(func.count()).select_from(BagHold).join(Bag, Bag.id == BagHold.bag_id).where(
        BagHold.recall_id == recall_id, BagHold.lifted_at.is_(None), Bag.status != "discarded"))
    session.close()
    assert held_now == str(still_held)


def _text(response):  # type: ignore[no-untyped-def]
    """The page's words without its tags (a time is two spans: local, then UTC)."""
    return re.sub(r"<[^>]+>", "", response.get_data(as_text=True))


def test_the_traces_say_when_the_infusion_started_not_the_allocation_as_the_day_received(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    ward = prescribed_bag(session, state="thawed")
    checked_and_confirmed(session, ward)
    infusion = infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                        bag_scan=ward.token, label_key=KEY)
    started = site_then_utc(infusion.started_at)  # the pages say the site's time first, UTC beside it
    code = session.get(Patient, ward.patient_id).code
    session.close()
    qa = client_as("qa")

    forward = _text(qa.get(f"/trace/donors/{ward.donor_id}"))
    assert f"infusion started {started}" in forward and "; allocated " in forward
    bag_page = _text(qa.get(f"/trace/bags/{ward.bag_id}"))
    assert f"infusion started {started}" in bag_page
    backward = qa.get(f"/trace/patients/{ward.patient_id}").get_data(as_text=True)
    assert "<th>Infusion started</th>" in backward
    assert f'<td class="infused-at">{started}' in re.sub(r"<(?!td)[^>]+>", "", backward)
    back_pdf = pdf_text(qa.get(f"/trace/patients/{ward.patient_id}.pdf"))
    assert code in back_pdf and "Infusion started" in back_pdf
    assert "infusion started" in pdf_text(qa.get(f"/trace/donors/{ward.donor_id}.pdf"))


def _reagent_used_by_a_lot(session: Any, *, supplier: str, number: str) -> tuple[int, list[int]]:
    tech = user(session, "technician")
    bags = lot_with_bags(session, tech, donor(session, tech), bags=2, status="quarantine")
    with use_case(session, tech):
        reagent = ReagentLot(reagent_type="medium", name="MEM alpha", supplier=supplier, lot_number=number,
                             expiry_date=site_today() + timedelta(days=200), registered_by_id=tech.id)
        session.add(reagent)
        session.flush()
        session.add(ReagentUse(lot_id=bags[0].lot_id, reagent_lot_id=reagent.id, stage="expansion",
                               used_on=site_today() - timedelta(days=10), recorded_by_id=tech.id))
    session.commit()
    return reagent.id, [b.id for b in bags]


def test_a_reagent_recall_typed_as_the_supplier_spells_the_lot_finds_it(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    reagent_id, bag_ids = _reagent_used_by_a_lot(session, supplier="Acme Media", number="MA 77")
    session.close()
    response = start(client_as("qa"), "reagent_lot", "ma77")  # the supplier's notice: one lot whatever its spacing
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    session = app.extensions["mscbatch.db"].new_session()
    assert session.scalars(select(Recall.reagent_lot_id)).one() == reagent_id
    assert set(session.scalars(select(BagHold.bag_id))) == set(bag_ids)
    session.close()


def test_a_second_recall_of_one_supplier_lot_under_another_row_is_refused(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    first, bag_ids = _reagent_used_by_a_lot(session, supplier="Acme Media", number="MA-78")
    second, _other = _reagent_used_by_a_lot(session, supplier="ACME MEDIA", number="ma-78")  # registered before
    session.close()  # registration refused a second spelling (lots.reagents)
    qa = client_as("qa")
    assert start(qa, "reagent_lot", f"#{first}").status_code == 302
    again = start(qa, "reagent_lot", f"#{second}")
    assert again.status_code == 409 and "is in force already" in again.get_data(as_text=True)
    session = app.extensions["mscbatch.db"].new_session()
    assert len(session.scalars(select(Recall)).all()) == 1
    held = list(session.scalars(select(BagHold.bag_id)))
    assert len(held) == len(set(held)) == 4  # both cell lots, each bag once
    session.close()
