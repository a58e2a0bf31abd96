"""An eligible check recorded under an earlier version of the protocol (1.2, before plausible_weight_kg came in
1.3) is not offered for signing: the page says under which version it was recorded and which is in force, and
asks for a new check; a signature sent anyway is refused (409) naming both, nothing signed (session 42 review: the
page offered the form, and only the password typed was answered "The protocol file changed since this check")."""
from __future__ import annotations

import html

from sqlalchemy import text

from mscbatch.patients.models import Patient
from tests.conftest import PASSWORD
from tests.integration.patient_factories import SLE_OK
from tests.integration.test_s35_enrolment_round_trip import _checks, _new_patient


def _as_recorded_under_1_2(app, check_id: int) -> None:  # type: ignore[no-untyped-def]
    engine = app.extensions["mscbatch.db"].engine
    with engine.begin() as connection:
        connection.execute(text("UPDATE patient_enrolment_check SET protocol_version = '1.2', protocol_sha256 = :sha "
                                "WHERE id = :id"), {"sha": "0" * 64, "id": check_id})


def test_a_check_under_an_earlier_protocol_version_is_not_signed(app, users, client_as):  # type: ignore[no-untyped-def]
    pid = _new_patient(app)
    client = client_as("clinician")
    assert client.post(f"/patients/{pid}/enrolment", data=SLE_OK).status_code == 302
    check = _checks(app, pid)[-1]
    assert check.status == "eligible"
    assert "Sign the enrolment" in client.get(f"/patients/{pid}/enrolment").get_data(as_text=True)

    _as_recorded_under_1_2(app, check.id)
    page = html.unescape(client.get(f"/patients/{pid}/enrolment").get_data(as_text=True))
    assert ("This check was recorded under protocol SLE-UC version 1.2; the protocol is now version 1.3. Press "
            "“Check the criteria” again (above), then sign the new check.") in page, page
    assert "Sign the enrolment" not in page

    refused = client.post(f"/patients/{pid}/enrol",
                          data={"check_id": str(check.id), "password": PASSWORD})
    assert refused.status_code == 409, refused.get_data(as_text=True)[:500]
    assert ("This check was recorded under protocol SLE-UC version 1.2; the protocol is now version 1.3: check the "
            "criteria again, then sign the new check. Nothing was signed.") in html.unescape(
        refused.get_data(as_text=True))
    session = app.extensions["mscbatch.db"].new_session()
    try:
        assert session.get(Patient, pid).status != "enrolled"
    finally:
        session.close()
    assert _checks(app, pid)[-1].locked_at is None

    # checked again, under the version in force, it is signed
    assert client.post(f"/patients/{pid}/enrolment", data=SLE_OK).status_code == 302
    new = _checks(app, pid)[-1]
    signed = client.post(f"/patients/{pid}/enrol", data={"check_id": str(new.id), "password": PASSWORD})
    assert signed.status_code == 302, signed.get_data(as_text=True)[:500]
