"""Session 37 review: the bedside check and the label check page agree on a bad label code, decided by its kind.

1. custody.checks.scan_reference told "not genuine" from "scan again" by the words of label_token's error: a code
   label_token says was altered (a signature longer than any label prints, a Unicode look-alike letter) was told
   "The bag scan was not read: scan the bag's label again" at the bedside while the label check page (/v/) called it
   NOT A VALID LABEL. Now each TokenInvalid has a kind (unreadable / forged) and the bedside decides by it: a code cut
   short is "not read", a whole code whose signature does not match or a code altered is "not genuine" and "Do not
   give it. Call the cell therapy unit.", on the web form and through POST /api/v1/custody/scan-verify.
2. The WEIGHT CHANGED sentence was built twice (the bedside check inline, WeightSincePrescription.changed_words for
   the dispatch and thaw refusals): the bedside check now says WeightSincePrescription's words, with its own "Do not
   give it." after them (the words themselves are pinned by test_bedside_weight_change / test_s37_dose_weight_changed).
"""
from __future__ import annotations

import html
from typing import Any

import pytest

from mscbatch.core.identifiers import make_din
from mscbatch.core.label_token import make_token
from mscbatch.custody.checks import CALL_UNIT, NOT_READ
from mscbatch.patients.queries import WeightSincePrescription, weight_since_prescription
from mscbatch.site import site_today
from tests.conftest import api_token_for
from tests.integration.test_custody_support import KEY, Ward, prescribed_bag, ward_bag

NOT_READ_WORDS = "The bag scan was not read: scan the bag's label again"
NOT_GENUINE = "The code on the bag label is not genuine ("


def _cut(token: str) -> str:
    """The code with the last character of its signature lost: a read cut short."""
    return token[:-1]


def _wrong_signature(token: str) -> str:
    """The whole code, the last character of its signature changed: a label not made by this unit."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def _too_long(token: str) -> str:
    """The whole code with one more signature character: no label prints it (altered)."""
    return token + "A"


def _look_alike() -> str:
    """A whole code signed with the unit's key, one letter of its signature replaced by a Unicode look-alike that
    upper-cases to it (dotless i for I, long s for S). Refused before any bag is looked up, so a code of any bag does
    (the seeded bag's own signature may hold neither letter)."""
    for sequence in range(1, 500):
        token = make_token(make_din("X9999", 26, sequence).typed, KEY)
        ref, signature = token.split(".")
        for letter, alike in (("I", "\u0131"), ("S", "\u017f")):
            if letter in signature:
                return f"{ref}.{signature.replace(letter, alike, 1)}"
    raise AssertionError("no signature with I or S")  # pragma: no cover


SCANS = {"cut short": (_cut, "not read"), "another signature": (_wrong_signature, "not genuine"),
         "a signature too long": (_too_long, "not genuine")}


def _web_failures(client: Any, ward: Ward, scan: str) -> tuple[str, str]:
    response = client.post("/ward/check", data={"wristband": ward.wristband, "bag": scan}, follow_redirects=True)
    assert response.status_code == 200, response.status_code
    page = html.unescape(response.get_data(as_text=True))
    assert ">STOP<" in page
    return page, page.split('class="failures"', 1)[1].split("</ul>", 1)[0]


def _api_bag_failure(app: Any, ward: Ward, scan: str) -> str:
    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}
    answer = app.test_client().post("/api/v1/custody/scan-verify", headers=headers,
                                    json={"wristband": ward.wristband, "bag": scan})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["result"] == "STOP" and [f["code"] for f in body["failures"]] == ["bag"], body
    return body["failures"][0]["message"]


def _says(words: str, expected: str) -> None:
    if expected == "not read":
        assert words.startswith(NOT_READ_WORDS) and "not genuine" not in words and CALL_UNIT not in words, words
    else:
        assert words.startswith(NOT_GENUINE) and words.endswith(CALL_UNIT) and NOT_READ_WORDS not in words, words


@pytest.mark.parametrize("how", sorted(SCANS))
def test_the_bedside_check_on_the_ward_page_says_not_read_or_not_genuine_by_the_codes_kind(
        app, users, db_session, client_as, how: str) -> None:
    ward = prescribed_bag(db_session)
    db_session.commit()  # SQLite: the test client writes next
    alter, expected = SCANS[how]
    page, failures = _web_failures(client_as("nurse"), ward, alter(ward.token))
    if expected == "not read":
        assert NOT_READ_WORDS in failures and "not genuine" not in page and CALL_UNIT not in page
        assert "The bag was not identified: scan its label again." in page
    else:
        assert NOT_GENUINE in failures and CALL_UNIT in failures and NOT_READ_WORDS not in page
        assert "scan its label again" not in page and "Do not give this bag." in page


@pytest.mark.parametrize("how", sorted(SCANS))
def test_the_scan_verify_api_says_not_read_or_not_genuine_by_the_codes_kind(app, users, db_session, how: str) -> None:
    ward = prescribed_bag(db_session)
    db_session.commit()
    alter, expected = SCANS[how]
    _says(_api_bag_failure(app, ward, alter(ward.token)), expected)


def test_a_code_altered_with_a_look_alike_letter_is_not_genuine_on_both_pages(app, users, db_session, client_as):
    """The same scan: the bedside calls it not genuine, as the label check page (/v/) does."""
    ward = prescribed_bag(db_session)
    db_session.commit()
    altered = _look_alike()
    genuine = altered.upper()  # once upper-cased it would pass for the genuine code
    assert altered != genuine and app.test_client().get(f"/v/{genuine}").status_code in (200, 404)
    words = _api_bag_failure(app, ward, altered)
    _says(words, "not genuine")
    assert "(the code was altered)" in words
    _page, failures = _web_failures(client_as("nurse"), ward, altered)
    assert NOT_GENUINE in failures and CALL_UNIT in failures
    label_page = app.test_client().get(f"/v/{altered}")
    assert label_page.status_code == 400 and "NOT A VALID LABEL" in label_page.get_data(as_text=True)


@pytest.mark.parametrize("alter", [_wrong_signature, _too_long], ids=["another signature", "a signature too long"])
def test_what_the_label_page_calls_altered_the_bedside_calls_not_genuine(app, users, db_session, alter: Any) -> None:
    ward = prescribed_bag(db_session)
    db_session.commit()
    scan = alter(ward.token)
    label_page = html.unescape(app.test_client().get(f"/v/{scan}").get_data(as_text=True))
    assert "NOT A VALID LABEL" in label_page
    reason = label_page.split("<strong>Refused:</strong>", 1)[1].split(".</p>", 1)[0].strip()
    assert "altered" in reason
    assert _api_bag_failure(app, ward, scan) == f"{NOT_GENUINE}{reason}). {CALL_UNIT}"


def test_a_bag_number_typed_with_a_dot_is_not_read_not_forged(app, users, db_session) -> None:
    """Not a code of ours by its shape (a stray dot after the DIN): scan again, never "call the unit"."""
    ward = prescribed_bag(db_session)
    db_session.commit()
    _says(_api_bag_failure(app, ward, ward.token.split(".")[0] + ".."), "not read")
    assert NOT_READ.startswith(NOT_READ_WORDS)


# ---- 2. WEIGHT CHANGED: the bedside says WeightSincePrescription's words -----------------------------------------------

def _weigh(clinician: Any, ward: Ward, kg: str) -> None:
    answer = clinician.post(f"/patients/{ward.patient_id}/weights", data={
        "weight_kg": kg, "measured_on": site_today().isoformat(), "weight_confirmed": "y"})
    assert answer.status_code == 302, answer.get_data(as_text=True)


def _scan(app: Any, ward: Ward) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}
    answer = app.test_client().post("/api/v1/custody/scan-verify", headers=headers,
                                    json={"wristband": ward.wristband, "bag": ward.token})
    assert answer.status_code == 200
    return answer.get_json()


def _change(app: Any, ward: Ward) -> WeightSincePrescription:
    with app.extensions["mscbatch.db"].new_session() as session:
        change = weight_since_prescription(session, ward.bag_id)
    assert change is not None
    return change


def test_the_bedside_weight_changed_is_the_words_of_weight_since_prescription(app, users, client_as, monkeypatch):
    ward = ward_bag(app)
    _weigh(client_as("clinician"), ward, "55")
    said = _scan(app, ward)
    assert said["result"] == "STOP" and [f["code"] for f in said["failures"]] == ["weight_changed"]
    change = _change(app, ward)
    assert change.changed_words.startswith("WEIGHT CHANGED since the prescription: prescribed for 62.5 kg (weighed ")
    assert said["failures"][0]["message"] == (
        f"{change.changed_words} Do not give it. Ask the prescriber to prescribe again for the new weight.")
    # one source: the sentence the dispatch and the thaw refusals say, then the bedside's own instruction
    monkeypatch.setattr(WeightSincePrescription, "changed_words", property(lambda self: "ONE SOURCE."))
    assert _scan(app, ward)["failures"][0]["message"] == (
        "ONE SOURCE. Do not give it. Ask the prescriber to prescribe again for the new weight.")


def test_the_bedside_note_of_a_newer_weight_says_weights_words(app, users, client_as, monkeypatch):
    ward = ward_bag(app)
    _weigh(client_as("clinician"), ward, "60")  # 125 / 60 = 2.08 x10^6/kg: inside the band
    said = _scan(app, ward)
    assert said["result"] == "MATCHES", said["failures"]
    words = _change(app, ward).weights_words
    assert words.startswith("prescribed for 62.5 kg (weighed ") and "the patient now weighs 60 kg (weighed " in words
    note = f"A newer weight was recorded since the prescription: {words}. The dose is still within the " \
           "prescription's limits."
    assert note in said["notes"], said["notes"]
    monkeypatch.setattr(WeightSincePrescription, "weights_words", property(lambda self: "BOTH WEIGHTS"))
    assert "A newer weight was recorded since the prescription: BOTH WEIGHTS. The dose is still within the " \
           "prescription's limits." in _scan(app, ward)["notes"]
