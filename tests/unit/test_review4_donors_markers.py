"""Review 4: a positive on record is judged as the marker's own rule says (on_positive), whatever follows it.

EU 2006/17/EC Annex II allows a risk assessment only for anti-HBc+ / HBsAg- and a reactive treponemal test; every
other positive excludes. A later negative (or indeterminate) never turns an excluding positive into "pending: risk
assessment", and an out-of-window positive with no sample in the window is not merely "missing".
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from mscbatch.core.donor_rules import RuleSet
from mscbatch.core.eligibility import evaluate
from tests.unit.test_eligibility import RULE_SETS, eligible_facts, good_offset, result

MARKERS = [(rs.id, m.id) for rs in RULE_SETS.values() for m in rs.markers]


def _marker(rule_set_id: str, marker_id: str) -> tuple[RuleSet, object]:
    rule_set = RULE_SETS[rule_set_id]
    return rule_set, rule_set.marker(marker_id)


def _without(rule_set: RuleSet, marker_id: str) -> tuple:
    return tuple(r for r in eligible_facts(rule_set).results if r.marker != marker_id)


@pytest.mark.parametrize(("rule_set_id", "marker_id"), MARKERS)
def test_a_positive_followed_by_a_negative_is_judged_as_the_rule_says(rule_set_id: str, marker_id: str) -> None:
    rule_set, marker = _marker(rule_set_id, marker_id)
    good = good_offset(rule_set, marker)
    results = (*_without(rule_set, marker_id), result(rule_set, marker_id, "positive", good - 1),
               result(rule_set, marker_id, "negative", good))
    decision = evaluate(rule_set, replace(eligible_facts(rule_set), results=results))
    reason = decision.reason_for(marker.rule_id)
    if marker.on_positive == "ineligible":
        assert (decision.status, reason.outcome) == ("ineligible", "failed"), reason.text
        assert "excludes the donor" in reason.text and "corrected on the donor page, its marker kept" in reason.text
    else:
        assert (decision.status, reason.outcome) == ("pending", "risk_assessment"), reason.text


@pytest.mark.parametrize(("rule_set_id", "marker_id"), MARKERS)
def test_a_positive_followed_by_an_indeterminate_is_judged_as_the_rule_says(rule_set_id: str, marker_id: str) -> None:
    rule_set, marker = _marker(rule_set_id, marker_id)
    good = good_offset(rule_set, marker)
    results = (*_without(rule_set, marker_id), result(rule_set, marker_id, "positive", good - 1),
               result(rule_set, marker_id, "indeterminate", good))
    reason = evaluate(rule_set, replace(eligible_facts(rule_set), results=results)).reason_for(marker.rule_id)
    assert reason.outcome == ("failed" if marker.on_positive == "ineligible" else "missing"), reason.text


@pytest.mark.parametrize(("rule_set_id", "marker_id"), MARKERS)
def test_an_out_of_window_positive_alone_is_judged_as_the_rule_says(rule_set_id: str, marker_id: str) -> None:
    rule_set, marker = _marker(rule_set_id, marker_id)
    results = (*_without(rule_set, marker_id), result(rule_set, marker_id, "positive", -400))
    decision = evaluate(rule_set, replace(eligible_facts(rule_set), results=results))
    reason = decision.reason_for(marker.rule_id)
    if marker.on_positive == "ineligible":
        assert (decision.status, reason.outcome) == ("ineligible", "failed"), reason.text
    else:  # still needs a sample in the window: never approvable on a risk assessment alone
        assert (decision.status, reason.outcome) == ("pending", "missing"), reason.text
    assert "POSITIVE" in reason.text


@pytest.mark.parametrize(("rule_set_id", "marker_id"), MARKERS)
def test_a_negative_alone_still_meets_the_rule(rule_set_id: str, marker_id: str) -> None:
    rule_set, marker = _marker(rule_set_id, marker_id)
    results = (*_without(rule_set, marker_id), result(rule_set, marker_id, "negative"))
    decision = evaluate(rule_set, replace(eligible_facts(rule_set), results=results))
    assert decision.status == "eligible" and decision.reason_for(marker.rule_id).outcome == "met"


@pytest.mark.parametrize("offset", [-1, 1])
def test_a_sample_one_day_from_collection_is_said_one_day_not_one_days(offset: int) -> None:
    """Session 44 review: "+1 days from collection" on the checklist."""
    for rule_set in RULE_SETS.values():
        marker = next((m for m in rule_set.markers if m.required and m.on_positive == "ineligible"
                       and (m.window or rule_set.sample_window).from_days <= offset
                       <= (m.window or rule_set.sample_window).to_days), None)
        if marker is None:
            continue
        results = (*_without(rule_set, marker.id), result(rule_set, marker.id, "positive", offset))
        text = evaluate(rule_set, replace(eligible_facts(rule_set), results=results)).reason_for(marker.rule_id).text
        assert f"{offset:+d} day from collection" in text and "days from collection" not in text, text
        return
    pytest.fail(f"no rule set has a required marker whose window holds {offset:+d} days")
