"""The patients pages say an instant on the site's clock, labelled with its zone, UTC beside it: a nurse reading
"23:30 UTC" just after midnight in Paris would take the wrong day (review s33, item 1)."""
from __future__ import annotations

import re
from html import unescape

from sqlalchemy import select

from mscbatch.custody import infusions
from mscbatch.custody.models import Infusion
from mscbatch.patients import prescriptions
from mscbatch.patients.inventory import calculate
from mscbatch.patients.models import Prescription, WeightMeasurement
from mscbatch.site import site_config
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag
from tests.time_words import site_then_utc


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _local(moment) -> str:  # type: ignore[no-untyped-def]
    return moment.astimezone(site_config().tz).strftime("%Y-%m-%d %H:%M %Z")


def _both(moment) -> str:  # type: ignore[no-untyped-def]
    return site_then_utc(moment)


def _stopped_after_one_bag(db_session):  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    nurse, clinician = user(db_session, "nurse"), user(db_session, "clinician")
    infusion = infusions.start_infusion(db_session, nurse, ward.bag_id, wristband=ward.wristband, bag_scan=ward.token,
                                        label_key=KEY)
    infusions.end_infusion(db_session, nurse, infusion.id, volume_ml="25")
    rx_id = db_session.scalar(select(Prescription.id).where(Prescription.patient_id == ward.patient_id))
    prescriptions.cancel(db_session, clinician, rx_id, "grade 3 reaction with bag 1", password=PASSWORD)
    started = db_session.scalar(select(Infusion.started_at).where(Infusion.id == infusion.id))
    db_session.rollback()
    return ward, rx_id, started


def test_the_dose_page_says_when_a_bag_was_already_infused_on_the_site_clock(app, users, db_session, client_as):
    ward, _rx_id, started = _stopped_after_one_bag(db_session)
    page = _text(client_as("clinician").get(f"/patients/{ward.patient_id}/dose").get_data(as_text=True))
    assert "Already infused" in page, page[:2000]
    assert f"started {_both(started)}" in page, page[:3000]
    assert "Times on this page are the site's local time (Europe/Paris)" in page
    # the dry run's words (the API's already_infused.words) say the same instant on the site's clock first
    words = calculate(db_session, ward.patient_id).already.words
    db_session.rollback()
    assert f"started {_both(started)}" in words, words

def test_the_patient_and_prescription_pages_say_their_times_on_the_site_clock(app, users, db_session, client_as):
    ward, rx_id, _started = _stopped_after_one_bag(db_session)
    rx = db_session.get(Prescription, rx_id)
    prescribed_at, cancelled_at = rx.prescribed_at, rx.cancelled_at
    recorded_at = db_session.scalar(select(WeightMeasurement.recorded_at)
                                    .where(WeightMeasurement.patient_id == ward.patient_id))
    db_session.rollback()
    patient_page = _text(client_as("nurse").get(f"/patients/{ward.patient_id}").get_data(as_text=True))
    assert _both(recorded_at) in patient_page  # the weight's "Recorded"
    assert _both(prescribed_at) in patient_page  # the prescription's "Signed"
    rx_page = _text(client_as("nurse").get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True))
    assert f"Course stopped {_both(cancelled_at)}" in rx_page, rx_page[-3000:]
