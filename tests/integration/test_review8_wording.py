"""Review 8: the words of the demo's pages as a newcomer walking the README meets them.

- A result recorded after QA's approval reopened it "New anti_hcv result": the marker's code, where every other
  line of the donor page names it ("Anti-HCV").
- The refusal of an expired reagent said its type twice for a lot named after it ("Fetal bovine serum Fetal bovine
  serum, DemoSerum lot FBS-0099").
- The lot list showed the collection as a UTC date, a day off the site's calendar day the lot page and the list's
  own "Collected from / to" filter use, for a lot collected just after the site's midnight.
- A released lot whose donor QA has since judged ineligible said "this lot cannot be released": it was released;
  its bags must not be given (the bedside says STOP) and QA recalls the donor's lots.
- A technician reading the release review page was told "you entered results of this lot; another QA person must
  release it", as if about to release it.
- The flow-cytometry panel with seven markers empty named one of them.
- Donor D-2026-0005, approved on QA's documented risk assessment, read "approved · the screening says pending".
- The patient page linked a prescription by its bare number, a one-character tap target.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from mscbatch.donors import decisions
from mscbatch.donors.models import INELIGIBLE, Donor
from mscbatch.lots import services
from mscbatch.lots.models import Lot, ProcessStep, ReagentLot
from mscbatch.patients.models import Patient, Prescription
from mscbatch.site import site_config
from tests.conftest import login, screening_seen
from tests.integration.lot_factories import COLLECTION_DAYS_AGO, TODAY, approved_adipose_donor
from tests.integration.test_release_support import user

DEMO_PASSWORD = "mscbatch-demo"


def _demo(app: Any) -> Any:
    seeded = app.test_cli_runner().invoke(args=["seed-demo"])
    assert seeded.exit_code == 0, seeded.output
    return app


def _as(app: Any, username: str) -> Any:
    client = app.test_client()
    assert login(client, username, DEMO_PASSWORD).status_code == 302
    return client


def _text(response: Any) -> str:
    """The page as a reader reads it: an apostrophe, not its HTML escape."""
    return str(response.get_data(as_text=True)).replace("&#39;", "'")


def _id(app: Any, column: Any, where: Any) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        found = session.scalar(select(column).where(where))
        assert found is not None
        return int(found)


def _id_code(app: Any, donor_id: int) -> str:
    with app.extensions["mscbatch.db"].new_session() as session:
        return str(session.get(Donor, donor_id).code)


def _result(client: Any, donor_id: int, marker: str, result: str, sample: str, reference: str) -> None:
    posted = client.post(f"/donors/{donor_id}/results", data={
        "result-marker": marker, "result-result": result, "result-sample_date": sample,
        "result-lab_reference": reference})
    assert posted.status_code == 302, _text(posted)


def test_a_result_after_the_approval_names_its_marker_as_the_donor_page_does(app):
    _demo(app)
    donor_id = _id(app, Donor.id, Donor.code.like("D-%-0001"))
    tech = _as(app, "tech")
    # a negative retest reopens the approval (reopen's reason); a positive one then opens the lookback of an
    # approval no longer in force (_lookback_after_a_past_approval's reason)
    _result(tech, donor_id, "anti_hcv", "negative", "2026-11-12", "LAB-R8-1")
    _result(tech, donor_id, "anti_hcv", "positive", "2026-11-13", "LAB-R8-2")
    page = _text(tech.get(f"/donors/{donor_id}"))
    assert "New Anti-HCV result (negative, sample 2026-11-12) recorded after the QA decision." in page
    assert "New Anti-HCV result (positive, sample 2026-11-13) recorded after QA's approval of" in page
    assert "anti_hcv result" not in page


def test_an_expired_reagent_named_after_its_type_is_refused_saying_the_type_once(app):
    _demo(app)
    lot_id = _id(app, Lot.id, Lot.lot_number.like("MSC-%-0002"))
    expired = _id(app, ReagentLot.id, ReagentLot.lot_number == "FBS-0099")
    with app.extensions["mscbatch.db"].new_session() as session:
        p0 = session.scalar(select(ProcessStep).where(ProcessStep.lot_id == lot_id, ProcessStep.passage_number == 0))
        step_id, used_on = p0.id, p0.performed_on
    refused = _as(app, "tech").post(f"/lots/{lot_id}/reagents", data={
        "reagent-reagent_lot_id": expired, "reagent-step_id": step_id, "reagent-used_on": used_on.isoformat()})
    page = _text(refused)
    assert refused.status_code == 409, page
    assert "Expired reagent refused: Fetal bovine serum, DemoSerum lot FBS-0099, expired on" in page
    assert "Fetal bovine serum Fetal bovine serum" not in page


def test_the_lot_list_shows_the_site_day_of_a_collection_just_after_the_sites_midnight(app, users, db_session,
                                                                                        client_as):
    day = TODAY - timedelta(days=COLLECTION_DAYS_AGO)
    collected = datetime.combine(day, time(0, 30), site_config().tz)  # the day before, in UTC
    services.create_lot(db_session, user(db_session, "technician"), services.LotDetails(
        donor_id=approved_adipose_donor(db_session), product_id="AT-MSC", collection_at=collected,
        collection_site="Theatre 3", tissue_amount="50", tissue_unit="g"))
    db_session.commit()
    db_session.close()
    page = _text(client_as("technician").get("/lots"))
    assert f">{day:%Y-%m-%d}</span></td>" in page  # the day the lot page and the from / to filter say
    assert f"{day - timedelta(days=1):%Y-%m-%d} UTC</td>" not in page


def test_a_released_lot_of_a_donor_now_ineligible_says_its_bags_must_not_be_given_and_qa_recalls(app):
    _demo(app)
    donor_id = _id(app, Donor.id, Donor.code.like("D-%-0001"))
    lot_id = _id(app, Lot.id, Lot.lot_number.like("MSC-%-0001"))
    _result(_as(app, "tech"), donor_id, "anti_hcv", "positive", "2026-11-12", "LAB-R8-3")
    with app.extensions["mscbatch.db"].new_session() as session:
        decisions.decide(session, user(session, "qa"), donor_id, INELIGIBLE, DEMO_PASSWORD,
                         "Anti-HCV positive on a later sample: excluded.")
        session.commit()
    page = _text(_as(app, "qa").get(f"/lots/{lot_id}"))
    assert "The donor is now ineligible: the bags of this released lot must not be given." in page
    code = _id_code(app, donor_id)  # D-<year of the demo>-0001
    assert f"QA starts the recall of donor {code}'s lots" in page
    assert f'href="/recalls/new?scope=donor&amp;target={code}"' in page
    assert "this lot cannot be released" not in page
    listed = _text(_as(app, "qa").get("/lots"))  # the lot list's flag says the same, on this lot's row (the demo's
    # recalled lot of the donor LB, mscbatch.recall.demo, is flagged too: recalled, it cannot be released)
    row = next(r for r in listed.split("<tr>") if f'href="/lots/{lot_id}"' in r)
    assert "the bags of this released lot must not be given (QA recalls them)" in row
    assert "this lot cannot be released" not in row


def test_the_release_review_page_tells_a_technician_the_segregation_rule_not_you_must_not_release(app):
    _demo(app)
    lot_id = _id(app, Lot.id, Lot.lot_number.like("MSC-%-0002"))  # made and tested by tech
    page = _text(_as(app, "tech").get(f"/release/lots/{lot_id}"))
    assert "whoever entered results of this lot cannot release it (segregation of duties" in page
    assert "whoever recorded the manufacture of this lot cannot release it (segregation of duties" in page
    assert "you entered results" not in page and "another QA person must release it" not in page


def test_the_flow_panel_names_every_missing_marker(app):
    _demo(app)
    lot_id = _id(app, Lot.id, Lot.lot_number.like("MSC-%-0002"))
    refused = _as(app, "tech").post(f"/release/lots/{lot_id}/panel", data={
        "panel-cd73": "98", "panel-analyst": "A. Analyst", "panel-tested_on": TODAY.isoformat()})
    page = _text(refused)
    assert refused.status_code == 422, page
    for name in ("CD90", "CD105", "CD45", "CD34", "CD14 or CD11b", "CD79a or CD19", "HLA-DR"):
        assert f"{name}: give the percentage of positive cells." in page, name
    assert "CD73: give the percentage" not in page


def test_a_donor_approved_on_a_risk_assessment_says_why_the_screening_alone_is_pending(app):
    _demo(app)
    donor_id = _id(app, Donor.id, Donor.code.like("D-%-0005"))
    qa = _as(app, "qa")
    signed = qa.post(f"/donors/{donor_id}/decision", data={
        "decision-meaning": decisions.APPROVED, "decision-password": DEMO_PASSWORD, **screening_seen(qa, donor_id),
        "decision-comment": "Anti-HBc positive, HBsAg negative, HBV DNA not detected: resolved infection."})
    assert signed.status_code == 302, _text(signed)
    page = _text(qa.get(f"/donors/{donor_id}"))
    assert ("on QA's signed risk assessment of Anti-HBc (maternal); the screening alone says "
            '<span class="status status-pending" id="engine-status">pending</span>') in page
    # an approval on a complete screening keeps its plain words
    other = _text(qa.get(f"/donors/{_id(app, Donor.id, Donor.code.like('D-%-0001'))}"))
    assert "· the screening says <span" in other and "risk assessment of" not in other


def test_the_patient_page_links_a_prescription_by_words_not_a_bare_number(app):
    _demo(app)
    patient_id = _id(app, Patient.id, Patient.code == "SLE-UC-001")
    prescription_id = _id(app, Prescription.id, Prescription.patient_id == patient_id)
    page = _text(_as(app, "clinician").get(f"/patients/{patient_id}"))
    assert f'/prescriptions/{prescription_id}">Prescription {prescription_id}</a>' in page
