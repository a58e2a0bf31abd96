"""Times on the prescription page and the dose sheet read as on the ward: the site's local time first, UTC beside it
(site.local_and_utc: the zone named), not UTC only (review 5)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from mscbatch.custody import infusions
from mscbatch.custody.models import Infusion
from mscbatch.patients.models import Prescription
from mscbatch.site import local_and_utc
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag
from tests.integration.test_review5_patients_course import _pdf_text, _text  # noqa: F401

pytestmark = pytest.mark.usefixtures("users")
LOCAL_THEN_UTC = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d CES?T \((?:\d{4}-\d\d-\d\d )?\d\d:\d\d UTC\)")


def test_a_running_infusion_and_a_stop_are_told_in_local_time_with_utc_beside(app, db_session, client_as):  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    infusion = infusions.start_infusion(db_session, user(db_session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                        bag_scan=ward.token, label_key=KEY)
    rx_id = db_session.scalar(select(Prescription.id).where(Prescription.patient_id == ward.patient_id))
    with app.app_context():
        started = local_and_utc(db_session.get(Infusion, infusion.id).started_at)
    db_session.rollback()
    clinician = client_as("clinician")
    page = _text(clinician.get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True))
    assert f"GIVEN: infusion running (started {started})" in page, page
    stopped = clinician.post(f"/patients/prescriptions/{rx_id}/cancel", data={"password": PASSWORD, "reason": "grade 3 reaction"})
    assert stopped.status_code in (302, 303)
    sheet = _pdf_text(clinician.get(f"/patients/prescriptions/{rx_id}/dose-sheet.pdf").data)
    assert f"started {started}" in sheet, sheet
    stop = sheet[sheet.index("Stopped"):][:80] if "Stopped" in sheet else sheet[sheet.index("Cancelled"):][:80]
    assert LOCAL_THEN_UTC.search(stop), stop


def test_the_dose_page_says_the_bags_and_weight_are_judged_now(app, db_session, client_as):  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session, state="allocated")
    db_session.rollback()
    page = _text(client_as("clinician").get(f"/patients/{ward.patient_id}/dose").get_data(as_text=True))
    assert "judged for today" not in page and "judged as they are now, when you calculate" in page, page[:2000]
