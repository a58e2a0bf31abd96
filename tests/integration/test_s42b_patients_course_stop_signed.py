"""S42b: stopping a course (cancelling a prescription, closing a completed course) is a clinician's e-signature, as
signing the prescription is (21 CFR 11.50, 11.200): the password re-entered, the meaning "Course stopped: <reason>"
covering the status, who, when and why. A wrong password is refused (401 on the password), counted towards the
lockout, and stops nothing; a missing one is asked for (422 naming the field). The page and the API alike."""
from __future__ import annotations

import re
from html import unescape

from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.auth.models import User
from mscbatch.errors import AuthenticationFailed, RecordLocked
from mscbatch.lots.models import Bag
from mscbatch.patients import prescriptions
from mscbatch.patients.models import CANCELLED, COURSE_STOPPED, Allocation, Prescription
from mscbatch.signatures.models import Signature
from mscbatch.signatures.services import verify
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_s38_patients_dose_courses import _give


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", page)))


def _course_with_one_bag_given(session) -> tuple[int, list[int]]:  # type: ignore[no-untyped-def]
    """62.5 kg at 2 x10^6/kg: three bags (25, 25, 12.5 mL); the first given. Returns the prescription and the bags
    not given."""
    tech, clin = user(session, "technician"), user(session, "clinician")
    lot_with_bags(session, tech, donor(session, tech), bags=3, cells=50_000_000)
    pid = patient(session, clin).id
    rx = prescriptions.prescribe(session, clin, PASSWORD, pid)
    bag_ids = [int(d["bag_id"]) for d in rx.calculation["draws"]]
    _give(session, pid, bag_ids[0], rx.calculation["draws"][0]["volume_ml"])
    session.commit()
    return rx.id, bag_ids[1:]


def _state(session, rx_id: int, bag_ids: list[int]) -> tuple[str, list[str], int]:  # type: ignore[no-untyped-def]
    session.expire_all()
    rx = session.get(Prescription, rx_id)
    bags = [session.get(Bag, b).status for b in bag_ids]
    active = session.scalar(select(func.count()).select_from(Allocation).where(
        Allocation.prescription_id == rx_id, Allocation.active_bag_id.is_not(None)))
    status = rx.status
    session.rollback()  # SQLite: the client's next request must be able to write
    return status, bags, active


def _failed(session) -> int:  # type: ignore[no-untyped-def]
    session.expire_all()
    failed = session.scalar(select(User.failed_logins).where(User.username == "clinician"))
    session.rollback()
    return failed


def _refusals(session) -> int:  # type: ignore[no-untyped-def]
    count = session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "signature_refused", AuditEvent.entity_type == "prescription"))
    session.rollback()
    return count


def _stop_signatures(session, rx_id: int) -> list[Signature]:  # type: ignore[no-untyped-def]
    return list(session.scalars(select(Signature).where(
        Signature.entity_type == "prescription", Signature.entity_id == str(rx_id),
        Signature.meaning.like("Course stopped%"))))


def test_s42b_stop_on_the_page_is_signed_with_the_password(app, users, db_session, client_as):
    rx_id, not_given = _course_with_one_bag_given(db_session)
    clinician = client_as("clinician")
    url = f"/patients/prescriptions/{rx_id}/cancel"
    page = clinician.get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True)
    assert 'name="password"' in page and "electronic signature: cancels the prescription or stops the course" in page

    missing = clinician.post(url, data={"reason": "grade 3 reaction"})
    assert missing.status_code == 422
    assert "Re-enter your password to sign." in _text(missing.get_data(as_text=True))
    assert _state(db_session, rx_id, not_given) == ("active", ["allocated", "allocated"], 3)

    before, refusals = _failed(db_session), _refusals(db_session)
    wrong = clinician.post(url, data={"reason": "grade 3 reaction", "password": "not-my-password"})
    assert wrong.status_code == 401
    body = wrong.get_data(as_text=True)
    assert re.search(r'id="password"[^>]*aria-invalid="true"|aria-invalid="true"[^>]*id="password"', body), body
    assert "Signature refused: wrong password. Nothing was signed." in _text(body)
    assert _state(db_session, rx_id, not_given) == ("active", ["allocated", "allocated"], 3)
    assert _failed(db_session) == before + 1 and _refusals(db_session) == refusals + 1
    assert _stop_signatures(db_session, rx_id) == []
    db_session.rollback()

    no_reason = clinician.post(url, data={"reason": " ", "password": PASSWORD})
    assert no_reason.status_code == 422 and _state(db_session, rx_id, not_given)[0] == "active"

    done = clinician.post(url, data={"reason": "grade 3 reaction", "password": PASSWORD}, follow_redirects=True)
    assert done.status_code == 200
    shown = _text(done.get_data(as_text=True))
    assert 'Signed: Clinician, ' in shown and f'"{COURSE_STOPPED}"' in shown, shown
    assert "Course stopped" in shown and ": grade 3 reaction" in shown
    assert _state(db_session, rx_id, not_given) == ("stopped", ["stored", "stored"], 1)
    assert _failed(db_session) == 0  # a right password ends the run of failures
    [signature] = _stop_signatures(db_session, rx_id)
    rx = db_session.get(Prescription, rx_id)
    assert signature.meaning == COURSE_STOPPED
    assert signature.signer_id == user(db_session, "clinician").id
    assert verify(db_session, signature, rx).valid
    # the signature covers who, when and why: the reason cannot be altered afterwards
    rx.cancel_reason = "something else"
    assert not verify(db_session, signature, rx).valid
    try:
        db_session.flush()
    except RecordLocked:
        db_session.rollback()
    else:
        raise AssertionError("a stopped prescription's reason was changed after its signature")


def test_s42b_stop_through_the_api_takes_the_password(app, users, db_session):
    rx_id, not_given = _course_with_one_bag_given(db_session)
    api = app.test_client()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    url = f"/api/v1/patients/prescriptions/{rx_id}/cancel"

    missing = api.post(url, headers=headers, json={"reason": "grade 3 reaction"})
    assert missing.status_code == 422 and "password" in missing.get_json()["errors"], missing.get_json()
    empty = api.post(url, headers=headers, json={"reason": "grade 3 reaction", "password": ""})
    assert empty.status_code == 422 and "password" in empty.get_json()["errors"], empty.get_json()
    no_reason = api.post(url, headers=headers, json={"reason": "", "password": PASSWORD})
    assert no_reason.status_code == 422 and "reason" in no_reason.get_json()["errors"], no_reason.get_json()
    assert _state(db_session, rx_id, not_given) == ("active", ["allocated", "allocated"], 3)

    before = _failed(db_session)
    wrong = api.post(url, headers=headers, json={"reason": "grade 3 reaction", "password": "nope-nope"})
    assert wrong.status_code == 401, wrong.get_json()
    assert "wrong password" in wrong.get_json()["detail"]
    assert _state(db_session, rx_id, not_given) == ("active", ["allocated", "allocated"], 3)
    assert _failed(db_session) == before + 1

    done = api.post(url, headers=headers, json={"reason": "grade 3 reaction", "password": PASSWORD})
    assert done.status_code == 200, done.get_json()
    body = done.get_json()
    assert body["status"] == "stopped" and body["cancel_reason"] == "grade 3 reaction" and "password" not in body
    assert _state(db_session, rx_id, not_given) == ("stopped", ["stored", "stored"], 1)
    assert [s.meaning for s in _stop_signatures(db_session, rx_id)] == [COURSE_STOPPED]


def test_s42b_cancel_before_any_bag_is_signed_too_and_its_long_reason_is_covered(app, users, db_session):
    tech, clin = user(db_session, "technician"), user(db_session, "clinician")
    lot_with_bags(db_session, tech, donor(db_session, tech), bags=3, cells=50_000_000)
    rx = prescriptions.prescribe(db_session, clin, PASSWORD, patient(db_session, clin).id)
    try:
        prescriptions.cancel(db_session, clin, rx.id, "postponed", password="wrong-password")
    except AuthenticationFailed:
        pass
    else:
        raise AssertionError("cancelled with a wrong password")
    db_session.expire_all()
    assert db_session.get(Prescription, rx.id).status == "active"
    reason = "infusion postponed: " + "fever and chills, " * 20
    prescriptions.cancel(db_session, user(db_session, "clinician"), rx.id, reason, password=PASSWORD)
    [signature] = db_session.scalars(select(Signature).where(
        Signature.entity_type == "prescription", Signature.entity_id == str(rx.id),
        Signature.meaning == CANCELLED))
    assert db_session.get(Prescription, rx.id).cancel_reason == reason.strip()  # kept whole, and signed
    assert verify(db_session, signature, db_session.get(Prescription, rx.id)).valid
