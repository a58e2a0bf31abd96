"""Correcting a registered reagent lot typed wrong (name, supplier, supplier's lot number, expiry date), through the
reagent lot page and POST /api/v1/reagent-lots/<id>/corrections, on SQLite and PostgreSQL: a lot number typed wrong
hid the cell lots that used it from a recall of the real lot and could not be put right.

- the correction: one audited transaction (each changed field old -> new with the reason, who, when), listed on the
  reagent lot's page;
- refused, nothing written: no reason, nothing changed, a field against its registration rule (all at once), the
  supplier lot registered already, a recall of it in force, a cell lot that used it released (signed, locked), an
  expiry that would put a recorded use after it, a non-technician (403), an unknown reagent lot (404)."""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.lots import reagents
from mscbatch.lots.models import Lot, ProcessStep, ReagentLot, ReagentUse
from mscbatch.recall import services as recalls
from mscbatch.release import release
from mscbatch.release.demo import enter_panel
from tests.conftest import PASSWORD, api_token_for
from tests.integration.lot_factories import TODAY, approved_adipose_donor, harvested_lot, user
from tests.integration.test_donors import db_session  # noqa: F401 (fixture)
from tests.integration.test_release_support import cord_quarantine_lot, seed_quarantine_lot

REASON = "lot number read off the box label, not the bottle: the bottle says TR-2291"
EXPIRY = TODAY + timedelta(days=300)


@dataclass(frozen=True)
class Scene:
    lot_id: int
    lot_number: str
    used_on: date  # the trypsin's use at P0
    trypsin: int  # registered wrong, used by the lot
    medium: int  # another supplier lot (DemoBio M-77)


def _scene(session: Any) -> Scene:
    tech = user(session, "technician")
    lot_id = harvested_lot(session, approved_adipose_donor(session))
    p0 = session.scalar(select(ProcessStep).where(ProcessStep.lot_id == lot_id, ProcessStep.passage_number == 0))
    trypsin = reagents.register_reagent_lot(session, tech, reagent_type="trypsin", name="TrypLE Selct",
                                            supplier="DemoBio", lot_number="TR-2219", expiry_date=EXPIRY).id
    medium = reagents.register_reagent_lot(session, tech, reagent_type="medium", name="alpha-MEM", supplier="DemoBio",
                                           lot_number="M-77", expiry_date=EXPIRY).id
    reagents.link_reagent(session, tech, lot_id, trypsin, used_on=p0.performed_on, step_id=p0.id)
    scene = Scene(lot_id, session.get(Lot, lot_id).lot_number, p0.performed_on, trypsin, medium)
    session.commit()
    return scene


def _form(name: str = "TrypLE Select", supplier: str = "DemoBio", lot_number: str = "TR-2291",
          expiry: date = EXPIRY, reason: str = REASON) -> dict[str, str]:
    return {"fix-name": name, "fix-supplier": supplier, "fix-lot_number": lot_number,
            "fix-expiry_date": expiry.isoformat(), "fix-reason": reason}


def _correct(client: Any, reagent_lot_id: int, data: dict[str, str], **post: Any) -> Any:
    """POST the page's correction as a browser does: with what the page it was typed on showed (its hidden field)."""
    page = client.get(f"/reagents/{reagent_lot_id}").get_data(as_text=True)
    shown = re.search(r'<input id="fix-shown" name="fix-shown" type="hidden" value="([^"]*)"', page)
    return client.post(f"/reagents/{reagent_lot_id}/correction",
                       data={**data, **({"fix-shown": shown.group(1)} if shown else {})}, **post)


def _text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def _errors(text: str, field_id: str) -> list[str]:
    return re.findall(rf'id="{re.escape(field_id)}-error">([^<]*)<', text)


def _state(session: Any, reagent_lot_id: int) -> tuple[tuple[Any, ...], int]:
    session.expire_all()
    row = session.get(ReagentLot, reagent_lot_id)
    values = (row.name, row.supplier, row.lot_number, row.expiry_date)
    events = int(session.scalar(select(func.count()).select_from(AuditEvent)))
    session.rollback()
    return values, events


def _api(app: Any, username: str = "technician") -> tuple[Any, dict[str, str]]:
    return app.test_client(), {"Authorization": f"Bearer {api_token_for(app, username)}"}


# ---- the correction ---------------------------------------------------------------------------------------------

def test_a_technician_corrects_a_reagent_lot_on_its_page_audited_and_listed(app, users, db_session,  # noqa: F811
                                                                            client_as):
    s = _scene(db_session)
    tech = client_as("technician")
    page = _text(tech.get(f"/reagents/{s.trypsin}"))
    assert "Correct this reagent lot" in page
    assert f'action="/reagents/{s.trypsin}/correction"' in page
    for field_id, value in (("fix-name", "TrypLE Selct"), ("fix-supplier", "DemoBio"), ("fix-lot_number", "TR-2219"),
                            ("fix-expiry_date", EXPIRY.isoformat())):  # prefilled, each with its label
        assert re.search(rf'<input[^>]*id="{field_id}"[^>]*value="{re.escape(value)}"', page), (field_id, page)
        assert f'<label for="{field_id}">' in page
    assert '<label for="fix-reason">Reason for the correction</label>' in page

    done = _correct(tech, s.trypsin, _form(), follow_redirects=True)
    text = _text(done)
    assert done.status_code == 200, text
    assert "Reagent lot DemoBio TR-2291 corrected. The old values and your reason are in the audit trail." in text
    assert _state(db_session, s.trypsin)[0] == ("TrypLE Select", "DemoBio", "TR-2291", EXPIRY)
    listed = re.search(r'<ul class="corrections" id="reagent-lot-corrections">(.*?)</ul>', text, re.S)
    assert listed is not None, text
    full_name = users["technician"].full_name
    assert f"Corrected by {full_name}" in listed.group(1) and REASON in listed.group(1)
    assert "reagent name TrypLE Selct → TrypLE Select; supplier's lot number TR-2219 → TR-2291" in listed.group(1)

    events = db_session.scalars(select(AuditEvent).where(
        AuditEvent.entity_type == "reagent_lot", AuditEvent.entity_id == str(s.trypsin),
        AuditEvent.action == "update").order_by(AuditEvent.seq)).all()
    assert [(e.field, e.old_value, e.new_value, e.reason, e.actor_id) for e in events] == [
        ("name", "TrypLE Selct", "TrypLE Select", f"reagent lot corrected: {REASON}", users["technician"].id),
        ("lot_number", "TR-2219", "TR-2291", f"reagent lot corrected: {REASON}", users["technician"].id)]
    db_session.rollback()  # the test's read ends before the next request
    # the cell lot's page and a recall now find it under the lot number printed on the bottle
    assert "TR-2291" in _text(tech.get(f"/lots/{s.lot_id}"))


def test_the_api_corrects_the_expiry_date_alone(app, users, db_session):  # noqa: F811
    s = _scene(db_session)
    client, headers = _api(app)
    later = EXPIRY + timedelta(days=31)
    done = client.post(f"/api/v1/reagent-lots/{s.trypsin}/corrections", headers=headers,
                       json={"expiry_date": later.isoformat(), "reason": "expiry month typed wrong"})
    assert done.status_code == 200, done.get_json()
    assert done.get_json() == {"id": s.trypsin, "reagent_type": "trypsin", "name": "TrypLE Selct",
                               "supplier": "DemoBio", "lot_number": "TR-2219", "expiry_date": later.isoformat()}
    event = db_session.scalars(select(AuditEvent).where(
        AuditEvent.entity_type == "reagent_lot", AuditEvent.entity_id == str(s.trypsin),
        AuditEvent.action == "update")).one()
    assert (event.field, event.old_value, event.new_value, event.reason) == (
        "expiry_date", EXPIRY.isoformat(), later.isoformat(), "reagent lot corrected: expiry month typed wrong")
    db_session.rollback()


# ---- refusals, nothing written ------------------------------------------------------------------------------------

def test_no_reason_nothing_changed_and_bad_values_are_refused_each_on_its_field(app, users, db_session,  # noqa: F811
                                                                                client_as):
    s = _scene(db_session)
    tech = client_as("technician")
    client, headers = _api(app)
    before = _state(db_session, s.trypsin)

    unchanged = _correct(tech, s.trypsin, _form("TrypLE Selct", lot_number="TR-2219"))
    text = _text(unchanged)
    assert unchanged.status_code == 422, text
    assert _errors(text, "fix-name") == ["Nothing changed: give the corrected name, supplier, lot number or expiry "
                                         "date."], text
    assert 'id="reagent-lot-fix-refused"' in text and "<details class=\"correction\" id=\"reagent-lot-fix\" open>" in text

    blank = _correct(tech, s.trypsin, _form(reason="  "))
    assert blank.status_code == 422 and _errors(_text(blank), "fix-reason"), _text(blank)

    api = client.post(f"/api/v1/reagent-lots/{s.trypsin}/corrections", headers=headers,
                      json={"name": " ", "lot_number": "TR 2219", "expiry_date": "1900-01-31",
                            "reason": ""})
    body = api.get_json()
    assert api.status_code == 422, body
    assert set(body["errors"]) == {"reason", "name", "expiry_date"}, body
    assert "Expiry date: 1900-01-31 is not a plausible expiry date for a reagent" in body["errors"]["expiry_date"][0]
    assert body["errors"]["name"] == ["Give the reagent name (at most 120 characters)."]

    same = client.post(f"/api/v1/reagent-lots/{s.trypsin}/corrections", headers=headers,
                       json={"supplier": "DemoBio", "reason": REASON})
    assert same.status_code == 422 and "Nothing changed" in same.get_json()["detail"]
    assert _state(db_session, s.trypsin)[0] == before[0]
    assert int(db_session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.entity_type == "reagent_lot", AuditEvent.action == "update"))) == 0
    db_session.rollback()


def test_a_supplier_lot_registered_already_is_refused_with_a_409(app, users, db_session, client_as):  # noqa: F811
    s = _scene(db_session)
    tech = client_as("technician")
    before = _state(db_session, s.trypsin)
    twice = _correct(tech, s.trypsin, _form(lot_number="m -77"))  # capitals, spaces
    text = _text(twice)
    assert twice.status_code == 409, text
    words = (f"Supplier's lot number: DemoBio lot M-77 is already registered as reagent lot #{s.medium} (Culture "
             f"medium: alpha-MEM, expires {EXPIRY}). A supplier's lot is registered once, so that a recall of it "
             "finds every cell lot that used it: check the supplier and lot number printed on the reagent. Nothing "
             "was changed.")
    assert _errors(text, "fix-lot_number") == [words], text
    client, headers = _api(app)
    api = client.post(f"/api/v1/reagent-lots/{s.trypsin}/corrections", headers=headers,
                      json={"lot_number": "M-77", "reason": REASON})
    assert api.status_code == 409 and api.get_json()["detail"] == words
    assert _state(db_session, s.trypsin)[0] == before[0]


def test_an_expiry_before_a_recorded_use_is_refused_naming_the_lot_and_day(app, users, db_session,  # noqa: F811
                                                                           client_as):
    s = _scene(db_session)
    tech = client_as("technician")
    before = _state(db_session, s.trypsin)
    early = s.used_on - timedelta(days=1)
    refused = _correct(tech, s.trypsin, _form(expiry=early))
    text = _text(refused)
    assert refused.status_code == 409, text
    words = (f"Expiry date: {early} would put recorded uses of DemoBio lot TR-2219 after its expiry: lot "
             f"{s.lot_number} on {s.used_on} (P0). Check the expiry date printed on the reagent; if it is right, the "
             "reagent was used expired: raise a deviation with QA. Nothing was changed.")
    assert _errors(text, "fix-expiry_date") == [words], text
    assert _state(db_session, s.trypsin) == before
    # the day of use itself is still within the expiry: accepted
    assert _correct(tech, s.trypsin, _form(expiry=s.used_on)).status_code == 302


def test_a_reagent_lot_under_recall_is_not_corrected(app, users, db_session, client_as):  # noqa: F811
    s = _scene(db_session)
    recall = recalls.start_recall(db_session, user(db_session, "qa"), scope="reagent_lot", target_id=s.trypsin,
                                  reason="Supplier notice: endotoxin", password=PASSWORD)
    recall_id = recall.recall_id
    tech = client_as("technician")
    client, headers = _api(app)  # signed in and given a token first: both are audited
    before = _state(db_session, s.trypsin)
    refused = _correct(tech, s.trypsin, _form())
    text = _text(refused)
    assert refused.status_code == 409, text
    assert f"Correction refused: DemoBio lot TR-2219 is under recall R-{recall_id}" in text, text
    assert "Ask QA: a recalled reagent lot is corrected through the recall. Nothing was changed." in text
    api = client.post(f"/api/v1/reagent-lots/{s.trypsin}/corrections", headers=headers,
                      json={"lot_number": "TR-2291", "reason": REASON})
    assert api.status_code == 409 and "is under recall" in api.get_json()["detail"]
    assert _state(db_session, s.trypsin) == before


def test_a_reagent_lot_used_by_a_released_lot_is_not_corrected(app, users, monkeypatch, client_as):
    seed_quarantine_lot(app, monkeypatch)
    session = app.extensions["mscbatch.db"].new_session()
    try:
        lot_id = cord_quarantine_lot(session)
        session.commit()
        enter_panel(session, user(session, "technician"), lot_id)
        release.release_lot(session, user(session, "qa"), lot_id, PASSWORD)
        lot_number = session.get(Lot, lot_id).lot_number
        reagent_lot_id = session.scalar(select(ReagentUse.reagent_lot_id).where(ReagentUse.lot_id == lot_id)
                                        .order_by(ReagentUse.id))
        session.rollback()  # the test's read ends before the requests
        tech = client_as("technician")
        client, headers = _api(app)  # signed in and given a token first: both are audited
        before = _state(session, reagent_lot_id)
        refused = _correct(tech, reagent_lot_id, _form(
            name="Corrected name", supplier=before[0][1], lot_number=before[0][2], expiry=before[0][3]))
        text = _text(refused)
        assert refused.status_code == 409, text
        assert re.search(rf"is recorded in the signed, locked record of cell lots? [^.]*{lot_number} \(released\)",
                         text), text
        assert "raise a deviation with QA for the wrong reagent lot details. Nothing was changed." in text
        api = client.post(f"/api/v1/reagent-lots/{reagent_lot_id}/corrections", headers=headers,
                          json={"name": "Corrected name", "reason": REASON})
        assert api.status_code == 409 and f"{lot_number} (released)" in api.get_json()["detail"]
        assert _state(session, reagent_lot_id) == before
    finally:
        session.close()


def test_only_a_technician_corrects_and_an_unknown_reagent_lot_is_404(app, users, db_session, client_as):  # noqa: F811
    s = _scene(db_session)
    qa = client_as("qa")
    before = _state(db_session, s.trypsin)
    assert "Correct this reagent lot" not in _text(qa.get(f"/reagents/{s.trypsin}"))
    assert _correct(qa, s.trypsin, _form()).status_code == 403
    client, headers = _api(app, "qa")
    assert client.post(f"/api/v1/reagent-lots/{s.trypsin}/corrections", headers=headers,
                       json={"lot_number": "TR-2291", "reason": REASON}).status_code == 403
    assert _state(db_session, s.trypsin)[0] == before[0]  # (a refused access is itself audited)
    assert not db_session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.entity_type == "reagent_lot", AuditEvent.action == "update"))
    db_session.rollback()
    client, headers = _api(app)
    missing = client.post("/api/v1/reagent-lots/999999/corrections", headers=headers,
                          json={"lot_number": "TR-2291", "reason": REASON})
    assert missing.status_code == 404, missing.get_json()
    assert _correct(client_as("technician"), 999999, _form()).status_code == 404
