"""Review 3 (ward), patient safety: a course is stopped once its first bag is given, and a patient is withdrawn
from the trial (signed); the bedside check says STOP for any patient who is not enrolled.

Before: cancel answered 409 "bag is infused, a final state" once bag 1 was given, so bags 2-3 stayed allocated and
MATCHED at the next shift's bedside check, even after a grade 4 reaction; nothing set a patient "withdrawn", and
the bedside check never read the patient's status."""
from __future__ import annotations

from sqlalchemy import select

from mscbatch.audit.context import use_case
from mscbatch.core.identifiers import din_shown
from mscbatch.custody import bedside, handover, infusions
from mscbatch.custody.checks import stop_running
from mscbatch.errors import Conflict
from mscbatch.lots.models import Bag
from mscbatch.patients import prescriptions
from mscbatch.patients.models import Allocation, Patient, PatientWithdrawal, Prescription
from mscbatch.signatures.models import Signature
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag, token_of


def _given_with_grade_4(db_session):  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session)  # 3 bags allocated; the first carried to the ward and thawed
    checked_and_confirmed(db_session, ward)
    nurse = user(db_session, "nurse")
    infusion = infusions.start_infusion(db_session, nurse, ward.bag_id, wristband=ward.wristband, bag_scan=ward.token, label_key=KEY)
    infusions.record_reaction(db_session, nurse, infusion.id, infusions.ReactionDetails(
        "Anaphylaxis", 4, "stopped; the clinician stops the course"))
    return ward, infusion.id


def _rx_id(db_session, patient_id: int) -> int:  # type: ignore[no-untyped-def]
    return db_session.scalar(select(Prescription.id).where(Prescription.patient_id == patient_id))


def test_a_course_is_stopped_after_its_first_bag_and_the_bags_not_given_no_longer_match(app, users, db_session,
                                                                                        client_as):
    ward, infusion_id = _given_with_grade_4(db_session)
    infusions.end_infusion(db_session, user(db_session, "nurse"), infusion_id, volume_ml="3",
                           reason="stopped for anaphylaxis")
    rx_id = _rx_id(db_session, ward.patient_id)
    db_session.rollback()

    clinician = client_as("clinician")
    no_reason = clinician.post(f"/patients/prescriptions/{rx_id}/cancel", data={"password": PASSWORD, "reason": ""})
    assert no_reason.status_code == 422
    stopped = clinician.post(f"/patients/prescriptions/{rx_id}/cancel",
                             data={"password": PASSWORD, "reason": "grade 4 anaphylaxis with bag 1: no further bag"})
    assert stopped.status_code == 302
    page = clinician.get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True)
    assert "Course stopped" in page and "grade 4 anaphylaxis with bag 1" in page
    assert "the 1 bag already given" in page and "stays on the patient" in page  # the flash

    db_session.rollback()
    rx = db_session.get(Prescription, rx_id)
    assert rx.status == "stopped" and rx.cancel_reason == "grade 4 anaphylaxis with bag 1: no further bag"
    rows = {a.bag_id: a for a in db_session.scalars(select(Allocation).where(Allocation.prescription_id == rx_id))}
    assert rows[ward.bag_id].active and db_session.get(Bag, ward.bag_id).status == "infused"  # the record kept
    for bag_id in ward.other_bag_ids:
        assert not rows[bag_id].active and db_session.get(Bag, bag_id).status == "stored"
    bag2 = db_session.get(Bag, ward.other_bag_ids[0])
    result = bedside.bedside_check(db_session, user(db_session, "nurse"), wristband=ward.wristband,
                                   bag_scan=token_of(bag2), label_key=KEY)
    assert not result.matches and "not_prescribed" in {f.code for f in result.failures}
    db_session.rollback()
    # the infusion page still judges the volume given against what was prescribed from the bag
    infusion_page = client_as("nurse").get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    assert 'id="prescribed-volume"' in infusion_page and "LESS THAN PRESCRIBED" in infusion_page


def test_a_course_with_a_bag_on_the_ward_is_stopped_only_once_the_bag_is_back_and_says_so(app, users, db_session,
                                                                                          client_as):
    ward, infusion_id = _given_with_grade_4(db_session)
    tech, nurse = user(db_session, "technician"), user(db_session, "nurse")
    bag2 = db_session.get(Bag, ward.other_bag_ids[0])
    handover.dispatch(db_session, tech, bag2.id, courier="C", shipper="S", temperature_logger_id="T")
    handover.receive(db_session, nurse, bag2.id)
    handover.thaw(db_session, nurse, bag2.id)
    rx_id = _rx_id(db_session, ward.patient_id)
    din, token2 = din_shown(bag2), token_of(bag2)  # named as its label shows it, K included
    db_session.rollback()

    refused = client_as("clinician").post(f"/patients/prescriptions/{rx_id}/cancel", data={"password": PASSWORD, "reason": "grade 4"})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 409 and f"bag {din} is THAWED on the ward" in html and "discards it" in html
    db_session.rollback()
    assert db_session.get(Prescription, rx_id).status == "active"  # nothing changed
    assert db_session.get(Bag, ward.other_bag_ids[1]).status == "allocated"
    db_session.rollback()

    discarded = client_as("nurse").post("/ward/event", data={"bag": token2, "action": "discard",
                                                             "reason": "course stopped: grade 4 anaphylaxis"})
    assert discarded.status_code == 302
    assert client_as("clinician").post(f"/patients/prescriptions/{rx_id}/cancel",
                                       data={"password": PASSWORD, "reason": "grade 4"}).status_code == 302
    db_session.rollback()
    assert db_session.get(Prescription, rx_id).status == "stopped"
    assert db_session.get(Bag, ward.other_bag_ids[1]).status == "stored"


def test_the_bedside_check_stops_a_patient_who_is_not_enrolled(app, users, db_session):
    """Set as a data correction would (the reviewer's reproduction): withdrawn, or never enrolled."""
    for status, code, words in (("withdrawn", "patient_withdrawn", "WITHDRAWN FROM THE TRIAL"),
                                ("registered", "patient_not_enrolled", "NOT ENROLLED")):
        ward = prescribed_bag(db_session)
        with use_case(db_session, user(db_session, "clinician"), f"test: status {status}"):
            db_session.get(Patient, ward.patient_id).status = status
        result = bedside.bedside_check(db_session, user(db_session, "nurse"), wristband=ward.wristband,
                                       bag_scan=ward.token, label_key=KEY)
        assert not result.matches
        finding = next(f for f in result.failures if f.code == code)
        assert words in finding.message and "Do not give this patient any trial cells" in finding.message


def test_a_signed_withdrawal_stops_the_course_and_every_bag_at_the_bedside(app, users, db_session, client_as):
    ward = prescribed_bag(db_session)  # bag 1 thawed on the ward; bags 2 and 3 allocated in the unit
    rx_id = _rx_id(db_session, ward.patient_id)
    din = din_shown(db_session.get(Bag, ward.bag_id))
    db_session.rollback()
    clinician = client_as("clinician")

    wrong = clinician.post(f"/patients/{ward.patient_id}/withdrawal",
                           data={"reason": "consent withdrawn at 02:40", "password": "wrong-password"})
    assert wrong.status_code == 401
    no_reason = clinician.post(f"/patients/{ward.patient_id}/withdrawal", data={"reason": "", "password": PASSWORD})
    assert no_reason.status_code == 422
    db_session.rollback()
    assert db_session.get(Patient, ward.patient_id).status == "enrolled"
    db_session.rollback()

    signed = clinician.post(f"/patients/{ward.patient_id}/withdrawal",
                            data={"reason": "consent withdrawn by the patient at 02:40", "password": PASSWORD})
    assert signed.status_code == 302
    page = clinician.get(f"/patients/{ward.patient_id}").get_data(as_text=True)
    assert "WITHDRAWN FROM THE TRIAL" in page and "consent withdrawn by the patient at 02:40" in page
    assert f"Bags already sent to the ward: {din}" in page  # the flash: the ward must bring it back
    assert "Signed: Clinician" in page and "Patient withdrawn from the trial" in page
    assert "Calculate the dose" not in page and "Withdraw the patient from the trial" not in page

    db_session.rollback()
    patient = db_session.get(Patient, ward.patient_id)
    assert patient.status == "withdrawn"
    record = db_session.scalar(select(PatientWithdrawal).where(PatientWithdrawal.patient_id == patient.id))
    assert record.locked_at is not None and record.status_before == "enrolled"
    assert db_session.scalar(select(Signature).where(Signature.entity_type == "patient_withdrawal")) is not None
    assert db_session.get(Prescription, rx_id).status == "cancelled"  # nothing was given
    for bag_id in ward.other_bag_ids:
        assert db_session.get(Bag, bag_id).status == "stored"
    assert db_session.get(Bag, ward.bag_id).status == "thawed"  # where it is: the ward discards it
    result = bedside.bedside_check(db_session, user(db_session, "nurse"), wristband=ward.wristband,
                                   bag_scan=ward.token, label_key=KEY)
    assert not result.matches and result.failures[0].code == "patient_withdrawn"
    db_session.rollback()

    again = clinician.post(f"/patients/{ward.patient_id}/withdrawal",
                           data={"reason": "again, to be sure", "password": PASSWORD})
    assert again.status_code == 409
    try:
        prescriptions.prescribe(db_session, user(db_session, "clinician"), PASSWORD, ward.patient_id)
    except Conflict as refused:
        assert "withdrawn from the trial" in refused.message
    else:
        raise AssertionError("a withdrawn patient was prescribed")
    db_session.rollback()
    dose = clinician.get(f"/patients/{ward.patient_id}/dose").get_data(as_text=True)
    assert "withdrawn from the trial" in dose


def test_a_withdrawal_during_an_infusion_says_stop_it_now(app, users, db_session):
    ward = prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    infusion = infusions.start_infusion(db_session, user(db_session, "nurse"), ward.bag_id, wristband=ward.wristband, bag_scan=ward.token,
                                        label_key=KEY)
    from mscbatch.patients.withdrawal import withdraw

    done = withdraw(db_session, user(db_session, "clinician"), PASSWORD, ward.patient_id,
                    reason="consent withdrawn during the infusion")
    assert done.stopped and not done.on_the_ward
    db_session.rollback()
    rx = db_session.get(Prescription, done.stopped[0])
    assert rx.status == "stopped"  # bag 1 given (its infusion running): kept; bags 2 and 3 back in stock
    bag = db_session.get(Bag, ward.bag_id)
    reasons = stop_running(db_session, infusion, bag, db_session.get(Patient, ward.patient_id), KEY)
    assert any("WITHDRAWN FROM THE TRIAL" in reason for reason in reasons)
