"""The page a label's QR code opens (/v/<token>, public) and the label API say DO NOT USE, with the reason in
plain words, for every bag the bedside check would stop for a reason the label alone can show: a donor reopened by
new information, a late OOS, the post-thaw limit passed. A genuine, usable label is not shown green: only the
bedside check clears a bag for a patient. Both databases."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from mscbatch.audit.context import use_case
from mscbatch.custody.checks import evaluate
from mscbatch.database import utcnow
from mscbatch.donors.models import Donor
from tests.conftest import api_token_for
from tests.integration.patient_factories import user
from tests.integration.test_bedside_late_news import _conditionally_released, _sterility
from tests.integration.test_custody_support import KEY, prescribed_bag


def _heading(page: str) -> str:
    return page.split('<h1 id="h-verify"', 1)[1].split("</h1>", 1)[0]


def _shown(app: Any, client: Any, token: str) -> tuple[str, dict[str, Any]]:
    page = client.get(f"/v/{token}")
    assert page.status_code == 200
    api = app.test_client().get("/api/v1/labels/verify", query_string={"token": token},
                                headers={"Authorization": f"Bearer {api_token_for(app, 'nurse')}"})
    assert api.status_code == 200, api.get_json()
    return page.get_data(as_text=True), api.get_json()


def _stop_codes(session: Any, ward: Any, now: Any = None) -> set[str]:
    codes = {f.code for f in evaluate(session, ward.wristband, ward.token, KEY, now=now).failures}
    session.rollback()
    return codes


def test_a_usable_bag_is_a_genuine_label_not_a_green_light(app, users, db_session) -> None:  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session)
    assert _stop_codes(db_session, ward) == set()
    page, api = _shown(app, app.test_client(), ward.token)
    assert "Genuine label" in _heading(page) and "DO NOT USE" not in page
    assert "flag-ok" not in page  # green would read as "give it"
    assert "does not clear the bag for a patient" in page
    assert api["usable"] is True and api["reasons"] == []


def test_a_bag_whose_donor_was_reopened_says_do_not_use(app, users, db_session, client_as) -> None:  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session)
    with use_case(db_session, user(db_session, "qa"), "test: a late positive marker reopens the donor"):
        donor = db_session.get(Donor, ward.donor_id)
        donor.status, code = "pending_review", donor.code
    assert _stop_codes(db_session, ward) == {"donor_not_cleared"}
    for client in (app.test_client(), client_as("nurse")):
        page, api = _shown(app, client, ward.token)
        assert "DO NOT USE" in _heading(page) and "reopened the donor" in page
        assert code not in page  # the public page names no donor
        assert api["usable"] is False and any("donor" in reason for reason in api["reasons"])


def test_a_bag_of_a_lot_with_a_late_oos_says_do_not_use(app, users, db_session, client_as) -> None:  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session)
    _conditionally_released(db_session, ward)
    _sterility(db_session, ward.lot_id, "positive")
    assert _stop_codes(db_session, ward) == {"late_oos"}
    page, api = _shown(app, client_as("nurse"), ward.token)
    assert "DO NOT USE" in _heading(page) and "late OOS" in page
    assert api["usable"] is False


def test_a_bag_past_its_post_thaw_limit_says_do_not_use(app, users, db_session, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session, state="thawed")
    later = utcnow() + timedelta(hours=6)
    assert _stop_codes(db_session, ward, now=later) == {"post_thaw"}
    page, _api = _shown(app, app.test_client(), ward.token)
    assert "DO NOT USE" not in page  # just thawed: within its limit
    monkeypatch.setattr("mscbatch.labelling.services.utcnow", lambda: later)
    page, api = _shown(app, app.test_client(), ward.token)
    assert "DO NOT USE" in _heading(page) and "too long since thawing" in page
    assert api["usable"] is False
