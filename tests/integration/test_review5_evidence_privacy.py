"""The inspectors' evidence bundle masks a patient use case's reason as the audit viewer does (review 5): a course
stop's reason ("grade 2 infusion reaction ...") is stamped on the bag's custody event and on every audit event of
its transaction; the bundle of a bag sent back to stock carried it in its timeline and in its audit events."""
from __future__ import annotations

import io
import zipfile

import pytest

from tests.integration.test_review5_authpriv_privacy import (  # noqa: F401 (fixtures)
    REDACTED,
    STOPPED,
    cases,
)

pytestmark = pytest.mark.usefixtures("users")


def _bundle(client, bag_id: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    answer = client.get(f"/bags/{bag_id}/evidence.zip")
    assert answer.status_code == 200
    files = zipfile.ZipFile(io.BytesIO(answer.data))
    return {name: files.read(name).decode("utf-8") for name in files.namelist()}


def test_the_administrators_evidence_bundle_does_not_tell_a_course_stops_patient_reason(cases, client_as):  # type: ignore[no-untyped-def]  # noqa: F811
    texts = _bundle(client_as("admin"), cases["stopped_bag"])
    assert not [name for name, text in texts.items() if "grade 2 infusion reaction" in text], STOPPED
    assert REDACTED in texts["custody-timeline.json"] and REDACTED in texts["audit-events.json"]


def test_qa_who_reads_patients_gets_the_clinical_side_with_the_reason(cases, client_as):  # type: ignore[no-untyped-def]  # noqa: F811
    texts = _bundle(client_as("qa"), cases["stopped_bag"])
    assert STOPPED in texts["custody-timeline.json"] and STOPPED in texts["audit-events.json"]


def test_a_technicians_custody_api_does_not_tell_a_course_stops_patient_reason(app, cases):  # type: ignore[no-untyped-def]  # noqa: F811
    from tests.conftest import api_token_for

    client = app.test_client()
    path = f"/api/v1/custody/bags/{cases['stopped_bag']}/events"
    technician = client.get(path, headers={"Authorization": f"Bearer {api_token_for(app, 'technician')}"})
    assert technician.status_code == 200
    assert "grade 2 infusion reaction" not in technician.get_data(as_text=True)
    assert REDACTED in [event["reason"] for event in technician.get_json()]
    clinician = client.get(path, headers={"Authorization": f"Bearer {api_token_for(app, 'clinician')}"})
    assert STOPPED in [event["reason"] for event in clinician.get_json()]


WHY = "grade 3 anaphylaxis ZQ99, patient intubated"


@pytest.fixture()
def short_infusion(db_session):  # type: ignore[no-untyped-def]
    """An infusion ended well short of its prescription, with the nurse's words for it (recorded in the infusion_ended
    event's reason and in its details' "why")."""
    from mscbatch.custody import infusions
    from tests.integration.patient_factories import user
    from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag

    ward = prescribed_bag(db_session, last=True)  # 12.5 mL prescribed of 25
    checked_and_confirmed(db_session, ward)
    nurse = user(db_session, "nurse")
    infusion = infusions.start_infusion(db_session, nurse, ward.bag_id, wristband=ward.wristband,
                                        bag_scan=ward.token, label_key=KEY)
    infusions.end_infusion(db_session, nurse, infusion.id, volume_ml="3", reason=WHY)
    db_session.rollback()
    return ward.bag_id


def test_an_infusion_ends_why_is_masked_in_the_technicians_api_the_audit_viewer_and_the_bundle(  # type: ignore[no-untyped-def]
        app, short_infusion, client_as):
    import html

    from tests.conftest import api_token_for

    client = app.test_client()
    path = f"/api/v1/custody/bags/{short_infusion}/events"
    technician = client.get(path, headers={"Authorization": f"Bearer {api_token_for(app, 'technician')}"})
    ended = [event for event in technician.get_json() if event["kind"] == "infusion_ended"][0]
    assert "ZQ99" not in technician.get_data(as_text=True), ended
    assert ended["reason"] == REDACTED
    clinician = client.get(path, headers={"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}).get_json()
    assert [event["details"]["why"] for event in clinician if event["kind"] == "infusion_ended"] == [WHY]
    audit = html.unescape(client_as("admin").get("/audit", query_string={"entity_type": "custody_event"})
                          .get_data(as_text=True))
    assert "ZQ99" not in audit and REDACTED in audit
    texts = _bundle(client_as("admin"), short_infusion)
    assert not [name for name, text in texts.items() if "ZQ99" in text]
    assert "ZQ99" in _bundle(client_as("qa"), short_infusion)["custody-timeline.json"]
