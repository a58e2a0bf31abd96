"""Review 5 of the ward: the STOP screen said "PART OF THE BAG ONLY: give 12.5 mL" and "Give before"; an open infusion
page did not learn of a recall by itself; a refused step left its bag code for the next scan to pair with; the
result pages were answers to POSTs (reload re-posted, Back asked to send the form again); an empty bedside check
was recorded as a STOP."""
from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.custody import infusions
from mscbatch.custody.models import TwoPersonCheck
from mscbatch.recall import services as recalls
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, ward_bag

pytestmark = pytest.mark.usefixtures("users")


def _recall(app: Any, lot_id: int) -> None:
    with app.extensions["mscbatch.db"].new_session() as session:
        recalls.start_recall(session, user(session, "qa"), scope="lot", target_id=lot_id,
                             reason="late positive sterility culture", password=PASSWORD)


def _count(app: Any, model: Any) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_a_stop_of_a_partial_draw_bag_says_nothing_that_reads_as_give(app, client_as):
    ward = ward_bag(app, last=True)  # the prescription draws 12.5 mL of its 25 mL
    _recall(app, ward.lot_id)
    nurse = client_as("nurse")
    posted = nurse.post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token})
    assert posted.status_code == 303
    page = nurse.get(posted.headers["Location"]).get_data(as_text=True)
    assert ">STOP<" in page and "RECALLED" in page
    for words in ("PART OF THE BAG ONLY", "give 12.5", "Give before", 'id="give-volume"', "minutes left"):
        assert words not in page, words
    answer = app.test_client().post("/api/v1/custody/scan-verify",
                                    headers={"Authorization": f"Bearer {api_token_for(app, 'nurse')}"},
                                    json={"wristband": ward.wristband, "bag": ward.token}).get_json()
    assert answer["result"] == "STOP" and answer["notes"] == [] and answer["give_ml"] is None


def test_the_partial_draw_note_stays_on_a_matches(app, client_as):
    ward = ward_bag(app, last=True)
    nurse = client_as("nurse")
    posted = nurse.post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token})
    page = nurse.get(posted.headers["Location"]).get_data(as_text=True)
    assert ">MATCHES<" in page and "PART OF THE BAG ONLY: give 12.5 mL" in page and "Give before" in page


def test_the_infusion_page_polls_a_session_view_that_says_stop_once_the_lot_is_recalled(app, client_as):
    ward = ward_bag(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        checked_and_confirmed(session, ward)
        infusion_id = infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                               bag_scan=ward.token, label_key=KEY).id
    nurse = client_as("nurse")
    page = nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    assert f'data-stop-url="/ward/infusions/{infusion_id}/stop.json"' in page and "js/ward-scan.js" in page
    before = nurse.get(f"/ward/infusions/{infusion_id}/stop.json")
    assert before.status_code == 200 and before.get_json() == {"stop_now": False, "reasons": [], "ended": False}
    assert before.headers["Cache-Control"] == "no-store"
    _recall(app, ward.lot_id)
    after = nurse.get(f"/ward/infusions/{infusion_id}/stop.json").get_json()
    assert after["stop_now"] is True and "RECALLED" in after["reasons"][0]
    page = nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    assert 'class="verdict verdict-stop running-stop"' in page and "bedside-stop" in page
    assert app.test_client().get(f"/ward/infusions/{infusion_id}/stop.json").status_code in (302, 401)
    assert client_as("technician").get(f"/ward/infusions/{infusion_id}/stop.json").status_code == 403


def _scan_field(page: str, name: str) -> str:
    found = re.search(rf'<input[^>]*\bname="{name}"[^>]*>', page)
    assert found, name
    value = re.search(r'\bvalue="([^"]*)"', found.group(0))
    return value.group(1) if value else ""


def test_a_refused_receive_leaves_no_bag_code_for_the_next_scan(app, client_as):
    ward = ward_bag(app, state="received")
    answer = client_as("nurse").post("/ward/event", data={"bag": ward.token, "wristband": ward.wristband,
                                                          "action": "receive"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 409 and "received" in page
    assert _scan_field(page, "bag") == "" and _scan_field(page, "wristband") == ""
    discard = client_as("nurse").post("/ward/event", data={"bag": ward.token, "action": "discard"})
    assert discard.status_code == 422 and _scan_field(discard.get_data(as_text=True), "bag") == ward.token


def test_the_check_confirmation_and_refused_start_are_pages_to_reload(app, client_as):
    ward, other = ward_bag(app), ward_bag(app)
    nurse = client_as("nurse")
    posted = nurse.post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token})
    assert posted.status_code == 303 and re.fullmatch(r".*/ward/checks/\d+", posted.headers["Location"])
    checks, events = _count(app, TwoPersonCheck), _count(app, AuditEvent)
    url = posted.headers["Location"]
    for _ in range(2):  # reload: the recorded check again, nothing recorded
        page = nurse.get(url).get_data(as_text=True)
        assert ">MATCHES<" in page and "Both of you sign" in page
    assert (_count(app, TwoPersonCheck), _count(app, AuditEvent)) == (checks, events)

    confirmed = nurse.post(f"{url}/confirm", data={"second_username": "nurse2", "second_password": PASSWORD,
                                                   "checker_password": PASSWORD})
    assert confirmed.status_code == 303 and confirmed.headers["Location"].endswith(url.split("/ward")[1])
    events = _count(app, AuditEvent)
    page = nurse.get(url).get_data(as_text=True)
    assert "Two-person check confirmed" in page and "A second person must now confirm" not in page
    assert page.count('class="signature"') == 2 and "Start infusion" in page
    assert _count(app, AuditEvent) == events

    refused = nurse.post(f"/ward/bags/{ward.bag_id}/infusion", data={"wristband": other.wristband,
                                                                     "bag": ward.token})
    assert refused.status_code == 303 and refused.headers["Location"].endswith(f"/ward/bags/{ward.bag_id}/infusion")
    events = _count(app, AuditEvent)
    for _ in range(2):  # reload and Back: the refusal shown again, the start never sent again
        page = nurse.get(f"/ward/bags/{ward.bag_id}/infusion").get_data(as_text=True)
        assert ">STOP<" in page and "WRONG PATIENT" in page and "Start infusion" not in page
    assert _count(app, AuditEvent) == events
    assert nurse.get(url).status_code == 200  # Back from the refusal: the confirmed check's own page


def test_a_stop_check_page_shows_the_recorded_stop(app, client_as):
    ward, other = ward_bag(app), ward_bag(app)
    nurse = client_as("nurse")
    url = nurse.post("/ward/check", data={"wristband": other.wristband, "bag": ward.token}).headers["Location"]
    page = nurse.get(url).get_data(as_text=True)
    assert ">STOP<" in page and "WRONG PATIENT" in page and "Second person" not in page


def test_an_empty_bedside_check_is_a_form_error_and_records_nothing(app, client_as):
    ward = ward_bag(app)
    checks = _count(app, TwoPersonCheck)
    web = client_as("nurse").post("/ward/check", data={"wristband": "  ", "bag": ward.token})
    page = web.get_data(as_text=True)
    assert web.status_code == 422 and 'id="wristband-error"' in page and "Scan the patient&#39;s wristband." in page
    api = app.test_client().post("/api/v1/custody/scan-verify",
                                 headers={"Authorization": f"Bearer {api_token_for(app, 'nurse')}"},
                                 json={"wristband": "", "bag": ""})
    assert api.status_code == 422 and set(api.get_json()["errors"]) == {"wristband", "bag"}
    assert _count(app, TwoPersonCheck) == checks


def test_a_mistyped_bag_number_is_said_in_plain_words(app):
    ward = ward_bag(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        from mscbatch.lots.models import Bag

        bag = session.get(Bag, ward.bag_id)
        wrong_k = "0" if bag.check_character != "0" else "1"
        typed = bag.din + wrong_k
    answer = app.test_client().post("/api/v1/custody/scan-verify",
                                    headers={"Authorization": f"Bearer {api_token_for(app, 'nurse')}"},
                                    json={"wristband": ward.wristband, "bag": typed}).get_json()
    words = answer["failures"][-1]["message"]
    assert words == ("The bag number scanned or typed is wrong: one of its characters is wrong (the boxed character "
                     "at its end does not fit the others). Scan the QR code on the bag label.")


def test_do_not_thaw_says_why_in_a_nurses_words(app, client_as):
    from sqlalchemy import update

    from mscbatch.lots.models import Lot

    ward = ward_bag(app, state="received")
    with app.extensions["mscbatch.db"].new_session() as session:  # the lot sent back to quarantine behind the ward
        session.execute(update(Lot).where(Lot.id == ward.lot_id).values(status="quarantine"))
        session.commit()
    answer = client_as("nurse").post("/ward/event", data={"bag": ward.token, "action": "thaw"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 409 and "is NOT RELEASED for use (its tests are not all approved yet)" in page
    assert "its lot is quarantine" not in page
