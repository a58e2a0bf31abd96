"""Two places where the page and the rest of the product said different things.

1. Cancelling a prescription or stopping its course: the reason took 500 characters on the page but 2000 through
   the API (POST /api/v1/patients/prescriptions/<id>/cancel), as every other signed text. A reason the API takes
   (1 500 characters) was refused on the page ("Field cannot be longer than 500 characters."). The page now takes
   2000, the textarea says so (maxlength), and beyond it the refusal names the reason and the limit, as the API's.
2. An eligible check recorded under an earlier protocol version: its words were written once in the enrolment
   page's template and once in enrolment.py. One function writes them now; the page shows what it returns, and a
   signature sent anyway is refused naming the same versions. A check whose protocol file changed under the same
   version read "the protocol is now version 1.3 (its file changed)" on the page and "the protocol file changed
   since" in the refusal: one wording now."""
from __future__ import annotations

import html

from sqlalchemy import text

from mscbatch.patients import enrolment, prescriptions
from mscbatch.patients.models import Patient, Prescription
from mscbatch.patients.queries import protocol_of
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import SLE_OK, donor, lot_with_bags, patient, user
from tests.integration.test_s35_enrolment_round_trip import _checks, _new_patient
from tests.integration.test_s35_recall_qa_walk import assert_refused_beside, field_html


def _prescription(session) -> int:  # type: ignore[no-untyped-def]
    """A signed prescription, no bag given yet: cancelling it cancels it."""
    tech, clinician = user(session, "technician"), user(session, "clinician")
    lot_with_bags(session, tech, donor(session, tech), bags=3, cells=50_000_000)
    rx = prescriptions.prescribe(session, clinician, PASSWORD, patient(session, clinician).id)
    session.commit()
    return rx.id


def _status(session, rx_id: int) -> tuple[str, str | None]:  # type: ignore[no-untyped-def]
    session.expire_all()
    rx = session.get(Prescription, rx_id)
    shown = rx.status, rx.cancel_reason
    session.rollback()  # SQLite: the client's next request must be able to write
    return shown


# ---- 1. the reason for cancelling: 2000 characters on the page, as through the API ----------------------------------

def test_the_page_takes_a_1500_character_reason_as_the_api_does(app, users, db_session, client_as):
    rx_id = _prescription(db_session)
    clinician = client_as("clinician")
    page = clinician.get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True)
    assert 'maxlength="2000"' in field_html(page, "reason")

    reason = ("The consultant changed the plan after the review. " * 30)[:1499] + "."
    assert len(reason.strip()) == 1500
    done = clinician.post(f"/patients/prescriptions/{rx_id}/cancel", data={"reason": reason, "password": PASSWORD})
    assert done.status_code == 302, html.unescape(done.get_data(as_text=True))[:2000]
    assert _status(db_session, rx_id) == ("cancelled", reason)


def test_the_page_refuses_2001_characters_naming_the_reason_and_the_limit(app, users, db_session, client_as):
    rx_id = _prescription(db_session)
    clinician = client_as("clinician")
    refused = clinician.post(f"/patients/prescriptions/{rx_id}/cancel",
                             data={"reason": "x" * 2001, "password": PASSWORD})
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert_refused_beside(page, "reason", "The reason has at most 2000 characters.")
    assert _status(db_session, rx_id) == ("active", None)

    # the API's words for the same refusal
    api = app.test_client()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    through_api = api.post(f"/api/v1/patients/prescriptions/{rx_id}/cancel", headers=headers,
                           json={"reason": "x" * 2001, "password": PASSWORD})
    assert through_api.status_code == 422 and "reason" in through_api.get_json()["errors"], through_api.get_json()
    assert _status(db_session, rx_id) == ("active", None)

    # 2000 exactly is taken
    done = clinician.post(f"/patients/prescriptions/{rx_id}/cancel", data={"reason": "y" * 2000, "password": PASSWORD})
    assert done.status_code == 302, html.unescape(done.get_data(as_text=True))[:2000]
    assert _status(db_session, rx_id) == ("cancelled", "y" * 2000)


# ---- 2. a check under an earlier protocol: one function's words on the page and in the refusal ----------------------

def _recorded_under(app, check_id: int, version: str) -> None:  # type: ignore[no-untyped-def]
    engine = app.extensions["mscbatch.db"].engine
    with engine.begin() as connection:
        connection.execute(text("UPDATE patient_enrolment_check SET protocol_version = :version, "
                                "protocol_sha256 = :sha WHERE id = :id"),
                           {"version": version, "sha": "0" * 64, "id": check_id})


def _words(app, pid: int, *, refused: bool = False) -> str | None:  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    try:
        check = _checks(app, pid)[-1]
        return enrolment.protocol_changed_words(check, protocol_of(session.get(Patient, pid)), refused=refused)
    finally:
        session.close()


def test_the_page_and_the_refusal_say_the_same_of_a_protocol_file_changed_under_the_same_version(
        app, users, client_as):  # type: ignore[no-untyped-def]
    pid = _new_patient(app)
    client = client_as("clinician")
    assert client.post(f"/patients/{pid}/enrolment", data=SLE_OK).status_code == 302
    check = _checks(app, pid)[-1]
    assert _words(app, pid) is None  # judged with the file in force: nothing to say, the form is offered
    assert "Sign the enrolment" in client.get(f"/patients/{pid}/enrolment").get_data(as_text=True)

    _recorded_under(app, check.id, check.protocol_version)  # the same version, another file
    shown = _words(app, pid)
    assert shown == (f"This check was recorded under protocol SLE-UC version {check.protocol_version}; the protocol "
                     f"is still version {check.protocol_version} but its file changed since. Press “Check the "
                     "criteria” again (above), then sign the new check.")
    page = html.unescape(client.get(f"/patients/{pid}/enrolment").get_data(as_text=True))
    assert f'<p class="flag" id="check-protocol-changed">{shown}</p>' in page, page
    assert "Sign the enrolment" not in page

    refused = client.post(f"/patients/{pid}/enrol", data={"check_id": str(check.id), "password": PASSWORD})
    assert refused.status_code == 409
    said = _words(app, pid, refused=True)
    assert said == (f"This check was recorded under protocol SLE-UC version {check.protocol_version}; the protocol "
                    f"is still version {check.protocol_version} but its file changed since: check the criteria "
                    "again, then sign the new check. Nothing was signed.")
    assert said in html.unescape(refused.get_data(as_text=True))
    assert _checks(app, pid)[-1].locked_at is None


def test_under_an_earlier_version_the_page_shows_the_functions_words(app, users, client_as):  # type: ignore[no-untyped-def]
    pid = _new_patient(app)
    client = client_as("clinician")
    assert client.post(f"/patients/{pid}/enrolment", data=SLE_OK).status_code == 302
    _recorded_under(app, _checks(app, pid)[-1].id, "1.2")
    shown = _words(app, pid)
    assert shown and "version 1.2; the protocol is now version 1.3" in shown
    page = html.unescape(client.get(f"/patients/{pid}/enrolment").get_data(as_text=True))
    assert f'<p class="flag" id="check-protocol-changed">{shown}</p>' in page
