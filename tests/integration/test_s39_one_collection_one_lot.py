"""One collection, one lot (lots.services.create_lot), through the new-lot page and the API.

Back and "Start lot" again (or a double click) started a second lot with the same donor, collection date and time
and product; a cord donor's lots could carry any number of collection days, though a cord is collected once, at the
birth. A repeat of a collection is refused (409) naming the lot already started, unless the technician says it is
deliberately another lot of that collection (the box on the page, same_collection_as_existing in the API: the audit
trail records it); a cord donor's lot on another day is refused naming the collection date. Nothing is written on a
refusal. Adipose (and marrow) donors may give lots from several collections."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.donors.models import Donor
from mscbatch.lots.models import Lot
from tests.conftest import api_token_for
from tests.integration.lot_factories import (
    COLLECTION_DAYS_AGO,
    TODAY,
    approved_adipose_donor,
    pending_cord_donor,
)

DAY = TODAY - timedelta(days=COLLECTION_DAYS_AGO)


def _form(donor_id: int, product: str, day: Any = DAY, hour: str = "09:00", **extra: str) -> dict[str, Any]:
    return {"donor_id": donor_id, "product_id": product, "collection_at": f"{day.isoformat()}T{hour}",
            "collection_site": "Theatre 3", "tissue_amount": "40", "tissue_unit": "g", **extra}


def _json(donor_id: int, product: str, day: Any = DAY, **extra: Any) -> dict[str, Any]:
    return {"donor_id": donor_id, "product_id": product, "collection_at": f"{day.isoformat()}T09:00:00+01:00",
            "collection_site": "Theatre 3", "tissue_amount": "40", "tissue_unit": "g", **extra}


def _lots(session: Any, donor_id: int) -> list[Lot]:
    session.rollback()
    found = list(session.scalars(select(Lot).where(Lot.donor_id == donor_id).order_by(Lot.id)))
    session.rollback()  # db_session holds SQLite's write lock until then
    return found


def _events(session: Any) -> int:
    session.rollback()
    count = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
    session.rollback()
    return count


def test_a_page_sent_twice_is_refused_then_allowed_with_the_box(app, users, db_session, client_as):
    donor_id = approved_adipose_donor(db_session)
    code = db_session.get(Donor, donor_id).code
    db_session.rollback()
    tech = client_as("technician")
    first = tech.post("/lots/new", data=_form(donor_id, "AT-MSC"))
    assert first.status_code == 302, first.get_data(as_text=True)[:2000]
    [lot] = _lots(db_session, donor_id)
    before = _events(db_session)

    again = tech.post("/lots/new", data=_form(donor_id, "AT-MSC"))  # Back, then "Start lot" again
    html = again.get_data(as_text=True)
    assert again.status_code == 409, html[:2000]
    assert f"Collection date and time: donor {code} already has lot {lot.lot_number}" in html
    assert f"Another lot from the same collection as {lot.lot_number}" in html  # the box, now shown
    assert 'name="same_collection_as_existing"' in html and 'value="Theatre 3"' in html  # typed values kept
    assert [x.id for x in _lots(db_session, donor_id)] == [lot.id] and _events(db_session) == before

    meant = tech.post("/lots/new", data=_form(donor_id, "AT-MSC", same_collection_as_existing="y"))
    assert meant.status_code == 302, meant.get_data(as_text=True)[:2000]
    second = _lots(db_session, donor_id)[-1]
    assert second.id != lot.id and second.collection_at == lot.collection_at
    reason = db_session.scalar(select(AuditEvent.reason).where(
        AuditEvent.entity_type == "lot", AuditEvent.entity_id == str(second.id), AuditEvent.action == "insert"))
    lot_number = lot.lot_number
    db_session.rollback()  # before the next request: a transaction left open holds SQLite's write lock (a 503)
    assert reason and f"Another lot from the same collection as {lot_number}" in reason, reason

    fresh = tech.get("/lots/new")
    assert fresh.status_code == 200
    assert 'name="same_collection_as_existing"' not in fresh.get_data(as_text=True)  # the box only after a refusal


def test_the_api_refuses_a_repeat_unless_told(app, users, db_session, client_as):
    donor_id = approved_adipose_donor(db_session)
    db_session.rollback()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'technician')}"}
    client = app.test_client()
    made = client.post("/api/v1/lots", json=_json(donor_id, "AT-MSC"), headers=headers)
    assert made.status_code == 201, made.get_json()
    before = _events(db_session)
    again = client.post("/api/v1/lots", json=_json(donor_id, "AT-MSC"), headers=headers)
    assert again.status_code == 409, again.get_json()
    assert made.get_json()["lot_number"] in again.get_data(as_text=True)
    assert "collection_at" in again.get_data(as_text=True)
    assert len(_lots(db_session, donor_id)) == 1 and _events(db_session) == before
    meant = client.post("/api/v1/lots", json=_json(donor_id, "AT-MSC", same_collection_as_existing=True),
                        headers=headers)
    assert meant.status_code == 201, meant.get_json()
    assert len(_lots(db_session, donor_id)) == 2


def test_a_cord_has_one_collection_day(app, users, db_session, client_as):
    donor_id = pending_cord_donor(db_session)
    code = db_session.get(Donor, donor_id).code
    db_session.rollback()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'technician')}"}
    tech = client_as("technician")
    first = tech.post("/lots/new", data=_form(donor_id, "UC-MSC"))
    assert first.status_code == 302, first.get_data(as_text=True)[:2000]
    [lot] = _lots(db_session, donor_id)
    before = _events(db_session)

    earlier = app.test_client().post("/api/v1/lots", headers=headers, json=_json(
        donor_id, "UC-MSC", day=DAY - timedelta(days=2), same_collection_as_existing=True))  # the box does not help
    assert earlier.status_code == 409 and "a cord is collected once" in earlier.get_data(as_text=True), earlier.get_data(as_text=True)
    later = tech.post("/lots/new", data=_form(donor_id, "UC-MSC", day=DAY + timedelta(days=3)))
    html = later.get_data(as_text=True)
    assert later.status_code == 409, html[:2000]
    assert (f"Collection date: a cord is collected once: {code} was collected on {DAY} (lot {lot.lot_number})"
            in html), html[:3000]
    assert len(_lots(db_session, donor_id)) == 1 and _events(db_session) == before

    # the same day at another time is the same cord (re-walk: 07:01 for 07:00 passed as a new collection): refused
    # as a repeat of it, then taken when the technician says it is deliberately another lot of that cord
    same_day = tech.post("/lots/new", data=_form(donor_id, "UC-MSC", hour="11:30"))
    assert same_day.status_code == 409, same_day.get_data(as_text=True)[:2000]
    assert f"already has lot {lot.lot_number}" in same_day.get_data(as_text=True)
    assert len(_lots(db_session, donor_id)) == 1
    meant = tech.post("/lots/new", data=_form(donor_id, "UC-MSC", hour="11:30", same_collection_as_existing="y"))
    assert meant.status_code == 302, meant.get_data(as_text=True)[:2000]
    assert len(_lots(db_session, donor_id)) == 2


def test_adipose_collections_on_other_days_still_give_lots(app, users, db_session, client_as):
    donor_id = approved_adipose_donor(db_session)
    db_session.rollback()
    tech = client_as("technician")
    assert tech.post("/lots/new", data=_form(donor_id, "AT-MSC")).status_code == 302
    other = tech.post("/lots/new", data=_form(donor_id, "AT-MSC", day=DAY + timedelta(days=1)))
    assert other.status_code == 302, other.get_data(as_text=True)[:2000]
    headers = {"Authorization": f"Bearer {api_token_for(app, 'technician')}"}
    third = app.test_client().post("/api/v1/lots", json=_json(donor_id, "AT-MSC", day=DAY + timedelta(days=2)),
                                   headers=headers)
    assert third.status_code == 201, third.get_json()
    assert len(_lots(db_session, donor_id)) == 3
