"""A refused infusion start is shown again by GET (post-redirect-get), but Flask's session cookie is signed, not
encrypted: it must hold only a reference to the refusal (its audit seq), never the wristband scanned or the words
naming the patients; the page reads them back from the server (review 5)."""
from __future__ import annotations

import base64
import html
import zlib

import pytest

from tests.integration.patient_factories import patient, user
from tests.integration.test_custody_support import checked_and_confirmed, prescribed_bag

pytestmark = pytest.mark.usefixtures("users")


def _cookie_text(client) -> str:  # type: ignore[no-untyped-def]
    cookie = client.get_cookie("mscbatch_session") or client.get_cookie("session")
    payload = cookie.value.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return (zlib.decompress(raw) if cookie.value.startswith(".") else raw).decode()


def test_a_refused_start_keeps_no_wristband_in_the_cookie_and_still_shows_the_refusal(app, db_session, client_as):  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session)
    other = patient(db_session, user(db_session, "clinician"), code="SLE-UC-881")
    checked_and_confirmed(db_session, ward)
    wristband = other.wristband_id
    db_session.rollback()
    nurse = client_as("nurse")
    answer = nurse.post(f"/ward/bags/{ward.bag_id}/infusion", data={"wristband": wristband, "bag": ward.token})
    assert answer.status_code == 303
    text = _cookie_text(nurse)
    assert wristband not in text and "SLE-UC-881" not in text and "custody_start_refused" in text
    page = html.unescape(nurse.get(answer.headers["Location"]).get_data(as_text=True))
    assert "SLE-UC-881" in page and "Do not start" in page
    # another nurse's session has no refusal of its own: the normal ward page, not this one's words
    again = client_as("nurse").get(f"/ward/bags/{ward.bag_id}/infusion")
    assert again.status_code == 302 and "SLE-UC-881" not in again.get_data(as_text=True)
