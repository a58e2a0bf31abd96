"""Review 4 of the patient dose (r3-patient-dose): an API signature on a calculation nobody saw, a weight typed in
pounds dosed as kg, a full new dose on top of a stopped course without a word, and an escalation decided minutes
after the cohort's last infusion started (SLE-UC judges tolerance during the injection and the 10 days after)."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from mscbatch.audit.models import AuditEvent
from mscbatch.custody import bedside, handover, infusions
from mscbatch.custody.models import Infusion
from mscbatch.errors import ValidationFailed
from mscbatch.lots.models import Bag
from mscbatch.patients import prescriptions
from mscbatch.patients.models import EscalationDecisionRecord, Prescription, WeightMeasurement
from mscbatch.patients.services import record_weight
from mscbatch.site import site_today
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_custody_support import KEY, token_of
from tests.integration.test_review4_patients_support import (
    backdate_infusions,
    decide_escalation,
    dry_run_body,
    five_infused,
)

SLE = "protocol-sle-uc"


def _clinician_api(app):  # type: ignore[no-untyped-def]
    return app.test_client(), {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}


def _prescriptions(app, pid: int) -> list[Prescription]:  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        return list(session.scalars(select(Prescription).where(Prescription.patient_id == pid)))


# 1. the API signs only the calculation the clinician saw --------------------------------------------------------

def test_the_api_signature_requires_the_dry_runs_level_bags_and_weight(app, users, db_session):
    """Dry run at 62.5 kg, then a colleague records 66 kg: a signature sending only the dry run's bags used to be
    signed at 66 kg with other volumes. Each value the calculation rests on is now required (422 naming each), and
    the dry run's weight refuses the signature (409)."""
    tech, clin = user(db_session, "technician"), user(db_session, "clinician")
    lot_with_bags(db_session, tech, donor(db_session, tech), bags=3, cells=50_000_000)
    pid = patient(db_session, clin, weighed_days_ago=0).id
    db_session.commit()
    api, headers = _clinician_api(app)
    seen = dry_run_body(api, headers, pid)
    record_weight(db_session, clin, pid, weight_kg="66", measured_on=site_today())
    db_session.commit()

    missing = api.post(f"/api/v1/patients/{pid}/prescriptions", headers=headers,
                       json={"password": PASSWORD, "bag_ids": seen["bag_ids"]})
    assert missing.status_code == 422, missing.get_json()
    errors = missing.get_json()["errors"]
    assert set(errors) == {"weight_id", "dose_level_cells_per_kg"}, errors
    assert "weight_id" in errors["weight_id"][0] and "dry run you saw" in errors["weight_id"][0]
    nothing = api.post(f"/api/v1/patients/{pid}/prescriptions", headers=headers, json={"password": PASSWORD})
    assert set(nothing.get_json()["errors"]) == {"weight_id", "dose_level_cells_per_kg", "bag_ids"}
    empty = api.post(f"/api/v1/patients/{pid}/prescriptions", headers=headers, json={**seen, "bag_ids": []})
    assert empty.status_code == 422 and "bag_ids" in empty.get_json()["errors"]

    stale = api.post(f"/api/v1/patients/{pid}/prescriptions", headers=headers, json=seen)
    assert stale.status_code == 409, stale.get_json()
    assert "You saw 62.5 kg" in stale.get_json()["detail"] and "the latest is 66 kg" in stale.get_json()["detail"]
    assert _prescriptions(app, pid) == []

    fresh = dry_run_body(api, headers, pid)  # the calculation at 66 kg, seen, then signed
    signed = api.post(f"/api/v1/patients/{pid}/prescriptions", headers=headers, json=fresh)
    assert signed.status_code == 201, signed.get_json()
    assert signed.get_json()["weight_kg"] == "66.00"


def test_the_dose_page_refuses_a_signature_without_the_weight_it_showed(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    tech, clin = user(session, "technician"), user(session, "clinician")
    lot_with_bags(session, tech, donor(session, tech), bags=3, cells=50_000_000)
    pid = patient(session, clin).id
    session.close()
    client = client_as("clinician")
    page = client.get(f"/patients/{pid}/dose").get_data(as_text=True)
    bag_ids = page.split('name="bag_ids" type="hidden" value="')[1].split('"')[0]
    posted = client.post(f"/patients/{pid}/prescriptions", data={"level": "2000000", "bag_ids": bag_ids,
                                                                "planned_on": "", "password": PASSWORD})
    assert posted.status_code == 422
    assert "the weight it used is missing" in posted.get_data(as_text=True)
    assert _prescriptions(app, pid) == []


# 2. a weight far from a recent one needs the clinician's check -------------------------------------------------

def test_a_weight_typed_in_pounds_is_refused_until_the_clinician_confirms_it(app, users, db_session, client_as):
    tech, clin = user(db_session, "technician"), user(db_session, "clinician")
    lot_with_bags(db_session, tech, donor(db_session, tech), bags=8, cells=50_000_000)
    row = patient(db_session, clin)  # 62.5 kg measured yesterday
    pid = row.id
    yesterday = db_session.scalar(select(WeightMeasurement.measured_on).where(WeightMeasurement.patient_id == pid))
    db_session.commit()
    today = site_today().isoformat()
    clinician = client_as("clinician")
    refused = clinician.post(f"/patients/{pid}/weights", data={"weight_kg": "137.8", "measured_on": today})
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422, body
    assert (f"137.8 kg measured on {today} is 120.5 % above the previous weight, 62.5 kg measured on {yesterday} "
            "(more than the 10 % allowed without a check between weights measured within 30 days)") in body
    assert "It looks like a weight in pounds: 62.5 kg is 137.8 lb." in body
    assert "I have checked this weight" in body
    assert "125,000,000 cells" in clinician.get(f"/patients/{pid}/dose").get_data(as_text=True)  # still 62.5 kg

    api, headers = _clinician_api(app)
    by_api = api.post(f"/api/v1/patients/{pid}/weights", headers=headers,
                      json={"weight_kg": "137.8", "measured_on": today})
    assert by_api.status_code == 422 and "120.5 % above" in by_api.get_json()["errors"]["weight_kg"][0]
    assert api.post(f"/api/v1/patients/{pid}/weights", headers=headers, json={  # the 1-400 kg bound stays
        "weight_kg": "450", "measured_on": today, "weight_confirmed": True}).status_code == 422
    db_session.rollback()
    assert len(list(db_session.scalars(select(WeightMeasurement).where(WeightMeasurement.patient_id == pid)))) == 1
    db_session.rollback()  # SQLite: a read holds the write lock until its transaction ends

    # a real change of weight: the clinician checks it, ticks the box, and the check is in the audit trail
    confirmed = clinician.post(f"/patients/{pid}/weights", data={"weight_kg": "55", "measured_on": today,
                                                                "weight_confirmed": "y"})
    assert confirmed.status_code == 302, confirmed.get_data(as_text=True)
    db_session.rollback()
    latest = db_session.scalar(select(WeightMeasurement).where(WeightMeasurement.patient_id == pid)
                               .order_by(WeightMeasurement.id.desc()))
    assert latest.weight_kg == 55
    reasons = set(db_session.scalars(select(AuditEvent.reason).where(
        AuditEvent.entity_type == "patient_weight", AuditEvent.entity_id == str(latest.id))))
    assert any(r and r.startswith("I have checked this weight (confirmed by the clinician): 55 kg measured on")
               and f"62.5 kg measured on {yesterday}" in r for r in reasons), reasons
    db_session.rollback()
    api_ok = api.post(f"/api/v1/patients/{pid}/weights", headers=headers,
                      json={"weight_kg": "62.5", "measured_on": today, "weight_confirmed": True})
    assert api_ok.status_code == 201, api_ok.get_json()
    # within 10 % of every weight of the window (62.5 and 55 kg: each is compared, s45): no check needed
    close = api.post(f"/api/v1/patients/{pid}/weights", headers=headers,
                     json={"weight_kg": "58", "measured_on": today})
    assert close.status_code == 201, close.get_json()


def test_a_weight_near_one_older_than_the_protocols_days_needs_no_check(app, users, db_session):
    """s45: with none within the protocol's days, the weight nearest in time is compared, however old: 80 kg after
    62.5 kg 31 days ago needs the check (tests/integration/test_s45_weight_checks.py); 66 kg does not."""
    clin = user(db_session, "clinician")
    pid = patient(db_session, clin, weighed_days_ago=31).id  # 62.5 kg, 31 days ago
    with pytest.raises(ValidationFailed) as far:
        record_weight(db_session, clin, pid, weight_kg="80", measured_on=site_today())
    assert far.value.field == "weight_kg" and "62.5 kg measured on" in far.value.message
    row = record_weight(db_session, clin, pid, weight_kg="66", measured_on=site_today())
    assert row.id


# 3. a repeat course: what was given is shown, and signing needs a written reason ------------------------------

def _give_first_bag_and_stop(session, pid: int) -> int:  # type: ignore[no-untyped-def]
    """The first bag of the patient's prescription infused whole (25 mL, 50 x10^6 cells), then the course stopped."""
    tech, clin, nurse = user(session, "technician"), user(session, "clinician"), user(session, "nurse")
    rx = prescriptions.prescribe(session, clin, PASSWORD, pid)
    bag = session.get(Bag, int(rx.calculation["draws"][0]["bag_id"]))
    wristband = patient_wristband(session, pid)
    handover.dispatch(session, tech, bag.id, courier="C", shipper="S", temperature_logger_id="T")
    handover.receive(session, nurse, bag.id, scan=token_of(bag))
    handover.thaw(session, nurse, bag.id, scan=token_of(bag))
    check = bedside.bedside_check(session, nurse, wristband=wristband, bag_scan=token_of(bag), label_key=KEY)
    assert check.matches, check.failures
    bedside.confirm_second_person(session, nurse, check.check_id, username="nurse2", password=PASSWORD,
                                  checker_password=PASSWORD, label_key=KEY)
    infusion = infusions.start_infusion(session, nurse, bag.id, wristband=wristband, bag_scan=token_of(bag),
                                        label_key=KEY)
    infusions.end_infusion(session, nurse, infusion.id, volume_ml="25")
    prescriptions.cancel(session, clin, rx.id, "pump failure, course to be redone", password=PASSWORD)
    return bag.id


def patient_wristband(session, pid: int) -> str:  # type: ignore[no-untyped-def]
    from mscbatch.patients.models import Patient

    return session.get(Patient, pid).wristband_id


def test_a_new_course_after_a_stopped_one_shows_what_was_given_and_needs_a_written_reason(
        app, users, db_session, client_as):
    tech, clin = user(db_session, "technician"), user(db_session, "clinician")
    lot_with_bags(db_session, tech, donor(db_session, tech), bags=6, cells=50_000_000)
    pid = patient(db_session, clin).id
    given_bag = _give_first_bag_and_stop(db_session, pid)
    db_session.commit()

    clinician = client_as("clinician")
    page = clinician.get(f"/patients/{pid}/dose").get_data(as_text=True)
    box = page[page.find('id="already-infused"'):][:800]
    assert "Already infused under SLE-UC: 50 x10^6 cells = 0.8 x10^6/kg" in box, box
    assert "NOT reduced" in box and "125,000,000 cells" in page  # the full dose, never subtracted
    assert "Reason for a repeat course" in page

    api, headers = _clinician_api(app)
    dry = api.post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers, json={}).get_json()
    assert dry["repeat_course_reason_required"] is True
    assert dry["already_infused"]["cells"] == 50000000 and dry["already_infused"]["cells_per_kg"] == "800000"
    assert [b["bag_id"] for b in dry["already_infused"]["bags"]] == [given_bag]

    hidden = {k: page.split(f'name="{k}" type="hidden" value="')[1].split('"')[0]
              for k in ("level", "bag_ids", "weight_id", "planned_on")}
    refused = clinician.post(f"/patients/{pid}/prescriptions", data={**hidden, "password": PASSWORD})
    words = refused.get_data(as_text=True)
    assert refused.status_code == 422, words
    assert "Repeat course: 50 x10^6 cells = 0.8 x10^6/kg already infused to this patient under SLE-UC" in words
    assert "Write the reason for the repeat course" in words
    by_api = api.post(f"/api/v1/patients/{pid}/prescriptions", headers=headers, json=dry_run_body(api, headers, pid))
    assert by_api.status_code == 422 and "repeat_course_reason" in by_api.get_json()["errors"]
    assert [p.status for p in _prescriptions(app, pid)] == ["stopped"]

    signed = clinician.post(f"/patients/{pid}/prescriptions", data={
        **hidden, "repeat_course_reason": "pump failure after the first bag; decided with the investigator",
        "password": PASSWORD})
    assert signed.status_code == 302, signed.get_data(as_text=True)
    db_session.rollback()
    again = db_session.scalar(select(Prescription).where(Prescription.patient_id == pid,
                                                         Prescription.status == "active"))
    assert again.delivered_cells == 125_000_000  # not reduced: the clinician's written decision
    repeat = json.loads(again.calculation_json)["repeat_course"]  # covered by the signature (signed content)
    assert repeat["reason"] == "repeat course: pump failure after the first bag; decided with the investigator"
    assert repeat["already_infused_cells"] == "50000000" and repeat["already_infused_bag_ids"] == [given_bag]
    reasons = set(db_session.scalars(select(AuditEvent.reason).where(
        AuditEvent.entity_type == "prescription", AuditEvent.entity_id == str(again.id))))
    assert any(r and "repeat course: pump failure" in r for r in reasons), reasons
    again_id = again.id
    db_session.rollback()
    sheet = clinician.get(f"/patients/prescriptions/{again_id}").get_data(as_text=True)
    assert "Repeat course" in sheet and "repeat course: pump failure" in sheet


# 4. SLE-UC: the escalation decision waits 10 days after the fifth patient's first infusion ---------------------

def test_the_sle_escalation_decision_waits_10_days_after_the_fifth_patients_first_infusion(
        app, users, db_session, client_as):
    pids = five_infused(db_session)
    backdate_infusions(db_session, days=10, patient_ids=pids[:4])  # patients 1-4 observed for 10 days
    backdate_infusions(db_session, days=9, patient_ids=pids[4:])  # patient 5 infused 9 days ago
    db_session.commit()

    clinician = client_as("clinician")
    refused = decide_escalation(clinician, site_today())
    body = refused.get_data(as_text=True)
    assert refused.status_code == 409, body
    assert ("Only 4 of the 5 patients of stage &#39;initial&#39; have been infused and observed for 10 days after "
            "their first infusion") in body
    fifth = db_session.scalar(select(Infusion.started_at).where(Infusion.patient_id == pids[4]))
    db_session.rollback()
    assert ("1 more is infused and still within the 10 days of observation after their first infusion: possible "
            f"from {fifth + timedelta(days=10):%Y-%m-%d %H:%M} UTC") in body
    cohorts = clinician.get(f"/patients/cohorts/{SLE}").get_data(as_text=True)
    assert 'id="decision-wait"' in cohorts and "possible from" in cohorts
    assert db_session.scalar(select(EscalationDecisionRecord)) is None
    db_session.rollback()

    backdate_infusions(db_session, days=1, patient_ids=pids[4:])  # now 10 days: the decision can be signed
    db_session.commit()
    accepted = decide_escalation(clinician, site_today())
    assert accepted.status_code == 302, accepted.get_data(as_text=True)
    assert 'id="decision-wait"' not in clinician.get(f"/patients/cohorts/{SLE}").get_data(as_text=True)


def test_a_tick_on_an_ordinary_weight_is_kept_in_the_trail_as_the_page_says(app, users, db_session, client_as):
    """Read-through of review 4: "checked by you, as recorded in the audit trail" was said for any tick, and the
    tick was recorded only when the weight was far from the last one."""
    from sqlalchemy import select

    from mscbatch.audit.models import AuditEvent
    from mscbatch.patients.models import WeightMeasurement
    from mscbatch.site import site_today
    from tests.integration.patient_factories import patient, user

    pid = patient(db_session, user(db_session, "clinician")).id  # 62.5 kg
    db_session.commit()
    posted = client_as("clinician").post(f"/patients/{pid}/weights", follow_redirects=True, data={
        "weight_kg": "63", "measured_on": site_today().isoformat(), "weight_confirmed": "y"})
    assert "checked by you, as recorded in the audit trail" in posted.get_data(as_text=True)
    db_session.rollback()
    latest = db_session.scalar(select(WeightMeasurement.id).where(WeightMeasurement.patient_id == pid)
                               .order_by(WeightMeasurement.id.desc()).limit(1))
    reasons = list(db_session.scalars(select(AuditEvent.reason).where(
        AuditEvent.entity_type == "patient_weight", AuditEvent.entity_id == str(latest))))
    assert reasons and all(r == "I have checked this weight (confirmed by the clinician)" for r in reasons), reasons
