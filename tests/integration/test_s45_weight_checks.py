"""Session 45, dose-safety defects of the weights and the prescription (web form and API, SQLite and PostgreSQL).

1. A new weight with none within the protocol's weight_check_days was judged only against the plausible adult range:
   a patient weighed 65 kg a month ago whose new weight is typed in pounds (143.3) was recorded silently and the dose
   more than doubled. It is now also compared with the patient's weight nearest in time, however old.
2. Within the days a new weight was compared only with the newest: walked up 10 % at a time (70, 77, 84.7 ... kg the
   same day) it reached any dose without a check. It is now judged against the farthest weight of the window.
3. A repeat course was signed with a one-character reason ("x"): at least 20 characters now, nothing written.
4. The API's dry run said allowed: true for a patient with an active prescription, whose signature is refused 409.
5. The API said "stopped" for a closed completed course that the patient page shows "COMPLETED: every bag given
   (closed)": state_words says the page's words.
"""
from __future__ import annotations

from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.errors import Conflict
from mscbatch.patients import prescriptions, services
from mscbatch.patients.models import Prescription, WeightMeasurement
from mscbatch.site import site_today
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_review4_patients_dose import _give_first_bag_and_stop
from tests.integration.test_review4_patients_support import dry_run_body
from tests.integration.test_s38_patients_dose_courses import _first_course_given_over
from tests.integration.test_s42_patients_weight_plausible import _error, _post
from tests.integration.test_s42_patients_weight_plausible import _reasons as _latest_reasons

TICK = "I have checked this weight (confirmed by the clinician)"


def _weighed(app: Any, kg: str, days_ago: int) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        row = patient(session, user(session, "clinician"), weight=kg, weighed_days_ago=days_ago, enrol=False)
        session.commit()
        return row.id


def _weights(app: Any, pid: int) -> list[str]:
    with app.extensions["mscbatch.db"].new_session() as session:
        return [f"{w.normalize():f}" for w in session.scalars(
            select(WeightMeasurement.weight_kg).where(WeightMeasurement.patient_id == pid)
            .order_by(WeightMeasurement.id))]


def _weight_events(app: Any) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.entity_type == "patient_weight"))


def _api(app: Any) -> tuple[Any, dict[str, str]]:
    return app.test_client(), {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}


# 1. no weight within the protocol's days: the nearest one in time, however old, and the adult range -------------

def test_a_weight_in_pounds_a_month_after_the_last_is_refused_naming_that_weight_its_date_and_the_days(
        app, users, client_as):
    pid = _weighed(app, "65", days_ago=31)
    today, month_ago = site_today(), site_today() - timedelta(days=31)
    clinician, events = client_as("clinician"), _weight_events(app)
    refused = _post(clinician, pid, "143.3")
    assert refused.status_code == 422
    assert _error(refused) == (
        f"Weight not recorded: 143.3 kg measured on {today} is 120.5 % above this patient's weight nearest in time, "
        f"65 kg measured on {month_ago}, 31 days before it (none was measured within 30 days of it; more than the "
        "10 % allowed without a check). It looks like a weight in pounds: 65 kg is 143.3 lb. Check the weight and "
        "its unit (kg). If it is right, tick \"I have checked this weight\" and record it again.")
    api, headers = _api(app)
    by_api = api.post(f"/api/v1/patients/{pid}/weights", headers=headers,
                      json={"weight_kg": "143.3", "measured_on": today.isoformat()})
    body = by_api.get_json()
    assert by_api.status_code == 422 and set(body["errors"]) == {"weight_kg"}, body
    assert f"65 kg measured on {month_ago}, 31 days before it" in body["errors"]["weight_kg"][0]
    assert 'send "weight_confirmed": true' in body["errors"]["weight_kg"][0]
    assert _weights(app, pid) == ["65"] and _weight_events(app) == events  # nothing written

    confirmed = _post(clinician, pid, "143.3", tick=True)
    assert confirmed.status_code == 302, confirmed.get_data(as_text=True)[:3000]
    [reason] = _latest_reasons(app, pid)
    assert reason.startswith(f"{TICK}: 143.3 kg measured on {today} is 120.5 % above") and "31 days before" in reason


def test_an_old_weight_measured_after_the_new_one_is_named_as_after_it(app, users, client_as):
    pid = _weighed(app, "65", days_ago=0)
    earlier = site_today() - timedelta(days=40)
    refused = _post(client_as("clinician"), pid, "90", on=earlier)  # a weight typed in late, 40 days before
    assert refused.status_code == 422
    assert f"this patient's weight nearest in time, 65 kg measured on {site_today()}, 40 days after it" in _error(
        refused)


def test_near_the_old_weight_no_check_and_the_adult_range_still_judged(app, users, client_as):
    clinician = client_as("clinician")
    near = _weighed(app, "65", days_ago=31)
    assert _post(clinician, near, "70").status_code == 302  # 7.7 % from the old weight, inside the range
    assert _latest_reasons(app, near) == []
    heavy = _weighed(app, "145", days_ago=40)
    above = _post(clinician, heavy, "152")  # 4.8 % from the old weight, but above the plausible adult weights
    words = _error(above)
    assert above.status_code == 422 and "152 kg measured on" in words and "is above 150 kg" in words, words
    assert "Check the unit (kg, not lb) and the decimal point." in words
    slipped = _weighed(app, "62.5", days_ago=31)
    both = _error(_post(clinician, slipped, "6.25"))  # far from the old weight AND below the range: both said
    assert "90 % below this patient's weight nearest in time, 62.5 kg" in both and "is below 35 kg" in both, both
    assert _weights(app, heavy) == ["145"] and _weights(app, slipped) == ["62.5"]


# 2. within the days: judged against the farthest weight, not only the newest -----------------------------------

def test_a_weight_walked_up_ten_percent_at_a_time_is_stopped_against_the_first(app, users, client_as):
    pid = _weighed(app, "70", days_ago=0)
    clinician, today = client_as("clinician"), site_today()
    assert _post(clinician, pid, "77").status_code == 302  # 10 %: allowed
    walked = _post(clinician, pid, "84.7")  # 10 % above 77, but 21 % above 70 the same day
    assert walked.status_code == 422
    assert _error(walked).startswith(
        f"Weight not recorded: 84.7 kg measured on {today} is 21 % above the other weight measured that day, 70 kg "
        f"on {today} (more than the 10 % allowed without a check between weights measured within 30 days).")
    api, headers = _api(app)
    by_api = api.post(f"/api/v1/patients/{pid}/weights", headers=headers,
                      json={"weight_kg": "84.7", "measured_on": today.isoformat()})
    assert by_api.status_code == 422 and "21 % above the other weight measured that day, 70 kg" in (
        by_api.get_json()["errors"]["weight_kg"][0])
    assert _weights(app, pid) == ["70", "77"]


def test_the_farthest_weight_is_named_by_its_place_in_time(app, users, client_as):
    pid = _weighed(app, "70", days_ago=5)
    clinician, today = client_as("clinician"), site_today()
    assert _post(clinician, pid, "77", on=today - timedelta(days=1)).status_code == 302
    words = _error(_post(clinician, pid, "84.7"))
    assert f"21 % above the previous weight, 70 kg measured on {today - timedelta(days=5)}" in words, words
    later = _error(_post(clinician, pid, "62", on=today - timedelta(days=6)))  # 70 and 77 kg were measured after
    assert f"19.5 % below the weight measured after this one, 77 kg on {today - timedelta(days=1)}" in later, later


def test_a_weight_recorded_meanwhile_that_changes_the_check_refuses_the_record(app, users, db_session, monkeypatch):
    """The check is judged again under the patient's lock: a weight recorded meanwhile (here, 62 kg, slipped in as
    the lock is taken) that makes the new weight far from one of the window refuses it (409), nothing written."""
    clin = user(db_session, "clinician")
    pid = patient(db_session, clin, weight="70", weighed_days_ago=0, enrol=False).id
    db_session.commit()
    taking = services.lock_patient

    def lock_after_a_colleague(session: Any, patient_id: int) -> Any:
        locked = taking(session, patient_id)
        session.add(WeightMeasurement(patient_id=patient_id, weight_kg="62", measured_on=site_today(),
                                      recorded_by_id=clin.id))
        session.flush()
        return locked

    monkeypatch.setattr(services, "lock_patient", lock_after_a_colleague)
    with pytest.raises(Conflict) as meanwhile:
        services.record_weight(db_session, clin, pid, weight_kg="75", measured_on=site_today())  # 7 % from 70 kg
    assert meanwhile.value.field == "weight_kg" and "recorded meanwhile" in meanwhile.value.message
    db_session.rollback()
    assert _weights(app, pid) == ["70"]


# 3. a repeat course needs a reason that says why ---------------------------------------------------------------

def test_a_repeat_course_with_a_one_character_reason_is_refused_on_the_page_and_the_api(
        app, users, db_session, client_as):
    tech, clin = user(db_session, "technician"), user(db_session, "clinician")
    lot_with_bags(db_session, tech, donor(db_session, tech), bags=6, cells=50_000_000)
    pid = patient(db_session, clin).id
    _give_first_bag_and_stop(db_session, pid)
    db_session.commit()
    clinician = client_as("clinician")
    page = clinician.get(f"/patients/{pid}/dose").get_data(as_text=True)
    hidden = {k: page.split(f'name="{k}" type="hidden" value="')[1].split('"')[0]
              for k in ("level", "bag_ids", "weight_id", "planned_on")}
    api, headers = _api(app)
    body = dry_run_body(api, headers, pid)
    for reason in ("x", "   repeat course: x   ", "a" * 19, "repeat course: " + "a" * 19):
        refused = clinician.post(f"/patients/{pid}/prescriptions",
                                 data={**hidden, "repeat_course_reason": reason, "password": PASSWORD})
        words = " ".join(unescape(refused.get_data(as_text=True)).split())
        assert refused.status_code == 422, reason
        assert "Write the reason for the repeat course (at least 20 characters" in words, words[:3000]
        by_api = api.post(f"/api/v1/patients/{pid}/prescriptions", headers=headers,
                          json={**body, "repeat_course_reason": reason})
        errors = by_api.get_json()["errors"]
        assert by_api.status_code == 422 and set(errors) == {"repeat_course_reason"}, errors
        assert "at least 20 characters" in errors["repeat_course_reason"][0]
    db_session.rollback()
    assert [p.status for p in db_session.scalars(select(Prescription).where(Prescription.patient_id == pid))] == [
        "stopped"]  # nothing signed
    db_session.rollback()
    signed = api.post(f"/api/v1/patients/{pid}/prescriptions", headers=headers,
                      json={**body, "repeat_course_reason": "a" * 20})
    assert signed.status_code == 201, signed.get_json()


# 4. the dry run says what the signature would refuse ------------------------------------------------------------

def test_the_api_dry_run_is_not_allowed_while_a_prescription_is_active(app, users, db_session):
    tech, clin = user(db_session, "technician"), user(db_session, "clinician")
    lot_with_bags(db_session, tech, donor(db_session, tech), bags=6, cells=50_000_000)
    pid = patient(db_session, clin).id
    db_session.commit()
    api, headers = _api(app)
    body = dry_run_body(api, headers, pid)
    assert api.post(f"/api/v1/patients/{pid}/prescriptions", headers=headers, json=body).status_code == 201
    dry = api.post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers, json={})
    answer = dry.get_json()
    assert dry.status_code == 200 and answer["allowed"] is False, answer
    assert answer["refusal_code"] == "active_prescription"
    signing = api.post(f"/api/v1/patients/{pid}/prescriptions", headers=headers, json=body)
    assert signing.status_code == 409, signing.get_json()
    assert answer["refusal_reason"] == signing.get_json()["detail"]
    assert "already has an active prescription: cancel it first" in answer["refusal_reason"]


# 5. the API says the page's state words ------------------------------------------------------------------------

def test_the_api_says_a_closed_completed_course_as_the_patient_page_does(app, users, db_session, client_as):
    pid, rx_id = _first_course_given_over(db_session)
    clin = user(db_session, "clinician")
    db_session.commit()
    api, headers = _api(app)
    active = api.get(f"/api/v1/patients/prescriptions/{rx_id}", headers=headers).get_json()
    assert active["status"] == "active" and active["state_words"] == "COMPLETED: every bag given", active
    prescriptions.cancel(db_session, clin, rx_id, "course completed", password=PASSWORD)
    db_session.commit()
    closed = api.get(f"/api/v1/patients/prescriptions/{rx_id}", headers=headers).get_json()
    assert closed["status"] == "stopped"  # the stored status is unchanged
    assert closed["state_words"] == "COMPLETED: every bag given (closed)"
    [listed] = api.get(f"/api/v1/patients/{pid}/prescriptions", headers=headers).get_json()
    assert listed["state_words"] == closed["state_words"]
    page = " ".join(unescape(client_as("clinician").get(f"/patients/{pid}").get_data(as_text=True)).split())
    assert "COMPLETED: every bag given</span> (closed)" in page
