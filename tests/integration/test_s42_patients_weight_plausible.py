"""Session 42, a patient's first weight (through the weights form and the API).

The dose in cells/kg follows the weight. A weight far from one measured within the protocol's weight_check_days
needed the clinician's tick; a FIRST weight (or one with no other within those days) was checked only against
1-400 kg, so an adult's 62.5 kg typed with a slipped decimal point (6.25) or an 80 kg adult typed in pounds (176.4)
was recorded silently and dosed. Such a weight outside the protocol's plausible adult weights (dosing.
plausible_weight_kg, 35 to 150 kg in both trials) is now refused (422 naming weight_kg, the weight and the range,
nothing written) unless the clinician ticks "I have checked this weight"; the confirmation with those words is the
audit reason of the weight's record. A weight with another one within the protocol's days keeps the jump rule.
"""
from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from html import unescape
from typing import Any

from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.patients import services
from mscbatch.patients.models import WeightMeasurement
from mscbatch.site import site_today
from tests.conftest import api_token_for
from tests.integration.patient_factories import SSC, patient, user

TICK = "I have checked this weight (confirmed by the clinician)"


def _unweighed(app: Any, **kwargs: Any) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        row = patient(session, user(session, "clinician"), weight=None, enrol=False, **kwargs)
        session.commit()
        return row.id


def _weighed(app: Any, kg: str, days_ago: int) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        row = patient(session, user(session, "clinician"), weight=kg, weighed_days_ago=days_ago, enrol=False)
        session.commit()
        return row.id


def _written(app: Any, pid: int) -> tuple[list[str], int]:
    """The patient's weights (kg, oldest first) and the number of audit events of weight records."""
    with app.extensions["mscbatch.db"].new_session() as session:
        weights = [f"{w.normalize():f}" for w in session.scalars(
            select(WeightMeasurement.weight_kg).where(WeightMeasurement.patient_id == pid)
            .order_by(WeightMeasurement.id))]
        events = session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.entity_type == "patient_weight"))
        return weights, events


def _reasons(app: Any, pid: int) -> list[str]:
    with app.extensions["mscbatch.db"].new_session() as session:
        latest = session.scalar(select(WeightMeasurement.id).where(WeightMeasurement.patient_id == pid)
                                .order_by(WeightMeasurement.id.desc()).limit(1))
        return [r for r in session.scalars(select(AuditEvent.reason).where(
            AuditEvent.entity_type == "patient_weight", AuditEvent.entity_id == str(latest))) if r]


def _error(page: Any) -> str:
    found = re.search(r'id="weight_kg-error"[^>]*>(.*?)</', page.get_data(as_text=True), re.S)
    assert found is not None, page.get_data(as_text=True)[:3000]
    return " ".join(unescape(found.group(1)).split())


def _post(client: Any, pid: int, kg: str, *, tick: bool = False, on: date | None = None) -> Any:
    data = {"weight_kg": kg, "measured_on": (on or site_today()).isoformat()}
    return client.post(f"/patients/{pid}/weights", data={**data, "weight_confirmed": "y"} if tick else data)


def test_a_first_weight_inside_the_adult_range_is_recorded_without_a_tick(app, users, client_as):
    clinician = client_as("clinician")
    for kg in ("62.5", "35", "150"):  # the range's ends are plausible
        pid = _unweighed(app)
        answer = _post(clinician, pid, kg)
        assert answer.status_code == 302, answer.get_data(as_text=True)[:3000]
        assert _written(app, pid)[0] == [kg]
        assert _reasons(app, pid) == []  # no confirmation asked, none recorded
    page = clinician.get(f"/patients/{pid}").get_data(as_text=True)
    assert "lies outside 35 to 150 kg (the plausible weights for an adult in this protocol)" in unescape(page)


def test_a_first_weight_outside_the_range_is_refused_naming_it_the_range_and_the_slip(app, users, client_as):
    clinician = client_as("clinician")
    pid = _unweighed(app)
    today = site_today().isoformat()
    before = _written(app, pid)
    pounds = _post(clinician, pid, "176.4")  # 80 kg typed in pounds
    assert pounds.status_code == 422
    assert _error(pounds) == (
        f"Weight not recorded: 176.4 kg measured on {today} is above 150 kg: the plausible weights for an adult in "
        "protocol SLE-UC are 35 to 150 kg, and no other weight of this patient was measured within 30 days of it to "
        "compare it with. If it was typed in pounds: 176.4 lb is 80 kg. Check the unit (kg, not lb) and the decimal "
        "point. If it is right, tick \"I have checked this weight\" and record it again.")
    decimal = _post(clinician, pid, "6.25")  # 62.5 kg with the decimal point slipped
    assert decimal.status_code == 422
    words = _error(decimal)
    assert (f"6.25 kg measured on {today} is below 35 kg: the plausible weights for an adult in protocol SLE-UC are "
            "35 to 150 kg") in words
    assert "With the decimal point one place further right it would be 62.5 kg." in words
    for kg, side in (("34.99", "below 35 kg"), ("150.01", "above 150 kg")):
        refused = _post(clinician, pid, kg)
        assert refused.status_code == 422 and f"{kg} kg measured on {today} is {side}" in _error(refused)
    assert _written(app, pid) == before == ([], before[1])  # nothing written, not even an audit event


def test_the_tick_records_an_unusual_first_weight_with_the_words_as_its_audit_reason(app, users, client_as):
    clinician = client_as("clinician")
    pid = _unweighed(app)
    today = site_today().isoformat()
    answer = _post(clinician, pid, "30", tick=True)  # a very thin adult, weighed twice
    assert answer.status_code == 302, answer.get_data(as_text=True)[:3000]
    assert _written(app, pid)[0] == ["30"]
    assert _reasons(app, pid) == [
        f"{TICK}: 30 kg measured on {today} is below 35 kg: the plausible weights for an adult in protocol SLE-UC are "
        "35 to 150 kg, and no other weight of this patient was measured within 30 days of it to compare it with."]
    shown = clinician.get(f"/patients/{pid}").get_data(as_text=True)
    assert "Weight recorded: 30 kg" in shown and "checked by you, as recorded in the audit trail" in shown


def test_a_later_weight_within_the_window_keeps_the_jump_rule(app, users, client_as):
    clinician = client_as("clinician")
    pid = _unweighed(app)
    yesterday = site_today() - timedelta(days=1)
    assert _post(clinician, pid, "152", tick=True, on=yesterday).status_code == 302  # checked once
    near = _post(clinician, pid, "153")  # 0.7 % from yesterday's: no check, though above the range
    assert near.status_code == 302, _error(near)
    assert _reasons(app, pid) == []
    far = _post(clinician, pid, "69.4")  # inside the range, but 54.6 % from today's 153 kg: the jump rule speaks
    words = _error(far)
    assert far.status_code == 422 and "54.6 % below the other weight measured that day, 153 kg" in words, words
    assert "plausible weights" not in words
    assert _written(app, pid)[0] == ["152", "153"]


def test_a_weight_with_none_within_the_protocols_days_is_judged_against_the_range(app, users, client_as):
    pid = _weighed(app, "62.5", days_ago=31)  # the only other weight is older than the 30 days
    clinician = client_as("clinician")
    refused = _post(clinician, pid, "6.25")
    assert refused.status_code == 422 and "is below 35 kg" in _error(refused)
    assert _post(clinician, pid, "63").status_code == 302


def test_an_under_age_patients_words_say_their_age_and_ssc_names_its_protocol(app, users, db_session, client_as):
    clin = user(db_session, "clinician")
    today = site_today()
    young = services.register_patient(db_session, clin, services.PatientDetails(
        protocol_id="protocol-sle-uc", initials="CD", date_of_birth=today - timedelta(days=16 * 365 + 10), sex="male",
        ward="Ward 3"))
    db_session.commit()
    refused = _post(client_as("clinician"), young.id, "30")
    assert "protocol SLE-UC are 35 to 150 kg (this patient was 16 years old that day)" in _error(refused)
    ssc = _unweighed(app, protocol_id=SSC, code="SSC-BM-042")
    assert "protocol SSc-BM are 35 to 150 kg, and" in _error(_post(client_as("clinician"), ssc, "200"))


def test_the_api_refuses_and_confirms_the_same_way(app, users):
    pid = _unweighed(app)
    api, today = app.test_client(), site_today().isoformat()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    before = _written(app, pid)
    refused = api.post(f"/api/v1/patients/{pid}/weights", headers=headers,
                       json={"weight_kg": "176.4", "measured_on": today})
    body = refused.get_json()
    assert refused.status_code == 422, body
    assert set(body["errors"]) == {"weight_kg"}
    message = body["errors"]["weight_kg"][0]
    assert message.startswith(f"Weight not recorded: 176.4 kg measured on {today} is above 150 kg: the plausible "
                              "weights for an adult in protocol SLE-UC are 35 to 150 kg"), message
    assert "176.4 lb is 80 kg" in message and 'send "weight_confirmed": true' in message
    assert _written(app, pid) == before
    confirmed = api.post(f"/api/v1/patients/{pid}/weights", headers=headers,
                         json={"weight_kg": "176.4", "measured_on": today, "weight_confirmed": True})
    assert confirmed.status_code == 201, confirmed.get_json()
    assert Decimal(confirmed.get_json()["weight_kg"]) == Decimal("176.4")
    [reason] = _reasons(app, pid)
    assert reason.startswith(f"{TICK}: 176.4 kg measured on {today} is above 150 kg") and "176.4 lb is 80 kg" in reason
    inside = _unweighed(app)
    plain = api.post(f"/api/v1/patients/{inside}/weights", headers=headers,
                     json={"weight_kg": "81", "measured_on": today})
    assert plain.status_code == 201, plain.get_json()
