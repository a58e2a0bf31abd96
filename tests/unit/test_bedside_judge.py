"""The bedside check's judgement is pure: facts in, MATCHES or STOP with every failure out (no database).

The integration tests (tests/integration/test_bedside.py) drive the same rules through the web and the API;
these show the judgement alone sees every fact it needs, including several failures at once.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from mscbatch.custody.checks import BagFacts, judge
from mscbatch.lots.models import Bag, Lot
from mscbatch.patients.models import Patient
from mscbatch.release.queries import ReleaseState

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def _facts(**changes: object) -> BagFacts:
    bag = Bag(id=7, din="W000026000123", check_character="K", status="received", bag_number=1, bag_count=2,
              volume_ml=Decimal("20"), expires_at=NOW + timedelta(days=30), product_code="SX001V00")
    lot = Lot(id=3, lot_number="UC-2026-0001", product_id="UC-MSC", status="released")
    facts = BagFacts(bag=bag, lot=lot, release=ReleaseState.of("released", None, False, ()), donor_type="unrelated",
                     recipient_code=None, infused_at=None, hold=None, thawed_at=None, allocated_patient_id=11,
                     allocated_patient_code="LUP-001", donor_code="D-2026-0001", donor_clearance=None)
    return replace(facts, **changes)


PATIENT = Patient(id=11, code="LUP-001", wristband_id="WB-11", status="enrolled")
OTHER = Patient(id=12, code="LUP-002", wristband_id="WB-12", status="enrolled")


def codes(result: object) -> list[str]:
    return [f.code for f in result.failures]  # type: ignore[attr-defined]


def test_everything_right_matches() -> None:
    result = judge("WB-11", PATIENT, _facts(), None, NOW)
    assert result.matches and codes(result) == []


def test_every_failure_is_named_at_once() -> None:
    facts = _facts(hold="on hold by recall R-4")
    facts.bag.expires_at = NOW - timedelta(minutes=1)
    result = judge("WB-12", OTHER, facts, None, NOW)
    assert not result.matches
    # what makes the bag unfit for anyone comes first (session 45: the ward list shows the first reason alone), then
    # whose bag it is
    assert codes(result) == ["on_hold", "bag_expired", "wrong_patient"]
    wrong = result.failures[2].message
    assert "WRONG PATIENT" in wrong and "LUP-001" in wrong and "LUP-002" in wrong


def test_unknown_wristband_and_unknown_bag() -> None:
    result = judge("WB-99", None, None, "No bag W000026000999 exists in the unit's records.", NOW)
    assert codes(result) == ["unknown_wristband", "bag"]


def test_exceptional_release_only_for_its_patient() -> None:
    exceptional = ReleaseState.of("released", "LUP-001", True, ())
    assert judge("WB-11", PATIENT, _facts(release=exceptional), None, NOW).matches
    other = judge("WB-12", OTHER, _facts(release=exceptional, allocated_patient_id=12), None, NOW)
    assert codes(other) == ["exceptional_other"]


def test_already_infused_and_not_released() -> None:
    facts = _facts(infused_at=NOW - timedelta(hours=2), release=ReleaseState.of("quarantine", None, False, ()))
    facts.lot.status = "quarantine"
    assert codes(judge("WB-11", PATIENT, facts, None, NOW)) == ["already_infused", "not_released"]


def test_directed_donation_for_another_recipient() -> None:
    facts = _facts(donor_type="familial", recipient_code="SSC-009")
    assert codes(judge("WB-11", PATIENT, facts, None, NOW)) == ["directed_other"]


def test_a_bag_frozen_as_a_directed_product_stops_for_another_patient_whatever_products_toml_says_now() -> None:
    """Collection type 2 (directed) in the bag's own product code: the configuration may change, the bag does not."""
    facts = _facts(recipient_code="SSC-009")
    facts.bag.product_code = "SX0012A0"
    assert codes(judge("WB-11", PATIENT, facts, None, NOW)) == ["directed_other"]


def test_a_routine_instruction_never_comes_before_a_reason_never_to_give_it() -> None:
    facts = _facts(allocated_patient_id=12, allocated_patient_code="LUP-002")
    facts.bag.status = "dispatched"
    result = judge("WB-11", PATIENT, facts, None, NOW)
    assert codes(result) == ["wrong_patient", "not_on_ward"]
    assert result.failures[0].message.startswith("WRONG PATIENT")


def test_a_test_failing_after_conditional_release_stops_the_bag() -> None:
    late = ReleaseState.of("conditional_release", None, False, ("sterility",), ("sterility",))
    assert not late.released and "NOT FOR USE" in late.flag
    facts = _facts(release=late)
    facts.lot.status = "conditional_release"
    result = judge("WB-11", PATIENT, facts, None, NOW)
    assert codes(result) == ["late_oos"]
    assert "FAILED after its conditional release (sterility)" in result.failures[0].message
    assert not result.notes  # not also "still pending"
    still_pending = _facts(release=ReleaseState.of("conditional_release", None, False, ("sterility",)))
    still_pending.lot.status = "conditional_release"
    assert judge("WB-11", PATIENT, still_pending, None, NOW).matches


def test_a_donor_reopened_after_release_stops_the_bag() -> None:
    for verdict, words in (("reopened", "UNDER REVIEW"), ("ineligible", "NOT ELIGIBLE"),
                           ("not_approved_yet", "NOT APPROVED yet")):
        result = judge("WB-11", PATIENT, _facts(donor_clearance=verdict), None, NOW)
        assert codes(result) == ["donor_not_cleared"]
        assert words in result.failures[0].message and "D-2026-0001" in result.failures[0].message


# ---- the age of the dose's weight on the day of infusion -----------------------------------------------------

def test_a_dose_weight_older_than_the_protocol_allows_stops_the_bag() -> None:
    from datetime import date

    from mscbatch.patients.queries import WeightSincePrescription

    patient = Patient(id=11, code="LUP-001", wristband_id="WB-11", protocol_id="protocol-sle-uc",
                      status="enrolled")  # 7 days
    today = date(2026, 11, 22)  # NOW, 03:00 UTC, is 22 Nov at the site
    assert judge("WB-11", patient, _facts(prescribed_weight_on=today - timedelta(days=7)), None, NOW).matches
    old = _facts(prescribed_weight_on=today - timedelta(days=8))
    result = judge("WB-11", patient, old, None, NOW)
    assert codes(result) == ["weight_too_old"]
    assert "WEIGHT TOO OLD" in result.failures[0].message and "8 days ago" in result.failures[0].message
    assert "within 7 days" in result.failures[0].message
    renewed = WeightSincePrescription(Decimal("62.5"), today - timedelta(days=8), Decimal("62.7"), today, ())
    assert judge("WB-11", patient, replace(old, weight_change=renewed), None, NOW).matches  # weighed again: same dose
    changed = replace(renewed, problems=("the dose would be outside its band",))
    assert codes(judge("WB-11", patient, replace(old, weight_change=changed), None, NOW)) == ["weight_changed"]
    assert codes(judge("WB-11", OTHER, old, None, NOW)) == ["wrong_patient"]  # its weight is not this patient's
    unknown = Patient(id=11, code="LUP-001", wristband_id="WB-11", protocol_id="protocol-gone",
                      status="enrolled")
    assert codes(judge("WB-11", unknown, old, None, NOW)) == ["weight_too_old"]  # cannot check: stop, do not guess


def test_the_post_thaw_limit_is_one_judgement_for_the_bedside_the_label_page_and_the_exports() -> None:
    """custody.checks.past_post_thaw_limit: the bedside's post_thaw STOP, the label verification page and the FHIR
    and CSV exports all ask it, so that none says "available" of a bag the bedside refuses. Past the limit means
    after it: at the deadline itself the bag may still be given."""
    from mscbatch.custody.checks import past_post_thaw_limit

    facts = _facts()
    bag, lot = facts.bag, facts.lot
    bag.status = "thawed"
    limit = timedelta(minutes=60)  # UC-MSC in config/products.toml
    thawed = NOW - limit
    assert past_post_thaw_limit(bag, lot, thawed, NOW) is None
    assert past_post_thaw_limit(bag, lot, thawed, NOW + timedelta(seconds=1)) == limit
    assert past_post_thaw_limit(bag, lot, None, NOW) is None
    bag.status = "infused"  # judged by its infusion, not by this
    assert past_post_thaw_limit(bag, lot, thawed, NOW + timedelta(hours=1)) is None


def test_another_patients_bag_not_on_the_ward_sends_no_errand_and_says_what_to_do() -> None:
    """Tablet walkthrough, session 33: WRONG PATIENT said whose bag it was but not what to do, and the line below it
    told the nurse to "Ask the unit to send it", for a bag that is not this patient's."""
    facts = _facts()
    facts.bag.status = "allocated"
    wrong = judge("WB-12", OTHER, facts, None, NOW)
    assert codes(wrong) == ["wrong_patient", "not_on_ward"]
    assert "Do not give it to LUP-002: put it aside and call the cell therapy unit." in wrong.failures[0].message
    assert "Ask the unit" not in wrong.failures[1].message
    assert "the records say it is at the cell therapy unit" in wrong.failures[1].message
    own = judge("WB-11", PATIENT, facts, None, NOW)  # the patient's own bag: the errand stays
    assert codes(own) == ["not_on_ward"] and "Ask the unit to send it" in own.failures[0].message


def test_a_bag_whose_prescription_was_stopped_is_not_said_never_prescribed() -> None:
    """Tablet walkthrough, session 33: a check reopened after the course was stopped said "no signed prescription",
    which was false: it was signed, then stopped."""
    result = judge("WB-11", PATIENT, _facts(allocated_patient_id=None, allocated_patient_code=None), None, NOW)
    assert codes(result) == ["not_prescribed"]
    assert "no signed prescription" not in result.failures[0].message
    assert "never prescribed, or its prescription was stopped or cancelled" in result.failures[0].message
