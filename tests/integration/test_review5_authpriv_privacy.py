"""Review 5: what the administrator (who may not read patients) sees of a patient's use case in the audit viewer and
on the monitoring page. The reason of a course stop or a withdrawal is stamped on every event of its transaction
(bags, custody events, signatures): masked on all of them; a wristband scanned at a refused infusion start is the
patient's identity; the monitoring page names the kind of a STOP, not the patients. A recall's reason stays shown."""
from __future__ import annotations

import html

import pytest
from sqlalchemy import select

from mscbatch.custody import infusions
from mscbatch.custody.infusions import StartRefused
from mscbatch.patients.models import Patient, Prescription
from mscbatch.patients.withdrawal import withdraw
from mscbatch.recall.services import start_recall
from tests.conftest import PASSWORD
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_custody_support import KEY, check, prescribed_bag

pytestmark = pytest.mark.usefixtures("users")


REDACTED = "[redacted]"
STOPPED = "Course stopped after first bag: grade 2 infusion reaction ZQ17"
WITHDRAWN = "Consent withdrawn by the patient ZQ18"
RECALLED = "supplier notice ZQ19"


def _page(client, **filters: str) -> str:  # type: ignore[no-untyped-def]
    response = client.get("/audit", query_string=filters)
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True))


@pytest.fixture
def cases(db_session, client_as):  # type: ignore[no-untyped-def]
    """A refused infusion start, a course stopped (its bags back in stock), a patient withdrawn and a recall."""
    ward = prescribed_bag(db_session, code="SLE-UC-773")
    with pytest.raises(StartRefused):  # no confirmed check: refused, recorded with the wristband scanned
        infusions.start_infusion(db_session, user(db_session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                 bag_scan=ward.token, label_key=KEY)
    stopped = prescribed_bag(db_session, state="allocated", code="SLE-UC-771")
    rx_id = db_session.scalar(select(Prescription.id).where(Prescription.patient_id == stopped.patient_id))
    db_session.rollback()
    assert client_as("clinician").post(f"/patients/prescriptions/{rx_id}/cancel",
                                       data={"password": PASSWORD, "reason": STOPPED}).status_code == 302
    clin = user(db_session, "clinician")
    gone = patient(db_session, clin, code="SLE-UC-772")
    withdraw(db_session, clin, PASSWORD, gone.id, reason=WITHDRAWN)
    qa = user(db_session, "qa")
    recalled = lot_with_bags(db_session, user(db_session, "technician"), donor(db_session, qa))
    start_recall(db_session, qa, scope="lot", target_id=recalled[0].lot_id, reason=RECALLED, password=PASSWORD)
    made = {"stopped_bag": stopped.other_bag_ids[0], "ward": ward}
    db_session.rollback()
    return made


def test_admin_sees_no_patient_use_case_reason_nor_wristband_on_bags_custody_or_signatures(client_as, cases):
    admin = client_as("admin")
    stopped_bag = _page(admin, entity_type="bag", entity_id=str(cases["stopped_bag"]))
    assert "state" in stopped_bag and "grade 2" not in stopped_bag and REDACTED in stopped_bag
    texts = {kind: _page(admin, entity_type=kind) for kind in ("custody_event", "signature", "bag")}
    for kind, text in texts.items():
        assert "grade 2" not in text and "ZQ18" not in text, kind
    assert '"reason":"[redacted]"' in texts["custody_event"]  # the row's own reason column too
    refused = _page(admin, entity_type="bag", entity_id=str(cases["ward"].bag_id))
    assert "infusion_start_refused" in refused and "no_confirmed_check" in refused
    assert cases["ward"].wristband not in refused and '"wristband":"[redacted]"' in refused
    # a recall's reason is not a patient's: shown
    for kind in ("lot", "bag_hold", "recall"):
        assert RECALLED in _page(admin, entity_type=kind), kind


def test_qa_still_sees_every_reason(client_as, cases):
    qa = client_as("qa")
    assert "grade 2 infusion reaction ZQ17" in _page(qa, entity_type="bag", entity_id=str(cases["stopped_bag"]))
    assert WITHDRAWN in _page(qa, entity_type="signature")
    assert cases["ward"].wristband in _page(qa, entity_type="bag", entity_id=str(cases["ward"].bag_id))


def test_monitoring_tells_the_admin_the_kind_of_stop_not_the_patients(db_session, client_as):
    ward = prescribed_bag(db_session, code="SLE-UC-774")
    other = patient(db_session, user(db_session, "clinician"), code="SLE-UC-775")
    result = check(db_session, ward, wristband=other.wristband_id)
    assert not result.matches and "SLE-UC-775" in " ".join(f.message for f in result.failures)
    codes = [db_session.get(Patient, ward.patient_id).code, other.code, other.wristband_id, ward.wristband]
    db_session.rollback()
    text = html.unescape(client_as("admin").get("/admin/monitoring").get_data(as_text=True))
    assert "WRONG PATIENT: the bag is prescribed for another patient" in text
    for secret in codes:
        assert secret not in text, secret


def test_the_custody_events_carrying_a_patient_use_case_reason_are_found(db_session, cases):
    """interop.privacy.patient_custody_reasons: for a bag's custody timeline shown to roles that may not read
    patients (the custody API, the evidence bundle)."""
    from mscbatch.custody.models import CustodyEvent
    from mscbatch.interop.privacy import patient_custody_reasons

    events = list(db_session.scalars(select(CustodyEvent).where(CustodyEvent.reason != "")))
    hidden = patient_custody_reasons(db_session, [e.id for e in events])
    assert {e.id for e in events if e.reason == STOPPED} <= hidden and hidden
    assert not {e.id for e in events if e.reason != STOPPED} & hidden
    db_session.rollback()
