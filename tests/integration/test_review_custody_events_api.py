"""A bag's custody timeline through the API (found by review): any signed-in role read the patient's id and the
wristband scanned in the events' details (allocation, bedside check, infusion start), while the bag's web page shows
patients only to the roles that read patient records (QA, clinicians, nurses). The API now gives those details to
the same roles; the others get every event, without them."""
from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import api_token_for
from tests.integration.test_custody_support import checked_and_confirmed, prescribed_bag


def _events(app: Any, username: str, bag_id: int) -> list[dict[str, Any]]:
    answer = app.test_client().get(f"/api/v1/custody/bags/{bag_id}/events",
                                   headers={"Authorization": f"Bearer {api_token_for(app, username)}"})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def _ward(app: Any) -> Any:
    with app.extensions["mscbatch.db"].new_session() as session:
        ward = prescribed_bag(session)
        checked_and_confirmed(session, ward)
    return ward


@pytest.mark.parametrize("role", ["technician", "admin"])
def test_roles_that_do_not_read_patient_records_get_the_timeline_without_the_patient(app, users, role):
    ward = _ward(app)
    events = _events(app, role, ward.bag_id)
    kinds = [event["kind"] for event in events]
    assert {"allocated", "bedside_verified"} <= set(kinds)  # every event is there...
    for event in events:  # ...without the patient
        assert "patient_id" not in event["details"] and "wristband" not in event["details"], event
    verified = next(event for event in events if event["kind"] == "bedside_verified")
    assert {"check_id", "first_checker", "second_checker"} <= set(verified["details"])


@pytest.mark.parametrize("role", ["nurse", "clinician", "qa"])
def test_roles_that_read_patient_records_get_the_patient_in_the_details(app, users, role):
    ward = _ward(app)
    events = _events(app, role, ward.bag_id)
    verified = next(event for event in events if event["kind"] == "bedside_verified")
    assert verified["details"]["patient_id"] == ward.patient_id and verified["details"]["wristband"] == ward.wristband
    allocated = next(event for event in events if event["kind"] == "allocated")
    assert allocated["details"]["patient_id"] == ward.patient_id
