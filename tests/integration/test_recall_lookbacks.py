"""A late result that is not negative on an approved donor opens a lookback: it is put before QA on the release
dashboard and the recalls page (donor, marker and result, when, every lot of the donor with its status, the
patients reached, the way to the recall and the trace) until QA starts the donor's recall (review finding: the
lookback was written on the donor page only, and nothing asked QA to act on it)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mscbatch.donors import decisions
from mscbatch.donors import services as donor_services
from mscbatch.donors.models import APPROVED, Donor, DonorLookback
from mscbatch.lots.models import Bag
from mscbatch.patients import prescriptions
from mscbatch.recall.queries import open_lookbacks
from mscbatch.release.queries import dashboard
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.patient_factories import lot_with_bags, patient
from tests.integration.test_donors import screened_donor, user
from tests.integration.test_recall_support import set_status


def _section(page: str, start: str, end: str) -> str:
    return page[page.index(start):page.index(end, page.index(start))]


def _infused_cord_donor(app: Any) -> dict[str, Any]:
    """A cord donor approved by QA's signature, a released UC-MSC lot from it with one bag infused into a patient,
    and a quarantined lot; then a positive anti-HCV result recorded on the donor."""
    session = app.extensions["mscbatch.db"].new_session()
    try:
        tech, clinician = user(session, "technician"), user(session, "clinician")
        donor_id = screened_donor(session, "cord_eu")
        decisions.decide(session, user(session, "qa"), donor_id, APPROVED, PASSWORD)
        donor = session.get(Donor, donor_id)
        released = lot_with_bags(session, tech, donor, bags=3)
        quarantined = lot_with_bags(session, tech, donor, bags=2, status="quarantine")
        row = patient(session, clinician)
        prescriptions.prescribe(session, clinician, PASSWORD, row.id)
        allocated = sorted(b.id for b in session.scalars(select(Bag).where(Bag.status == "allocated")))
        set_status(session, tech, allocated[0], "infused")
        donor_services.record_result(session, tech, donor_id, marker="anti_hcv", result="positive",
                                     sample_date=site_today(), lab_reference="LATE-HCV-1")
        return {"donor_id": donor_id, "code": donor.code, "released": released[0].lot_id,
                "quarantined": quarantined[0].lot_id, "patient": row.code}
    finally:
        session.close()


def test_an_open_lookback_is_read_with_its_lots_and_patients(app, users):  # type: ignore[no-untyped-def]
    scene = _infused_cord_donor(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        found = open_lookbacks(session)
        assert [o.donor.id for o in found] == [scene["donor_id"]]
        lookback = found[0]
        assert (lookback.trigger.marker, lookback.trigger.result) == ("anti_hcv", "positive")
        assert lookback.marker_name != "anti_hcv" and "HCV" in lookback.marker_name  # the rule set's name
        assert {lt.lot.id: lt.lot.status for lt in lookback.trace.lots} == {
            scene["released"]: "released", scene["quarantined"]: "quarantine"}
        assert [p.code for p in lookback.trace.patients] == [scene["patient"]]
        assert lookback.recall is None
        assert [o.lookback.id for o in dashboard(session).lookbacks] == [lookback.lookback.id]


def test_qa_sees_the_lookback_on_the_dashboard_and_the_recalls_page_and_the_recall_closes_it(
        app, users, client_as):  # type: ignore[no-untyped-def]
    scene = _infused_cord_donor(app)
    qa = client_as("qa")
    for url, start, end in (("/release", 'id="lookbacks"', 'id="awaiting"'), ("/recalls", 'id="lookbacks"', 'id="recalls"')):
        section = _section(qa.get(url).get_data(as_text=True), start, end)
        assert scene["code"] in section and "positive" in section and "LATE-HCV-1" in section, url
        assert "open donor lookback" in section and "released" in section and "quarantine" in section
        assert scene["patient"] in section
        assert f"/recalls/new?scope=donor&amp;target={scene['code']}" in section
        assert f"/trace/donors/{scene['donor_id']}" in section

    started = qa.post("/recalls/new", data={"scope": "donor", "target": scene["code"], "password": PASSWORD,
                                            "reason": "Late positive anti-HCV (LATE-HCV-1)"})
    assert started.status_code == 302
    for url, start, end in (("/release", 'id="lookbacks"', 'id="awaiting"'), ("/recalls", 'id="lookbacks"', 'id="recalls"')):
        section = _section(qa.get(url).get_data(as_text=True), start, end)
        assert scene["code"] not in section and "None." in section, url
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.scalar(select(DonorLookback.closed_at)) is not None


def test_a_technician_sees_the_lookback_on_the_dashboard_without_patient_codes_or_recall_links(
        app, users, client_as):  # type: ignore[no-untyped-def]
    scene = _infused_cord_donor(app)
    section = _section(client_as("technician").get("/release").get_data(as_text=True), 'id="lookbacks"',
                       'id="awaiting"')
    assert scene["code"] in section and "QA decides on the donor" in section
    assert scene["patient"] not in section and "/recalls/new" not in section and "/trace/" not in section


def test_a_negative_late_result_opens_no_lookback_and_the_pages_say_none(app, users, client_as):  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        donor_id = screened_donor(session, "cord_eu")
        decisions.decide(session, user(session, "qa"), donor_id, APPROVED, PASSWORD)
        donor_services.record_result(session, user(session, "technician"), donor_id, marker="anti_hcv",
                                     result="negative", sample_date=site_today(), lab_reference="RETEST-1")
        assert open_lookbacks(session) == []
    page = client_as("qa").get("/release").get_data(as_text=True)
    assert "None." in _section(page, 'id="lookbacks"', 'id="awaiting"')
