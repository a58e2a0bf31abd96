"""Prescriptions: signing allocates the bags; nothing is ever allocated twice, even concurrently (issue 6)."""
from __future__ import annotations

import threading

from sqlalchemy import func, select

from mscbatch.core.identifiers import din_shown
from mscbatch.custody.models import CustodyEvent
from mscbatch.errors import Conflict, DomainError
from mscbatch.lots.models import Bag
from mscbatch.patients import prescriptions
from mscbatch.patients.inventory import calculate
from mscbatch.patients.models import Allocation, Prescription
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_review4_patients_support import dry_run_body, signing_body


def test_a_signed_prescription_allocates_the_bags_and_prints_a_dose_sheet(app, users, client_as):
    import io

    from pypdf import PdfReader

    session = app.extensions["mscbatch.db"].new_session()
    tech, clin = user(session, "technician"), user(session, "clinician")
    bags = lot_with_bags(session, tech, donor(session, tech))
    pid, dins = patient(session, clin).id, [din_shown(b) for b in bags]
    session.close()
    client = client_as("clinician")
    page = client.get(f"/patients/{pid}/dose").get_data(as_text=True)
    bag_ids = page.split('name="bag_ids" type="hidden" value="')[1].split('"')[0]
    weight_id = page.split('name="weight_id" type="hidden" value="')[1].split('"')[0]
    response = client.post(f"/patients/{pid}/prescriptions", data={"level": "2000000", "bag_ids": bag_ids,
                                                                  "weight_id": weight_id, "planned_on": "",
                                                                  "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)
    session = app.extensions["mscbatch.db"].new_session()
    rx = session.scalar(select(Prescription))
    assert rx.locked_at is not None and rx.delivered_cells == 125_000_000
    assert {b.status for b in session.scalars(select(Bag))} == {"allocated"}
    rx_id = rx.id
    session.close()
    pdf = client_as("nurse").get(f"/patients/prescriptions/{rx_id}/dose-sheet.pdf")
    assert pdf.mimetype == "application/pdf"
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.data)).pages).split())
    for din in dins:
        assert din in text
    assert "SLE-UC-001" in text and "12.50" in text and "Prescribed: dose level, weight and bags" in text


def test_a_bag_taken_since_the_dry_run_is_refused_with_recalculate(app, users):
    session = app.extensions["mscbatch.db"].new_session()
    tech, clin = user(session, "technician"), user(session, "clinician")
    lot_with_bags(session, tech, donor(session, tech), bags=6)
    first, second = patient(session, clin), patient(session, clin)
    result = calculate(session, second.id)
    seen, weight_id = [int(d.bag_id) for d in result.allocation.draws], result.weight.id
    session.rollback()
    prescriptions.prescribe(session, clin, PASSWORD, first.id)
    sid = second.id
    session.close()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    response = app.test_client().post(f"/api/v1/patients/{sid}/prescriptions", headers=headers,
                                      json=signing_body(weight_id, seen))
    assert response.status_code == 409
    assert "was just allocated to another patient; recalculate" in response.get_json()["detail"]
    ok = app.test_client().post(f"/api/v1/patients/{sid}/prescriptions", headers=headers,
                                json=dry_run_body(app.test_client(), headers, sid))
    assert ok.status_code == 201, ok.get_json()


def test_cancelling_a_prescription_puts_its_bags_back_into_stock(app, users):
    session = app.extensions["mscbatch.db"].new_session()
    tech, clin = user(session, "technician"), user(session, "clinician")
    lot_with_bags(session, tech, donor(session, tech))
    rx = prescriptions.prescribe(session, clin, PASSWORD, patient(session, clin).id)
    allocated = [a.bag_id for a in session.scalars(select(Allocation).where(Allocation.prescription_id == rx.id))]
    prescriptions.cancel(session, clin, rx.id, "patient withdrew consent", password=PASSWORD)
    assert {b.status for b in session.scalars(select(Bag))} == {"stored"}
    assert session.scalar(select(func.count()).where(Allocation.active_bag_id.is_not(None))) == 0
    for bag_id in allocated:  # the custody log tells it too: allocated, then back in stock, with the reason
        last = session.scalars(select(CustodyEvent).where(CustodyEvent.bag_id == bag_id)
                               .order_by(CustodyEvent.id.desc())).first()
        assert (last.kind, last.from_status, last.to_status) == ("stored", "allocated", "stored")
        assert last.reason == "patient withdrew consent"
    session.rollback()
    session.close()


def test_ten_concurrent_prescriptions_never_allocate_a_bag_twice(app, users):
    factory = app.extensions["mscbatch.db"].new_session
    session = factory()
    tech, clin = user(session, "technician"), user(session, "clinician")
    lot_with_bags(session, tech, donor(session, tech), bags=7)
    patients = [patient(session, clin).id for _ in range(10)]
    dry_run = [int(d.bag_id) for d in calculate(session, patients[0]).allocation.draws]
    session.rollback()
    session.close()
    outcomes: list[object] = []
    barrier = threading.Barrier(10)

    def prescribe(index: int) -> None:
        own = factory()
        try:
            signer = user(own, "clinician")
            own.rollback()
            barrier.wait()
            rx = prescriptions.prescribe(own, signer, PASSWORD, patients[index],
                                         bag_ids=dry_run if index % 2 else None)
            outcomes.append(rx.id)
        except DomainError as error:
            outcomes.append(error)
        finally:
            own.close()

    threads = [threading.Thread(target=prescribe, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(outcomes) == 10
    successes = [o for o in outcomes if isinstance(o, int)]
    refusals = [o for o in outcomes if isinstance(o, DomainError)]
    assert 1 <= len(successes) <= 2 and len(successes) + len(refusals) == 10
    assert all(isinstance(r, Conflict) for r in refusals), [r.message for r in refusals]
    session = factory()
    active = list(session.scalars(select(Allocation.bag_id).where(Allocation.active_bag_id.is_not(None))))
    assert len(active) == len(set(active)) == 3 * len(successes)
    assert session.scalar(select(func.count()).select_from(Bag).where(Bag.status == "allocated")) == len(active)
    session.close()
