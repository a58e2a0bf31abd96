"""The ward pages and the custody API, end to end through HTTP: a bedside check green then STOP, the second
person, infusion start / end / reaction shown on the patient's and the lot's pages; the JSON API and its
OpenAPI document."""
from __future__ import annotations

import re

from sqlalchemy import select

from mscbatch.custody.models import Infusion
from tests.conftest import PASSWORD, api_token_for
from tests.integration.test_custody_support import ward_bag


def test_the_bedside_flow_through_the_ward_pages(app, users, client_as):
    ward, other = ward_bag(app), ward_bag(app)
    nurse = client_as("nurse")
    page = nurse.get("/ward").get_data(as_text=True)
    assert "Scan a wristband or a bag label" in page and "vendor/jsqr/jsQR.js" in page and "<script>" not in page

    # a check is recorded and answered 303 to its page, GET /ward/checks/<id> (post-redirect-get)
    stop = nurse.post("/ward/check", data={"wristband": other.wristband, "bag": ward.token}, follow_redirects=True)
    html = stop.get_data(as_text=True)
    assert [r.status_code for r in stop.history] == [303]
    assert stop.status_code == 200 and 'role="alert"' in html and ">STOP<" in html and "WRONG PATIENT" in html
    assert "Second person" not in html

    ok = nurse.post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token},
                    follow_redirects=True).get_data(as_text=True)
    assert ">MATCHES<" in ok and "Both of you sign: a second person confirms" in ok
    assert "You are signed in as Nurse. Type your own password: you sign the check." in ok
    check_id = int(ok.split("/ward/checks/")[1].split("/confirm")[0])
    same = nurse.post(f"/ward/checks/{check_id}/confirm", data={"second_username": "nurse",
                                                                 "second_password": PASSWORD,
                                                                 "checker_password": PASSWORD})
    assert same.status_code == 409 and "same person cannot check twice" in same.get_data(as_text=True)
    confirmed = nurse.post(f"/ward/checks/{check_id}/confirm", data={"second_username": "nurse2",
                                                                      "second_password": PASSWORD,
                                                                      "checker_password": PASSWORD},
                          follow_redirects=True)  # 303 to the check's page
    html = confirmed.get_data(as_text=True)
    assert [r.status_code for r in confirmed.history] == [303]
    assert confirmed.status_code == 200 and "Two-person check confirmed" in html
    signed = html.split('id="h-confirmed"', 1)[1].split("<form", 1)[0]  # both manifestations, before the start
    assert signed.count('class="signature">Signed: ') == 2
    assert "Nurse, " in signed and "“Bedside check: this bag for this patient (scanned and checked)”" in signed
    assert "Nurse2, " in signed and "(confirmed by a second person)”" in signed

    started = nurse.post(f"/ward/bags/{ward.bag_id}/infusion", data={"wristband": ward.wristband, "bag": ward.token})
    assert started.status_code == 302 and "/ward/infusions/" in started.headers["Location"]
    infusion_url = started.headers["Location"]
    assert nurse.post(f"{infusion_url}/end", data={"volume_ml": "25"}).status_code == 302
    assert nurse.post(f"{infusion_url}/reactions", data={"ctcae_term": "Chills", "grade": "2",
                                                          "description": "rigors at 15 minutes"}).status_code == 302
    record = nurse.get(infusion_url).get_data(as_text=True)
    assert "Chills" in record and "25 mL infused (25 mL prescribed from this 25 mL bag)" in record and "Nina" not in record  # conftest users
    patient_page = client_as("clinician").get(f"/patients/{ward.patient_id}").get_data(as_text=True)
    assert "Chills, grade 2" in patient_page and "rigors at 15 minutes" in patient_page
    lot_page = client_as("qa").get(f"/lots/{ward.lot_id}").get_data(as_text=True)
    assert "Chills, grade 2" in lot_page


def test_receive_and_thaw_are_one_tap_actions(app, users, client_as):
    ward = ward_bag(app, state="dispatched")
    nurse = client_as("nurse")
    thaw_first = nurse.post("/ward/event", data={"bag": ward.token, "action": "thaw"})
    assert thaw_first.status_code == 409 and "receive it first" in thaw_first.get_data(as_text=True)
    assert nurse.post("/ward/event", data={"bag": ward.token, "action": "receive", "location": "Ward 3"}).status_code == 302
    # the ward's "Where" stays for the next step (session 33: retyped after every step), a place, not a patient
    assert 'value="Ward 3"' in nurse.get("/ward").get_data(as_text=True).split('name="location"', 1)[1][:200]
    assert nurse.post("/ward/event", data={"bag": ward.token, "action": "thaw"}).status_code == 302
    # the limit as a clock time too (session 33: "within 60 minutes" alone left the nurse to add it up)
    said = nurse.get("/ward").get_data(as_text=True)
    # as every page says an instant (site.local_and_utc): the local time with its zone named, UTC beside it
    assert re.search(r"thawed: give it within 60 minutes, by \d{4}-\d\d-\d\d \d\d:\d\d CES?T \((?:\d{4}-\d\d-\d\d )?\d\d:\d\d UTC\) "
                     r"\(post-thaw limit of 60 minutes: the unit(?:&#39;|')s provisional setting, until its stability study sets it\)", said), said  # products.toml's demo limit: to_confirm
    start = nurse.post("/ward/event", data={"wristband": ward.wristband, "bag": ward.token, "action": "start"})
    assert start.status_code == 303  # the refused start's STOP screen (post-redirect-get)
    assert "No confirmed two-person bedside check" in nurse.get(start.headers["Location"]).get_data(as_text=True)


def test_the_custody_api(app, users):
    ward, other = ward_bag(app), ward_bag(app)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}
    stop = client.post("/api/v1/custody/scan-verify", headers=headers,
                       json={"wristband": other.wristband, "bag": ward.token}).get_json()
    assert stop["result"] == "STOP" and [f["code"] for f in stop["failures"]] == ["wrong_patient"]
    ok = client.post("/api/v1/custody/scan-verify", headers=headers,
                     json={"wristband": ward.wristband, "bag": f"https://x.example/v/{ward.token}"}).get_json()
    assert ok["result"] == "MATCHES" and ok["failures"] == [] and ok["bag_id"] == ward.bag_id
    refused = client.post("/api/v1/custody/infusions", headers=headers,
                          json={"bag_id": ward.bag_id, "wristband": ward.wristband, "bag": ward.token})
    assert refused.status_code == 409 and refused.mimetype == "application/problem+json"
    confirm = client.post(f"/api/v1/custody/checks/{ok['check_id']}/confirm", headers=headers,
                          json={"username": "nurse2", "password": PASSWORD, "checker_password": PASSWORD})
    assert confirm.status_code == 200 and confirm.get_json()["second_checker_id"]
    started = client.post("/api/v1/custody/infusions", headers=headers,
                          json={"bag_id": ward.bag_id, "wristband": ward.wristband, "bag": ward.token})
    assert started.status_code == 201, started.get_json()
    again = client.post("/api/v1/custody/events", headers=headers, json={"kind": "thawed", "bag": ward.token})
    assert again.status_code == 409 and "infused" in again.get_json()["detail"]
    events = client.get(f"/api/v1/custody/bags/{ward.bag_id}/events", headers=headers).get_json()
    assert [e["kind"] for e in events] == ["allocated", "dispatched", "received", "thawed", "bedside_verified",
                                           "infusion_started"]
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/custody/scan-verify" in spec["paths"] and "/api/v1/custody/events" in spec["paths"]
    session = app.extensions["mscbatch.db"].new_session()
    assert session.scalar(select(Infusion.bag_id)) == ward.bag_id
    session.close()


def test_volumes_read_as_people_write_them(app, users, client_as):
    """40 mL bags: 125 x10^6 cells are two whole bags and 20 mL of the third, written "20 mL" (a normalised
    Decimal prints as 2E+1)."""
    ward = ward_bag(app, volume_ml="40", last=True)
    html = client_as("nurse").post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token},
                                   follow_redirects=True).get_data(as_text=True)  # 303 to the check's page
    assert ">MATCHES<" in html, html
    assert "give 20 mL of the 40 mL in this bag" in html and "<strong>20 mL</strong> of 40 mL" in html
    assert "E+" not in html
