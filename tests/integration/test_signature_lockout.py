"""Wrong passwords at an electronic signature count towards the account lockout, as at sign-in (review finding:
twelve wrong release-signature passwords left the account open and the thirteenth, right, one signed)."""
from __future__ import annotations

from mscbatch.auth.models import User
from mscbatch.lots.models import Lot
from mscbatch.release.demo import enter_panel
from tests.conftest import PASSWORD
from tests.integration.test_release_support import seed_quarantine_lot, user
from tests.integration.test_s37_release_seen import seen


def _qa(app) -> User:  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    try:
        row = user(session, "qa")
        session.expunge(row)
        return row
    finally:
        session.close()


def _lot_ready_for_release(app, monkeypatch) -> int:  # type: ignore[no-untyped-def]
    """A quarantined lot with every release result passing: QA's signature is all it waits for."""
    lot_id = seed_quarantine_lot(app, monkeypatch)
    session = app.extensions["mscbatch.db"].new_session()
    try:
        enter_panel(session, user(session, "technician"), lot_id)
    finally:
        session.close()
    return lot_id


def test_five_wrong_signature_passwords_lock_the_account_and_nothing_is_released(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id = _lot_ready_for_release(app, monkeypatch)
    qa = client_as("qa")
    for attempt in range(1, 5):
        answer = qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id), "action": "release", "release-password": "guess"})
        assert answer.status_code == 401
        assert "Signature refused: wrong password. Nothing was signed." in answer.get_data(as_text=True)
        assert _qa(app).failed_logins == attempt and _qa(app).locked_out_at is None
    fifth = qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id), "action": "release", "release-password": "guess"})
    assert fifth.status_code == 401
    assert "The account is now locked after too many wrong passwords" in fifth.get_data(as_text=True)
    assert _qa(app).locked_out_at is not None
    qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id), "action": "release", "release-password": PASSWORD})
    session = app.extensions["mscbatch.db"].new_session()
    assert session.get(Lot, lot_id).status == "quarantine"
    session.close()


def test_a_right_signature_password_ends_the_run_of_failures(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id = _lot_ready_for_release(app, monkeypatch)
    qa = client_as("qa")
    for _ in range(3):
        qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id), "action": "release", "release-password": "guess"})
    assert _qa(app).failed_logins == 3
    answer = qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id), "action": "release", "release-password": PASSWORD})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    assert _qa(app).failed_logins == 0


def test_a_refused_release_signature_is_audited_against_the_lot(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    """The disposition it would have created has no id: the refusal is filed under the lot, where QA looks."""
    from sqlalchemy import select

    from mscbatch.audit.models import AuditEvent

    lot_id = _lot_ready_for_release(app, monkeypatch)
    client_as("qa").post(f"/release/lots/{lot_id}/release", data={**seen(client_as("qa"), lot_id), "action": "release", "release-password": "guess"})
    session = app.extensions["mscbatch.db"].new_session()
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "signature_refused")).one()
    assert (event.entity_type, event.entity_id) == ("lot", str(lot_id))
    assert event.new_value == "Released for clinical use"
    session.close()


def test_a_refused_prescription_signature_is_audited_against_the_patient_not_a_rolled_back_id(app, users):  # type: ignore[no-untyped-def]
    """The prescription is flushed (it has an id) before it is signed; with a wrong password it is rolled back and
    its id is reused by the next prescription, so the refusal must not be filed under that id."""
    from sqlalchemy import select

    from mscbatch.audit.models import AuditEvent
    from mscbatch.errors import AuthenticationFailed
    from mscbatch.patients import prescriptions
    from tests.integration.patient_factories import donor, lot_with_bags, patient

    session = app.extensions["mscbatch.db"].new_session()
    tech, clinician = user(session, "technician"), user(session, "clinician")
    lot_with_bags(session, tech, donor(session, tech))
    pid = patient(session, clinician).id
    try:
        prescriptions.prescribe(session, clinician, "guess", pid)
    except AuthenticationFailed:
        pass
    else:
        raise AssertionError("a wrong password signed a prescription")
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "signature_refused")).one()
    assert (event.entity_type, event.entity_id) == ("patient", str(pid))
    session.close()
