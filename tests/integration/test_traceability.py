"""Traceability (issue 7): forward donor -> lots -> bags -> patients and backward patient -> bags -> lots ->
donor -> reagent lots, as pages and PDF reports, on both databases."""
from __future__ import annotations

import io
from typing import Any

from pypdf import PdfReader
from sqlalchemy import select

from mscbatch.core.identifiers import din_shown
from mscbatch.lots.models import Bag, Lot
from tests.integration.test_recall_support import scene


def text_of(pdf: bytes) -> str:
    return " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(pdf)).pages)


def chain(app: Any, s: Any) -> dict[str, Any]:
    session = app.extensions["mscbatch.db"].new_session()
    try:
        lots = {lot_id: session.get(Lot, lot_id).lot_number
                for lot_id in (s.released_lot_id, s.quarantine_lot_id, s.other_lot_id)}
        bags = list(session.scalars(select(Bag)))
        return {"lots": lots, "dins": {b.id: b.din for b in bags}, "shown": {b.id: din_shown(b) for b in bags}}
    finally:
        session.close()


def test_forward_from_a_donor_lists_lots_bags_and_patients(app, users, client_as):
    s = scene(app)
    c = chain(app, s)
    client = client_as("clinician")
    page = client.get(f"/trace/donors/{s.donor_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for lot_id in (s.released_lot_id, s.quarantine_lot_id):
        assert f'data-lot="{c["lots"][lot_id]}"' in html
    assert f'data-lot="{c["lots"][s.other_lot_id]}"' not in html  # another donor's lot
    for bag_id in s.stock_bag_ids + [s.infused_bag_id]:
        assert f'data-din="{c["dins"][bag_id]}"' in html
    assert s.patient_code in html and 'id="patient-count">1<' in html
    assert "MEM alpha MA-77" in html
    pdf = client.get(f"/trace/donors/{s.donor_id}.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = text_of(pdf.data)
    assert s.donor_code in text and s.patient_code in text and c["lots"][s.released_lot_id] in text


def test_backward_from_a_patient_reaches_bags_lots_donor_and_reagent_lots(app, users, client_as):
    s = scene(app)
    c = chain(app, s)
    client = client_as("qa")
    page = client.get(f"/trace/patients/{s.patient_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'data-din="{c["dins"][s.infused_bag_id]}" data-lot="{c["lots"][s.released_lot_id]}" ' \
           f'data-donor="{s.donor_code}"' in html
    assert "MEM alpha MA-77" in html and "Acme Media" in html
    assert c["lots"][s.quarantine_lot_id] not in html  # never allocated to this patient
    pdf = client.get(f"/trace/patients/{s.patient_id}.pdf")
    text = text_of(pdf.data)
    assert s.donor_code in text and c["shown"][s.infused_bag_id] in text and "MA-77" in text  # as its label says it


def test_forward_from_a_reagent_lot_and_a_lot_and_the_bag_page(app, users, client_as):
    s = scene(app)
    c = chain(app, s)
    client = client_as("qa")
    html = client.get(f"/trace/reagents/{s.reagent_lot_id}").get_data(as_text=True)
    assert f'data-lot="{c["lots"][s.released_lot_id]}"' in html and f'data-lot="{c["lots"][s.quarantine_lot_id]}"' in html
    assert client.get(f"/trace/reagents/{s.reagent_lot_id}.pdf").mimetype == "application/pdf"
    lot_page = client.get(f"/trace/lots/{s.released_lot_id}").get_data(as_text=True)
    assert s.patient_code in lot_page and 'id="recall-link"' in lot_page
    assert s.patient_code in text_of(client.get(f"/trace/lots/{s.released_lot_id}.pdf").data)
    bag_page = client_as("technician").get(f"/trace/bags/{s.infused_bag_id}")
    assert bag_page.status_code == 200 and s.patient_code not in bag_page.get_data(as_text=True)
    assert s.patient_code in client.get(f"/trace/bags/{s.infused_bag_id}").get_data(as_text=True)
    assert client_as("technician").get(f"/trace/donors/{s.donor_id}").status_code == 403


def test_a_trace_starts_from_a_typed_code(app, users, client_as):
    s = scene(app)
    client = client_as("clinician")
    assert client.get("/trace").status_code == 200
    found = client.get("/trace", query_string={"kind": "patient", "code": s.patient_code.lower()})
    assert found.status_code == 302 and found.headers["Location"].endswith(f"/trace/patients/{s.patient_id}")
    found = client.get("/trace", query_string={"kind": "donor", "code": s.donor_code})
    assert found.headers["Location"].endswith(f"/trace/donors/{s.donor_id}")
    assert client.get("/trace", query_string={"kind": "lot", "code": "NOPE"}).status_code == 404


def test_the_bag_page_shows_the_custody_timeline_when_custody_is_recorded(app, users, client_as):
    import pytest

    custody = pytest.importorskip("mscbatch.custody.handover")
    from tests.integration.patient_factories import user

    s = scene(app)
    assert s.dispatched_bag_id is not None
    session = app.extensions["mscbatch.db"].new_session()
    custody.dispatch(session, user(session, "technician"), s.dispatched_bag_id, courier="Fast Courier",
                     shipper="Dry shipper DS-3", temperature_logger_id="TL-0042", location="Cell therapy unit")
    session.close()
    html = client_as("nurse").get(f"/trace/bags/{s.dispatched_bag_id}").get_data(as_text=True)
    assert "Chain of custody" in html and "Cell therapy unit" in html and "dispatched" in html
