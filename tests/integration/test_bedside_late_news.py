"""News that comes after a lot's release must reach the ward at once (DOMAIN.md sections 3, 5 and 8).

- A pending test that fails after a conditional release (a positive sterility culture) opens a late OOS: from
  that moment the lot's bags are refused at dispatch and STOPPED at the bedside, until QA closes the OOS.
- A donor reopened by a late positive marker (a lookback) clears no bag of theirs until QA has decided.
Before, both bags still said MATCHES: the first with a note that the test was "still pending".
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.core.identifiers import din_shown
from mscbatch.custody import handover
from mscbatch.custody.models import CustodyEvent
from mscbatch.errors import Conflict
from mscbatch.lots.models import Bag, Lot
from mscbatch.release import oos, results
from mscbatch.site import site_today
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import user
from tests.integration.test_bedside import _disposition
from tests.integration.test_custody_support import prescribed_bag
from tests.integration.test_donors import DATES, approved_donor
from tests.integration.test_s37_release_seen import seen

pytestmark = pytest.mark.usefixtures("users")


def _conditionally_released(session, ward) -> None:  # type: ignore[no-untyped-def]
    with use_case(session, user(session, "qa"), "test: conditional release pending sterility"):
        session.get(Lot, ward.lot_id).status = "conditional_release"
    _disposition(session, ward.lot_id, "conditional_release", pending_tests="sterility")


def _sterility(session, lot_id: int, value: str):  # type: ignore[no-untyped-def]
    return results.enter_result(session, user(session, "technician"), lot_id, results.ResultEntry(
        test_id="sterility", value=value, unit="", analyst="QC analyst", tested_on=site_today()))


def _scan(app, ward) -> dict:  # type: ignore[no-untyped-def, type-arg]
    answer = app.test_client().post("/api/v1/custody/scan-verify", json={"wristband": ward.wristband, "bag": ward.token},
                                    headers={"Authorization": f"Bearer {api_token_for(app, 'nurse')}"})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()  # type: ignore[no-any-return]


def test_a_sterility_failing_after_conditional_release_stops_the_bag_until_qa_closes_the_oos(app, db_session):
    ward = prescribed_bag(db_session)
    _conditionally_released(db_session, ward)
    assert _scan(app, ward)["result"] == "MATCHES"  # still pending: given, with a note

    _sterility(db_session, ward.lot_id, "positive")
    [late] = oos.open_oos_of(db_session, ward.lot_id)
    assert late.late
    late_id = late.id
    db_session.rollback()  # end the read: on SQLite an open transaction holds the write lock
    stop = _scan(app, ward)
    assert stop["result"] == "STOP" and [f["code"] for f in stop["failures"]] == ["late_oos"]
    assert "FAILED after its conditional release (Sterility)" in stop["failures"][0]["message"]
    assert not any("still pending" in note for note in stop["notes"])
    web = app.test_client()
    web.post("/login", data={"username": "nurse", "password": PASSWORD})
    page = web.post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token},
                    follow_redirects=True).get_data(as_text=True)
    assert ">STOP<" in page and "OUT OF SPECIFICATION" in page

    with pytest.raises(Conflict, match=r"FAILED after its conditional release \(Sterility\)"):
        handover.dispatch(db_session, user(db_session, "technician"), ward.other_bag_ids[0], courier="C", shipper="S",
                          temperature_logger_id="TL-1")
    db_session.rollback()

    # QA shows a laboratory error with a valid retest: the OOS is closed by signature, and only then the bag is
    # given again
    retest = _sterility(db_session, ward.lot_id, "negative")
    oos.invalidate_oos(db_session, user(db_session, "qa"), late_id, retest.id,
                       "Contaminated culture bottle, retest from the retained sample is negative.", PASSWORD,
                       assignable_cause="sample")
    assert _scan(app, ward)["result"] == "MATCHES"


def test_a_late_positive_donor_marker_stops_the_bag_until_qa_decides(app, db_session, client_as):
    donor_id = approved_donor(db_session, "cord_eu")
    from mscbatch.donors.models import Donor

    ward = prescribed_bag(db_session, donor_row=db_session.get(Donor, donor_id))
    assert _scan(app, ward)["result"] == "MATCHES"

    recorded = client_as("technician").post(f"/donors/{donor_id}/results", data={
        "result-marker": "anti_hiv_1_2", "result-result": "positive",
        "result-sample_date": DATES["cord_eu"][1].isoformat(), "result-lab_reference": "LATE-HCV"})
    assert recorded.status_code == 302, recorded.get_data(as_text=True)
    stop = _scan(app, ward)
    assert stop["result"] == "STOP" and [f["code"] for f in stop["failures"]] == ["donor_not_cleared"]
    assert "UNDER REVIEW" in stop["failures"][0]["message"]
    db_session.expire_all()
    with pytest.raises(Conflict, match="DONOR of this bag .* is UNDER REVIEW"):
        handover.dispatch(db_session, user(db_session, "technician"), ward.other_bag_ids[0], courier="C",
                          shipper="S", temperature_logger_id="TL-1")


def test_a_partial_dose_shows_what_to_give_and_more_needs_a_reason(app, db_session, client_as):
    ward = prescribed_bag(db_session, last=True)  # 12.5 mL of a 25 mL bag
    scan = _scan(app, ward)
    assert scan["result"] == "MATCHES" and scan["give_ml"] == "12.50"
    assert scan["notes"][0].startswith("PART OF THE BAG ONLY: give 12.5 mL of the 25 mL in this bag")
    whole = prescribed_bag(db_session)
    assert _scan(app, whole)["give_ml"] == "25.00"

    nurse = client_as("nurse")
    page = nurse.post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token},
                      follow_redirects=True).get_data(as_text=True)
    assert ">MATCHES<" in page and "PART OF THE BAG ONLY" in page
    assert '<dd id="give-volume"><strong>12.5 mL</strong> of 25 mL: part of the bag only</dd>' in page
    check_id = int(page.split("/ward/checks/")[1].split("/confirm")[0])
    assert nurse.post(f"/ward/checks/{check_id}/confirm", data={"second_username": "nurse2",
                                                                 "second_password": PASSWORD,
                                                                 "checker_password": PASSWORD}).status_code == 303
    started = nurse.post(f"/ward/bags/{ward.bag_id}/infusion", data={"wristband": ward.wristband, "bag": ward.token})
    assert started.status_code == 302
    infusion_url = started.headers["Location"]
    assert "<strong>12.5 mL</strong> of the 25 mL bag" in nurse.get(infusion_url).get_data(as_text=True)

    refused = nurse.post(f"{infusion_url}/end", data={"volume_ml": "25"})
    assert refused.status_code == 422
    assert "25 mL is MORE than the 12.5 mL prescribed" in refused.get_data(as_text=True)
    assert "running" in nurse.get(infusion_url).get_data(as_text=True)  # nothing was recorded

    ended = nurse.post(f"{infusion_url}/end", data={"volume_ml": "25", "reason": "Pump not stopped at 12.5 mL"})
    assert ended.status_code == 302
    record = nurse.get(infusion_url).get_data(as_text=True)
    assert "25 mL infused (12.5 mL prescribed from this 25 mL bag):" in record and "MORE THAN PRESCRIBED: tell the clinician" in record
    event = db_session.scalar(select(CustodyEvent).where(CustodyEvent.bag_id == ward.bag_id,
                                                         CustodyEvent.kind == "infusion_ended"))
    assert '"over_prescription": true' in event.details_json and "Pump not stopped" in event.details_json
    reason = db_session.scalar(select(AuditEvent.reason).where(AuditEvent.entity_type == "infusion",
                                                               AuditEvent.field == "volume_infused_ml"))
    # the audit says what was given against what was prescribed, then the nurse's why (session 45's reasons)
    assert reason == (f"Infusion #1 ended: 25 mL of bag {din_shown(db_session.get(Bag, ward.bag_id))} given, MORE than the 12.5 mL prescribed. "
                      "Why: Pump not stopped at 12.5 mL")


def test_the_prescribed_volume_ends_without_a_flag(app, db_session, client_as):
    ward = prescribed_bag(db_session, last=True)
    nurse = client_as("nurse")
    page = nurse.post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token},
                      follow_redirects=True).get_data(as_text=True)
    check_id = int(page.split("/ward/checks/")[1].split("/confirm")[0])
    nurse.post(f"/ward/checks/{check_id}/confirm",
               data={"second_username": "nurse2", "second_password": PASSWORD, "checker_password": PASSWORD})
    infusion_url = nurse.post(f"/ward/bags/{ward.bag_id}/infusion",
                              data={"wristband": ward.wristband, "bag": ward.token}).headers["Location"]
    assert nurse.post(f"{infusion_url}/end", data={"volume_ml": "12.5"}).status_code == 302
    record = nurse.get(infusion_url).get_data(as_text=True)
    assert "12.5 mL infused (12.5 mL prescribed from this 25 mL bag)" in record and "MORE THAN PRESCRIBED" not in record


def test_a_shortfall_beyond_the_dose_tolerance_needs_a_reason_and_the_patient_page_flags_it(app, db_session,
                                                                                              client_as):
    """SLE-UC's dose tolerance is 10 %: 24 mL of 25 mL prescribed is within it; 10 mL (stopped for a reaction)
    is LESS THAN PRESCRIBED, recorded only with its reason, and flagged where the clinician looks."""
    whole, short = prescribed_bag(db_session), prescribed_bag(db_session)  # 25 mL prescribed from each
    nurse = client_as("nurse")
    urls = []
    for ward in (whole, short):
        page = nurse.post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token},
                          follow_redirects=True).get_data(as_text=True)
        check_id = int(page.split("/ward/checks/")[1].split("/confirm")[0])
        nurse.post(f"/ward/checks/{check_id}/confirm",
                   data={"second_username": "nurse2", "second_password": PASSWORD, "checker_password": PASSWORD})
        urls.append(nurse.post(f"/ward/bags/{ward.bag_id}/infusion", data={"wristband": ward.wristband, "bag": ward.token})
                    .headers["Location"])
    assert nurse.post(f"{urls[0]}/end", data={"volume_ml": "23"}).status_code == 302  # 8 % short: within the band
    assert "THAN PRESCRIBED" not in nurse.get(urls[0]).get_data(as_text=True)

    refused = nurse.post(f"{urls[1]}/end", data={"volume_ml": "10"})
    assert refused.status_code == 422
    assert "10 mL is LESS than the 25 mL prescribed" in refused.get_data(as_text=True)
    assert "running" in nurse.get(urls[1]).get_data(as_text=True)  # nothing was recorded
    ended = nurse.post(f"{urls[1]}/end", data={"volume_ml": "10", "reason": "Stopped for a grade 2 reaction"})
    assert ended.status_code == 302
    assert "LESS THAN PRESCRIBED: tell the clinician" in nurse.get(urls[1]).get_data(as_text=True)
    event = db_session.scalar(select(CustodyEvent).where(CustodyEvent.bag_id == short.bag_id,
                                                         CustodyEvent.kind == "infusion_ended"))
    assert '"under_prescription": true' in event.details_json and "grade 2 reaction" in event.details_json
    db_session.rollback()
    patient_page = client_as("clinician").get(f"/patients/{short.patient_id}").get_data(as_text=True)
    assert "25 mL prescribed" in patient_page and "LESS THAN PRESCRIBED" in patient_page
    other = client_as("clinician").get(f"/patients/{whole.patient_id}").get_data(as_text=True)
    assert "25 mL prescribed" in other and "THAN PRESCRIBED" not in other


def test_no_bag_is_offered_for_a_prescription_from_a_lot_failed_late_or_a_donor_reopened(app, db_session):
    from mscbatch.donors.models import Donor
    from mscbatch.donors.services import record_result
    from mscbatch.lots.queries import available_bags
    from tests.integration.patient_factories import donor, lot_with_bags

    tech = user(db_session, "technician")
    failing = lot_with_bags(db_session, tech, donor(db_session, tech), status="conditional_release")[0].lot_id
    reopened_donor = db_session.get(Donor, approved_donor(db_session, "cord_eu"))
    reopened = lot_with_bags(db_session, tech, reopened_donor)[0].lot_id
    kept = lot_with_bags(db_session, tech, donor(db_session, tech))[0].lot_id
    _disposition(db_session, failing, "conditional_release", pending_tests="sterility")

    def offered() -> set[int]:
        return {lot.id for _bag, lot in available_bags(db_session, product_id="UC-MSC")}

    assert {failing, reopened, kept} <= offered()
    _sterility(db_session, failing, "positive")
    record_result(db_session, tech, reopened_donor.id, marker="anti_hiv_1_2", result="positive",
                  sample_date=DATES["cord_eu"][1], lab_reference="LATE-HIV")
    now = offered()
    assert kept in now and failing not in now and reopened not in now


def test_qa_confirming_a_late_oos_recalls_the_lot_and_the_report_names_the_patient(app, db_session, client_as):  # type: ignore[no-untyped-def]
    """A conditionally released lot is recalled, not rejected, when its late OOS is confirmed (DOMAIN.md 4:
    conditional_release -> released | recalled): its bags may be on the ward, and every patient must be told."""
    from mscbatch.recall.models import BagHold, Recall
    from mscbatch.recall.report import recall_report

    ward = prescribed_bag(db_session)
    _conditionally_released(db_session, ward)
    _sterility(db_session, ward.lot_id, "positive")
    [late] = oos.open_oos_of(db_session, ward.lot_id)
    late_id = late.id
    db_session.rollback()
    qa = client_as("qa")
    answer = qa.post(f"/release/oos/{late_id}", follow_redirects=True, data={
        "action": "confirm", "oos-investigation": "Positive culture confirmed: Staphylococcus epidermidis",
        "oos-password": PASSWORD, **seen(qa, ward.lot_id)})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert "The lot is RECALLED" in answer.get_data(as_text=True)
    db_session.expire_all()
    assert db_session.get(Lot, ward.lot_id).status == "recalled"
    recall = db_session.scalar(select(Recall).where(Recall.lot_id == ward.lot_id))
    assert recall is not None and recall.status == "active" and "OOS confirmed after release" in recall.reason
    held = set(db_session.scalars(select(BagHold.bag_id).where(BagHold.recall_id == recall.id)))
    assert set(ward.other_bag_ids) <= held
    report = recall_report(db_session, recall.id)
    assert ward.patient_id in {notice.patient.id for notice in report.notify}
    db_session.rollback()
    assert _scan(app, ward)["result"] == "STOP"


def test_a_conditionally_released_lot_is_not_rejected_and_a_wrong_password_there_costs_nothing(app, db_session, client_as):  # type: ignore[no-untyped-def]
    from mscbatch.auth.models import User

    ward = prescribed_bag(db_session)
    _conditionally_released(db_session, ward)
    db_session.rollback()
    qa = client_as("qa")
    assert "Sign: Rejected" not in qa.get(f"/release/lots/{ward.lot_id}").get_data(as_text=True)
    answer = qa.post(f"/release/lots/{ward.lot_id}/release", data={**seen(qa, ward.lot_id),
        "action": "reject", "release-password": "not my password", "release-justification": "contaminated"})
    assert answer.status_code == 409
    assert "is conditionally released: its bags may already be on a ward. It is not rejected but recalled" in \
        answer.get_data(as_text=True)
    db_session.expire_all()
    assert db_session.get(Lot, ward.lot_id).status == "conditional_release"
    assert db_session.scalar(select(User).where(User.username == "qa")).failed_logins == 0


def test_a_late_oos_on_a_lot_already_recalled_is_still_confirmed(app, db_session, client_as):  # type: ignore[no-untyped-def]
    """Review finding: once a donor recall had moved the lot to recalled, confirming its late OOS tried to reject
    it and failed, so the OOS stayed open for good."""
    from mscbatch.recall.services import start_recall
    from mscbatch.release.models import OosInvestigation

    ward = prescribed_bag(db_session)
    _conditionally_released(db_session, ward)
    _sterility(db_session, ward.lot_id, "positive")
    [late] = oos.open_oos_of(db_session, ward.lot_id)
    late_id = late.id
    start_recall(db_session, user(db_session, "qa"), scope="donor", target_id=db_session.get(Lot, ward.lot_id).donor_id,
                 reason="Late positive anti-HBc on the archived sample", password=PASSWORD)
    db_session.expire_all()
    assert db_session.get(Lot, ward.lot_id).status == "recalled"
    db_session.rollback()
    qa = client_as("qa")
    answer = qa.post(f"/release/oos/{late_id}", follow_redirects=True, data={
        "action": "confirm", "oos-investigation": "Positive culture confirmed: Staphylococcus epidermidis",
        "oos-password": PASSWORD, **seen(qa, ward.lot_id)})
    assert answer.status_code == 200 and "The lot is RECALLED" in answer.get_data(as_text=True)
    db_session.expire_all()
    assert db_session.get(OosInvestigation, late_id).status == "confirmed"
    assert db_session.get(Lot, ward.lot_id).status == "recalled"
