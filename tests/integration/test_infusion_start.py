"""Starting an infusion (DOMAIN.md 8: two people match the bag to the patient's wristband immediately before the
infusion; any mismatch suspends it). The start needs a fresh scan of the wristband with the bag and re-runs the
bedside check on it; a STOP of the bag after the confirmed check voids that check; the check's own scan must be
within the validity window; the infusion record names the two checkers and the person who started it apart.
Every refused start answers 4xx (on the web: 303 to its STOP page) and writes nothing but the audit event of the refusal, which the admin's monitoring
counts (a blank wristband is a form error: nothing at all)."""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.custody import bedside, handover, infusions, services
from mscbatch.custody.models import CustodyEvent, Infusion, TwoPersonCheck
from mscbatch.database import utcnow
from mscbatch.errors import Conflict, NotFound, ValidationFailed
from mscbatch.lots.models import Bag
from mscbatch.patients.models import Patient
from tests.conftest import PASSWORD, add_user, api_token_for
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, check, checked_and_confirmed, prescribed_bag

REFUSED = AuditEvent.action == "infusion_start_refused"


def _written(session: Any) -> tuple[int, ...]:
    """Everything a start could write: infusions, custody events, checks and audit events other than a refused
    start's. Read in a transaction of its own and ended at once (SQLite: a transaction open in the test would lock
    out the test client)."""
    session.rollback()
    counts = tuple(session.scalar(select(func.count()).select_from(model))
                   for model in (Infusion, CustodyEvent, TwoPersonCheck))
    counts += (session.scalar(select(func.count()).select_from(AuditEvent).where(~REFUSED)),)
    session.rollback()
    return counts


def _refusals(session: Any) -> list[tuple[str, int, str, str]]:
    """The refused starts recorded: (refusal, bag id, who, the words the nurse saw), oldest first."""
    session.rollback()
    events = [(json.loads(e.new_value)["refusal"], int(e.entity_id), e.actor_name, e.reason)
              for e in session.scalars(select(AuditEvent).where(REFUSED).order_by(AuditEvent.seq))]
    session.rollback()
    return events


def _start(session: Any, ward: Any, wristband: str, **kwargs: Any) -> Infusion:
    kwargs.setdefault("bag_scan", ward.token)  # the bag in hand, scanned again at the start
    return infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=wristband,
                                    label_key=KEY, **kwargs)


def _code(session: Any, ward: Any) -> str:
    return session.get(Patient, ward.patient_id).code


# ---- 1. the wristband is scanned again at the start ---------------------------------------------------------

def test_another_patients_wristband_at_the_start_is_refused_and_nothing_is_written(app, users, db_session):
    ward, other = prescribed_bag(db_session), prescribed_bag(db_session)  # P's bag; Q in another bed
    checked_and_confirmed(db_session, ward)                                # P's check, confirmed
    before = _written(db_session)
    with pytest.raises(Conflict, match="WRONG PATIENT: this wristband is not the patient of the confirmed check") \
            as refused:
        _start(db_session, ward, other.wristband)
    assert f"checked for patient {_code(db_session, ward)}" in refused.value.message
    assert f"this wristband is {_code(db_session, other)}'s" in refused.value.message
    assert refused.value.errors == {"wristband": [refused.value.message]}  # shown next to the wristband field
    assert _written(db_session) == before
    assert _refusals(db_session) == [("wrong_patient", ward.bag_id, "nurse", refused.value.message)]
    scanned = json.loads(db_session.scalar(select(AuditEvent.new_value).where(REFUSED)))["wristband"]
    assert scanned == other.wristband  # what was scanned, for the inquiry
    assert db_session.get(Bag, ward.bag_id).status == "thawed"

    infusion = _start(db_session, ward, f"  {ward.wristband} ")  # at P's bed: starts
    assert infusion.patient_id == ward.patient_id
    event = db_session.scalar(select(CustodyEvent).where(CustodyEvent.kind == "infusion_started"))
    assert event.details["wristband"] == ward.wristband  # the scan that proved the patient at the start


def test_the_start_needs_the_wristband_and_an_unknown_one_is_refused(app, users, db_session):
    ward = prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    before = _written(db_session)
    for blank in ("", "   ", None):
        with pytest.raises(ValidationFailed, match="Scan the patient's wristband again") as missing:
            _start(db_session, ward, blank)  # type: ignore[arg-type]
        assert set(missing.value.errors) == {"wristband"}
    assert _refusals(db_session) == []  # a blank wristband is a form error, not a refused start
    with pytest.raises(Conflict, match="WRONG PATIENT: .* this wristband is not known"):
        _start(db_session, ward, "WB-NOBODY")
    assert _written(db_session) == before
    assert [r[0] for r in _refusals(db_session)] == ["wrong_patient"]


def test_the_check_run_again_at_the_start_still_stops_for_the_right_patient(app, users, db_session):
    ward = prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    with use_case(db_session, user(db_session, "qa"), "test: the bag expired after the check"):
        db_session.get(Bag, ward.bag_id).expires_at = utcnow() - timedelta(minutes=1)
    before = _written(db_session)
    with pytest.raises(Conflict, match="STOP, do not start: This bag EXPIRED"):
        _start(db_session, ward, ward.wristband)
    assert _written(db_session) == before
    assert [r[0] for r in _refusals(db_session)] == ["stop"]


def test_the_ward_page_start_uses_its_wristband_field(app, users, db_session, client_as):
    ward, other = prescribed_bag(db_session), prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    nurse = client_as("nurse")  # signing in is audited: counted from here
    before = _written(db_session)
    wrong = nurse.post("/ward/event", data={"wristband": other.wristband, "bag": ward.token, "action": "start"})
    # the full STOP screen, as a start refused on the confirmed check's page (post-redirect-get), not a line above
    # the ward form that a tired nurse reads past
    assert wrong.status_code == 303 and wrong.headers["Location"].endswith(f"/ward/bags/{ward.bag_id}/infusion")
    html = nurse.get(wrong.headers["Location"]).get_data(as_text=True)
    assert "WRONG PATIENT: this wristband is not the patient" in html and 'class="verdict verdict-stop' in html, html[:4000]
    # the bag alone: sent to its confirmed check's start form (a wristband scanned on the ward page would run a new
    # check and ask for a second person again)
    blank = nurse.post("/ward/event", data={"wristband": "", "bag": ward.token, "action": "start"})
    assert blank.status_code == 303 and "/ward/checks/" in blank.headers["Location"]
    assert blank.headers["Location"].endswith("#start-form")
    unconfirmed = nurse.post("/ward/event", data={"wristband": "", "bag": other.token, "action": "start"})
    assert unconfirmed.status_code == 422
    assert "Start infusion is on the confirmed check&#39;s page" in unconfirmed.get_data(as_text=True)
    assert _written(db_session) == before
    assert [r[:3] for r in _refusals(db_session)] == [("wrong_patient", ward.bag_id, "nurse")]

    started = nurse.post("/ward/event", data={"wristband": ward.wristband, "bag": ward.token, "action": "start"})
    assert started.status_code == 302 and "/ward/infusions/" in started.headers["Location"]


def _confirmed_page(client: Any, ward: Any) -> str:
    """The check and its confirmation, each answered 303 to the check's page (GET /ward/checks/<id>)."""
    page = client.post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token},
                       follow_redirects=True).get_data(as_text=True)
    check_id = int(page.split("/ward/checks/")[1].split("/confirm")[0])
    confirmed = client.post(f"/ward/checks/{check_id}/confirm", data={"second_username": "nurse2",
                                                                       "second_password": PASSWORD,
                                                                       "checker_password": PASSWORD},
                            follow_redirects=True)
    assert confirmed.status_code == 200 and [r.status_code for r in confirmed.history] == [303]
    return confirmed.get_data(as_text=True)


def test_the_result_page_start_is_a_form_that_scans_the_wristband_again(app, users, db_session, client_as):
    ward, other = prescribed_bag(db_session), prescribed_bag(db_session)
    nurse = client_as("nurse")
    page = _confirmed_page(nurse, ward)
    form = page.split('id="start-form"', 1)[1].split("</form>", 1)[0]
    assert "Scan the patient&#39;s wristband again (on the patient&#39;s arm)" in form
    assert 'name="wristband"' in form and "autofocus" in form and 'id="start-infusion"' in form
    before = _written(db_session)
    url = f"/ward/bags/{ward.bag_id}/infusion"

    blank = nurse.post(url, data={"wristband": "", "bag": ward.token})
    html = blank.get_data(as_text=True)
    assert blank.status_code == 422 and "Two-person check confirmed" in html and 'id="wristband-error"' in html

    # refused: 303 to GET /ward/bags/<id>/infusion, the STOP page with the refusal (which records nothing)
    wrong = nurse.post(url, data={"wristband": other.wristband, "bag": ward.token}, follow_redirects=True)
    html = wrong.get_data(as_text=True)
    assert [(r.status_code, r.headers["Location"]) for r in wrong.history] == [(303, url)]
    assert wrong.status_code == 200 and ">STOP<" in html and 'data-code="start_refused"' in html
    assert "WRONG PATIENT: this wristband is not the patient of the confirmed check" in html
    assert _code(db_session, other) in html.split("<dt>Patient</dt>", 1)[1]  # who was scanned
    assert 'id="start-infusion"' not in html and ">MATCHES<" not in html
    assert _written(db_session) == before
    assert [r[:3] for r in _refusals(db_session)] == [("wrong_patient", ward.bag_id, "nurse")]

    started = nurse.post(url, data={"wristband": ward.wristband, "bag": ward.token})
    assert started.status_code == 302 and "/ward/infusions/" in started.headers["Location"]


def test_the_api_start_needs_the_wristband_of_the_checked_patient(app, users, db_session):
    ward, other = prescribed_bag(db_session), prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}  # a new token is audited: counted from here
    before = _written(db_session)
    missing = client.post("/api/v1/custody/infusions", headers=headers, json={"bag_id": ward.bag_id})
    assert missing.status_code == 422 and "wristband" in missing.get_data(as_text=True)
    blank = client.post("/api/v1/custody/infusions", headers=headers, json={"bag_id": ward.bag_id, "wristband": " ",
                                                                               "bag": ward.token})
    assert blank.status_code == 422 and blank.mimetype == "application/problem+json"
    wrong = client.post("/api/v1/custody/infusions", headers=headers,
                        json={"bag_id": ward.bag_id, "wristband": other.wristband, "bag": ward.token})
    assert wrong.status_code == 409 and "WRONG PATIENT" in wrong.get_json()["detail"]
    assert _written(db_session) == before
    assert _refusals(db_session) == [("wrong_patient", ward.bag_id, "nurse", wrong.get_json()["detail"])]
    started = client.post("/api/v1/custody/infusions", headers=headers,
                          json={"bag_id": ward.bag_id, "wristband": ward.wristband, "bag": ward.token})
    assert started.status_code == 201 and started.get_json()["patient_id"] == ward.patient_id

    spec = client.get("/api/v1/openapi.json").get_json()
    body = spec["paths"]["/api/v1/custody/infusions"]["post"]["requestBody"]["content"]["application/json"]
    *_, name = body["schema"]["$ref"].split("/")
    schema = spec["components"]["schemas"][name]
    assert "wristband" in schema["required"] and "scanned again" in schema["properties"]["wristband"]["description"]


# ---- 2. a STOP after the confirmed check voids it -----------------------------------------------------------

def test_a_stop_of_the_bag_after_the_confirmed_check_voids_it(app, users, db_session):
    ward, other = prescribed_bag(db_session), prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)                       # at P's bed, confirmed
    assert not check(db_session, ward, wristband=other.wristband).matches  # then scanned at Q's bed: STOP
    before = _written(db_session)
    with pytest.raises(Conflict, match=r"A later scan of this bag said STOP \(WRONG PATIENT.*scan again and "
                                       "have a second person confirm"):
        _start(db_session, ward, ward.wristband)  # even back at P's bed
    assert _written(db_session) == before
    assert [r[0] for r in _refusals(db_session)] == ["later_stop"]

    checked_and_confirmed(db_session, ward)  # scanned again and confirmed: the newer check stands
    assert _start(db_session, ward, ward.wristband).patient_id == ward.patient_id


def test_a_stop_between_the_scan_and_its_confirmation_voids_it_too(app, users, db_session):
    ward, other = prescribed_bag(db_session), prescribed_bag(db_session)
    first = check(db_session, ward)
    assert first.matches
    check(db_session, ward, wristband=other.wristband)  # STOP, recorded after the MATCHES it follows
    bedside.confirm_second_person(db_session, user(db_session, "nurse"), first.check_id, username="nurse2",
                                  password=PASSWORD, checker_password=PASSWORD, label_key=KEY)
    with pytest.raises(Conflict, match="A later scan of this bag said STOP"):
        _start(db_session, ward, ward.wristband)


def test_a_stop_of_another_bag_does_not_void_the_check(app, users, db_session):
    ward, other = prescribed_bag(db_session), prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    assert not check(db_session, other, wristband=ward.wristband).matches  # Q's bag at P's bed: STOP for Q's bag
    assert _start(db_session, ward, ward.wristband).bag_id == ward.bag_id


# ---- 3. the check's own scan must be within the window ------------------------------------------------------

def _clock(monkeypatch: Any, minutes: int) -> None:
    """The ward's clock `minutes` from now, for the custody services (the signed check cannot be backdated)."""
    later = utcnow() + timedelta(minutes=minutes)
    for module in (services, handover, bedside, infusions):  # each module's clock, as services' was
        monkeypatch.setattr(module, "utcnow", lambda: later)


def test_the_scan_of_the_check_must_be_within_the_window_not_only_its_confirmation(app, users, db_session,
                                                                                    monkeypatch):
    ward = prescribed_bag(db_session)
    check_id = check(db_session, ward).check_id                       # scanned now
    _clock(monkeypatch, 20)                                            # confirmed 20 minutes later
    bedside.confirm_second_person(db_session, user(db_session, "nurse"), check_id, username="nurse2",
                                  password=PASSWORD, checker_password=PASSWORD, label_key=KEY)
    _clock(monkeypatch, 31)                                            # 11 minutes after the confirmation
    before = _written(db_session)
    with pytest.raises(Conflict, match="No confirmed two-person bedside check of bag .* in the last 30 minutes"):
        _start(db_session, ward, ward.wristband, valid_for=timedelta(minutes=30))
    assert _written(db_session) == before
    assert [r[0] for r in _refusals(db_session)] == ["no_confirmed_check"]
    _clock(monkeypatch, 29)                                            # within 30 minutes of the scan: starts
    assert _start(db_session, ward, ward.wristband, valid_for=timedelta(minutes=30)).check_id == check_id


# ---- 4. the record names the two checkers and the starter apart ---------------------------------------------

def test_the_records_name_both_checkers_and_the_person_who_started(app, users, db_session, client_as):
    add_user(app, "nurse3", ["nurse"])
    ward, twin = prescribed_bag(db_session), prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)  # nurse checks, nurse2 confirms
    checked_and_confirmed(db_session, twin)
    db_session.rollback()
    by_third = client_as("nurse3").post(f"/ward/bags/{ward.bag_id}/infusion", data={"wristband": ward.wristband,
                                                                                         "bag": ward.token})
    by_second = client_as("nurse2").post(f"/ward/bags/{twin.bag_id}/infusion", data={"wristband": twin.wristband,
                                                                                         "bag": twin.token})

    record = client_as("nurse").get(by_third.headers["Location"]).get_data(as_text=True)
    assert '<dd id="infusion-checkers">checked by Nurse, confirmed by Nurse2</dd>' in record
    assert '<dd id="infusion-started-by">Nurse3</dd>' in record and "two-person check)" not in record
    record = client_as("nurse").get(by_second.headers["Location"]).get_data(as_text=True)
    assert '<dd id="infusion-checkers">checked by Nurse, confirmed by Nurse2</dd>' in record
    assert '<dd id="infusion-started-by">Nurse2</dd>' in record and "Nurse2 and Nurse2" not in record

    page = client_as("clinician").get(f"/patients/{ward.patient_id}").get_data(as_text=True)
    table = page.split('id="infusions"', 1)[1].split("</section>", 1)[0]
    assert "Checked by Nurse, confirmed by Nurse2;<br>started by Nurse3" in table
    lot = client_as("qa").get(f"/lots/{twin.lot_id}").get_data(as_text=True)
    assert "Checked by Nurse, confirmed by Nurse2;<br>started by Nurse2" in lot.split('id="infusions"', 1)[1]


def test_a_second_start_of_an_infused_bag_is_refused_and_recorded(app, users, db_session):
    ward = prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    _start(db_session, ward, ward.wristband)
    before = _written(db_session)
    with pytest.raises(Conflict, match="is being infused now: its infusion started on"):
        _start(db_session, ward, ward.wristband)
    assert _written(db_session) == before
    assert [r[:2] for r in _refusals(db_session)] == [("already_infused", ward.bag_id)]
    with pytest.raises(NotFound):  # an unknown bag is no refused start of a bag: nothing to record it against
        infusions.start_infusion(db_session, user(db_session, "nurse"), 10**9, wristband=ward.wristband,
                                 bag_scan=ward.token, label_key=KEY)
    assert len(_refusals(db_session)) == 1
