"""Review 13 (donors): a positive on an excluding marker excludes even when no collection date is recorded.

The engine's rule (eligibility_markers.py) is that a positive for a marker whose rule says a positive excludes
(anti-HIV, HBsAg, NAT...) excludes the donor wherever its sample falls: no window, and so no collection date, is
needed to judge it. Without a collection date it was judged "missing" ("collection date not recorded, so the sample
window cannot be checked"): an anti-HIV-positive donor read "pending", grey in the checklist, as if a result were
merely awaited.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from mscbatch.core.donor_rules import load_all_donor_rule_sets
from mscbatch.core.eligibility import DonorFacts, MarkerResult, evaluate

RULE_SETS = load_all_donor_rule_sets(Path(__file__).resolve().parents[2] / "config" / "donor_rules")
SAMPLE = date(2026, 1, 2)


def _facts(rule_set_id: str, **results: str) -> DonorFacts:
    """Every criterion met but the collection date (not recorded yet); every required marker negative."""
    rule_set = RULE_SETS[rule_set_id]
    relationship = next((f.allowed[0] for f in rule_set.required_facts if f.kind == "relationship"), None)
    wanted = {m.id: "negative" for m in rule_set.markers if m.required} | results
    return DonorFacts(collection_date=None, date_of_birth=date(1980, 1, 1), sex="female", weight_kg=Decimal("70"),
                      consent_signed=True, social_security=True, relationship=relationship,
                      childbearing_potential=True, contraception=True,
                      results=tuple(MarkerResult(m, rule_set.marker(m).method, v, SAMPLE) for m, v in wanted.items()),
                      answers={q.id: False for q in rule_set.questions})


@pytest.mark.parametrize(("rule_set_id", "marker"), [
    ("adipose_at_don", "anti_hiv_1_2"), ("adipose_at_don", "hev"), ("adipose_at_don", "hiv_nat"),  # optional NAT
    ("marrow_ssc_bm", "hbsag"), ("marrow_ssc_bm", "hcv_nat"), ("cord_eu", "anti_hcv"), ("cord_eu", "htlv_1_2"),
])
def test_a_positive_that_excludes_excludes_without_a_collection_date(rule_set_id: str, marker: str) -> None:
    decision = evaluate(RULE_SETS[rule_set_id], _facts(rule_set_id, **{marker: "positive"}))
    assert decision.status == "ineligible"
    reason = decision.reason_for(f"marker.{marker}")
    assert reason is not None and reason.outcome == "failed"
    assert "POSITIVE" in reason.text and "excludes the donor" in reason.text
    assert dict(reason.values)["positive"] == SAMPLE.isoformat()


@pytest.mark.parametrize(("rule_set_id", "marker"), [("cord_eu", "anti_hbc"), ("cord_eu", "syphilis"),
                                                     ("marrow_ssc_bm", "anti_hbc")])
def test_a_positive_that_asks_a_risk_assessment_still_waits_for_the_collection_date(rule_set_id: str,
                                                                                    marker: str) -> None:
    decision = evaluate(RULE_SETS[rule_set_id], _facts(rule_set_id, **{marker: "positive"}))
    assert decision.status == "pending"
    assert decision.reason_for(f"marker.{marker}").outcome == "missing"


def test_negatives_and_indeterminates_without_a_collection_date_stay_missing() -> None:
    facts = _facts("adipose_at_don", hev="indeterminate")
    decision = evaluate(RULE_SETS["adipose_at_don"], facts)
    assert decision.status == "pending"
    assert {r.outcome for r in decision.reasons if r.rule_id.startswith("marker.")} == {"missing"}
    # and once the collection date is recorded, the same positive is judged as before
    dated = replace(_facts("adipose_at_don", anti_hcv="positive"), collection_date=SAMPLE)
    assert evaluate(RULE_SETS["adipose_at_don"], dated).reason_for("marker.anti_hcv").outcome == "failed"
