"""S41 (nurse-reviewer): a bag scan or a wristband sent with an invisible character (a zero-width space, a byte-order
mark, a scanner's control suffix) is read as the nurse sees it, at the bedside check (web and API) and at the
infusion start; a forged or altered label code with one still never MATCHES. SQLite and PostgreSQL."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.core.label_token import make_token
from mscbatch.custody.models import Infusion
from mscbatch.lots.models import Bag
from tests.conftest import api_token_for
from tests.integration.test_custody_support import checked_and_confirmed, prescribed_bag, ward_bag

pytestmark = pytest.mark.usefixtures("users")


def _din14(app: Any, bag_id: int) -> str:
    with app.extensions["mscbatch.db"].new_session() as session:
        bag = session.get(Bag, bag_id)
        return bag.din + bag.check_character


def _verdicts(app: Any, nurse: Any, wristband: str, scan: str) -> list[Any]:
    page = nurse.post("/ward/check", data={"wristband": wristband, "bag": scan}, follow_redirects=True)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    web = "MATCHES" if ">MATCHES<" in text else ("STOP" if ">STOP<" in text else "?")
    answer = app.test_client().post("/api/v1/custody/scan-verify", json={"wristband": wristband, "bag": scan},
                                    headers={"Authorization": f"Bearer {api_token_for(app, 'nurse')}"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return [web, answer.get_json()["result"], answer.get_json()["failures"]]


@pytest.mark.parametrize("mark", ["\u200b", "\ufeff", "\x1d", "\r\x04"])
def test_a_scan_with_an_invisible_character_matches_as_seen(app, client_as, mark):  # type: ignore[no-untyped-def]
    ward = ward_bag(app)
    nurse = client_as("nurse")
    din14 = _din14(app, ward.bag_id)
    for wristband, scan in ((ward.wristband + mark, din14 + mark), ("\ufeff" + ward.wristband, mark + ward.token),
                            (ward.wristband, din14[:7] + mark + din14[7:])):
        web, api, failures = _verdicts(app, nurse, wristband, scan)
        assert (web, api) == ("MATCHES", "MATCHES"), (repr(wristband), repr(scan), failures)


def test_a_forged_or_altered_code_with_an_invisible_character_never_matches(app, client_as):  # type: ignore[no-untyped-def]
    ward = ward_bag(app)
    nurse = client_as("nurse")
    din14 = _din14(app, ward.bag_id)
    wrong_k = next(k for k in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*" if k != din14[-1])
    forged = make_token(din14, "a-key-this-unit-never-used")
    ref, signature = ward.token.split(".")
    altered = f"{ref}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}"
    # the last: a scanner's control character before a check character that is not the bag's (a fixed "7" was the
    # bag's own one DIN in 37, and then rightly MATCHED)
    for scan in (forged + "\u200b", altered + "\ufeff", din14[:13] + wrong_k + "\u200b", "\u200b" + din14[:13] + "\x1d" + wrong_k):
        web, api, failures = _verdicts(app, nurse, ward.wristband, scan)
        assert (web, api) == ("STOP", "STOP"), (repr(scan), failures)
        assert [f["code"] for f in failures] == ["bag"]
    web, api, failures = _verdicts(app, nurse, ward.wristband + "\u200b7", ward.token)  # a character seen: another band
    assert (web, api) == ("STOP", "STOP") and failures[0]["code"] == "unknown_wristband"


def test_the_infusion_starts_on_scans_with_an_invisible_suffix(app, client_as):  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        ward = prescribed_bag(session)
        checked_and_confirmed(session, ward)
    din14 = _din14(app, ward.bag_id)
    answer = app.test_client().post(
        "/api/v1/custody/infusions",
        json={"bag_id": ward.bag_id, "wristband": ward.wristband + "\u200b", "bag": din14 + "\ufeff\x1d"},
        headers={"Authorization": f"Bearer {api_token_for(app, 'nurse')}"})
    assert answer.status_code in (200, 201), answer.get_data(as_text=True)
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.scalar(select(func.count(Infusion.id)).where(Infusion.bag_id == ward.bag_id)) == 1
