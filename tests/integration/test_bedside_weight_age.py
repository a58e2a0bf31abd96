"""An infusion put off past the protocol's weight_valid_days (7 days for SLE-UC) is stopped at the bedside: the dose
is only as good as the weight it was calculated for (DOMAIN.md 6 and 8). A new weight at which the dose still holds
renews it. Through the scanner API, on both databases."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from mscbatch.database import utcnow
from mscbatch.site import site_today
from tests.conftest import api_token_for
from tests.integration.test_custody_support import prescribed_bag


def _scan(app: Any, ward: Any) -> dict[str, Any]:
    answer = app.test_client().post("/api/v1/custody/scan-verify", json={"wristband": ward.wristband, "bag": ward.token},
                                    headers={"Authorization": f"Bearer {api_token_for(app, 'nurse')}"})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()  # type: ignore[no-any-return]


def test_a_dose_weight_grown_too_old_stops_the_bag_until_the_patient_is_weighed_again(app, users, db_session,
                                                                                     monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session, state="received")  # prescribed today on a weight taken yesterday
    db_session.rollback()
    assert _scan(app, ward)["result"] == "MATCHES"
    week_later = utcnow() + timedelta(days=7)  # the infusion was put off a week: that weight is now 8 days old
    monkeypatch.setattr("mscbatch.custody.checks.utcnow", lambda: week_later)
    answer = _scan(app, ward)
    assert answer["result"] == "STOP" and [f["code"] for f in answer["failures"]] == ["weight_too_old"]
    message = answer["failures"][0]["message"]
    assert message.startswith("WEIGHT TOO OLD") and "8 days ago" in message and "within 7 days" in message

    clinician = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    weighed = app.test_client().post(f"/api/v1/patients/{ward.patient_id}/weights", headers=clinician,
                                     json={"weight_kg": "62.5", "measured_on": site_today().isoformat()})
    assert weighed.status_code == 201, weighed.get_json()
    answer = _scan(app, ward)  # that weight is 7 days old a week on: within the protocol's days
    assert answer["result"] == "MATCHES", answer["failures"]
    assert any("newer weight" in note for note in answer["notes"])
