"""The donor eligibility engine with plain values (DOMAIN.md section 3; rule files in config/donor_rules/)."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mscbatch.core.donor_rules import Limit, Marker, Question, RequiredFact, RuleSet, load_all_donor_rule_sets
from mscbatch.core.eligibility import DonorFacts, MarkerResult, age_in_years, evaluate

RULES_DIR = Path(__file__).resolve().parents[2] / "config" / "donor_rules"
RULE_SETS = load_all_donor_rule_sets(RULES_DIR)
ADIPOSE, MARROW, CORD = RULE_SETS["adipose_at_don"], RULE_SETS["marrow_ssc_bm"], RULE_SETS["cord_eu"]
COLLECTION = date(2024, 3, 15)


def day(offset: int) -> date:
    return COLLECTION + timedelta(days=offset)


def born_aged(years: int) -> date:
    """A date of birth giving exactly `years` whole years on the collection date (birthday that day)."""
    return COLLECTION.replace(year=COLLECTION.year - years)


def good_offset(rule_set: RuleSet, marker: Marker) -> int:
    window = marker.window or rule_set.sample_window
    return 0 if window.from_days <= 0 <= window.to_days else window.to_days


def result(rule_set: RuleSet, marker_id: str, value: str, offset: int | None = None) -> MarkerResult:
    marker = rule_set.marker(marker_id)
    assert marker is not None
    return MarkerResult(marker.id, marker.method, value, day(good_offset(rule_set, marker) if offset is None else offset))


def eligible_facts(rule_set: RuleSet, **changes: object) -> DonorFacts:
    """A donor meeting every criterion of `rule_set`: complete negative panel, every answer "no"."""
    relationship = next((f.allowed[0] for f in rule_set.required_facts if f.kind == "relationship"), None)
    facts = DonorFacts(
        collection_date=COLLECTION, date_of_birth=born_aged(40), sex="female", weight_kg=Decimal("70"),
        consent_signed=True, social_security=True, relationship=relationship, childbearing_potential=True,
        contraception=True, results=tuple(result(rule_set, m.id, "negative") for m in rule_set.markers if m.required),
        answers={q.id: False for q in rule_set.questions},
    )
    return replace(facts, **changes)


def with_results(rule_set: RuleSet, *extra: MarkerResult, **changes: object) -> DonorFacts:
    facts = eligible_facts(rule_set, **changes)
    return replace(facts, results=(*facts.results, *extra))


# --- The scenarios of the issue -------------------------------------------------------------------

@pytest.mark.parametrize("rule_set_id", sorted(RULE_SETS))
def test_a_complete_negative_panel_with_no_exclusion_is_eligible(rule_set_id: str) -> None:
    rule_set = RULE_SETS[rule_set_id]
    decision = evaluate(rule_set, eligible_facts(rule_set))
    assert decision.status == "eligible", decision.blocking_reasons
    assert {item.colour for item in decision.checklist} == {"green"}
    assert len(decision.checklist) == len(decision.reasons)
    assert (decision.ruleset_id, decision.ruleset_version, decision.ruleset_sha256) == (
        rule_set.id, rule_set.version, rule_set.sha256)


def test_adipose_donor_weighing_48_kg_is_ineligible() -> None:
    decision = evaluate(ADIPOSE, eligible_facts(ADIPOSE, weight_kg=Decimal("48")))
    assert decision.status == "ineligible"
    reason = decision.reason_for("limit.min_weight")
    assert reason.outcome == "failed" and reason.values["value"] == "48" and "below the minimum of 50 kg" in reason.text
    assert reason.source == "AT-DON"


def test_adipose_donor_weighing_exactly_50_kg_is_not_excluded_by_weight() -> None:
    decision = evaluate(ADIPOSE, eligible_facts(ADIPOSE, weight_kg=Decimal("50.0")))
    assert decision.reason_for("limit.min_weight").outcome == "met"
    assert decision.status == "eligible"


def test_familial_marrow_donor_aged_66_is_ineligible() -> None:
    decision = evaluate(MARROW, eligible_facts(MARROW, date_of_birth=born_aged(66)))
    assert decision.status == "ineligible"
    assert decision.reason_for("limit.age").values["value"] == "66"


def test_familial_marrow_donor_aged_exactly_65_is_eligible() -> None:
    assert evaluate(MARROW, eligible_facts(MARROW, date_of_birth=born_aged(65))).status == "eligible"


def test_marrow_donor_whose_66th_birthday_is_the_day_after_collection_is_still_65() -> None:
    dob = born_aged(66) + timedelta(days=1)
    assert age_in_years(dob, COLLECTION) == 65
    assert evaluate(MARROW, eligible_facts(MARROW, date_of_birth=dob)).status == "eligible"


def test_age_counts_whole_years_and_a_29_february_birthday_comes_on_1_march() -> None:
    assert age_in_years(date(2000, 2, 29), date(2018, 2, 28)) == 17
    assert age_in_years(date(2000, 2, 29), date(2018, 3, 1)) == 18


def test_marrow_donor_with_xylocaine_allergy_is_ineligible() -> None:
    facts = eligible_facts(MARROW, answers={**eligible_facts(MARROW).answers, "xylocaine_allergy": True})
    decision = evaluate(MARROW, facts)
    assert decision.status == "ineligible"
    assert decision.reason_for("question.xylocaine_allergy").source == "SSc-BM exclusion 1"


@pytest.mark.parametrize("marker_id", ["hev", "cmv_igm"])
def test_adipose_donor_positive_for_hev_or_cmv_igm_is_ineligible(marker_id: str) -> None:
    decision = evaluate(ADIPOSE, with_results(ADIPOSE, result(ADIPOSE, marker_id, "positive")))
    assert decision.status == "ineligible"
    assert decision.reason_for(f"marker.{marker_id}").outcome == "failed"


def test_anti_hbc_positive_hbsag_negative_is_pending_for_risk_assessment_under_eu_cord_rules() -> None:
    decision = evaluate(CORD, with_results(CORD, result(CORD, "anti_hbc", "positive")))
    assert decision.status == "pending"
    reason = decision.reason_for("marker.anti_hbc")
    assert reason.outcome == "risk_assessment" and "risk assessment" in reason.text
    assert decision.reason_for("marker.hbsag").outcome == "met"
    assert decision.checklist[decision.reasons.index(reason)].colour == "grey"


def test_anti_hbc_positive_hbsag_negative_is_ineligible_under_at_don() -> None:
    decision = evaluate(ADIPOSE, with_results(ADIPOSE, result(ADIPOSE, "anti_hbc", "positive")))
    assert decision.status == "ineligible"


def test_anti_hbc_positive_with_hbsag_positive_is_ineligible_under_eu_cord_rules() -> None:
    facts = with_results(CORD, result(CORD, "anti_hbc", "positive"), result(CORD, "hbsag", "positive"))
    assert evaluate(CORD, facts).status == "ineligible"


def test_marrow_donor_sampled_35_days_before_collection_is_pending_not_negative() -> None:
    facts = eligible_facts(MARROW)
    late = tuple(replace(r, sample_date=day(-35)) if r.marker == "anti_hcv" else r for r in facts.results)
    decision = evaluate(MARROW, replace(facts, results=late))
    assert decision.status == "pending"
    reason = decision.reason_for("marker.anti_hcv")
    assert reason.outcome == "missing"
    assert day(-35).isoformat() in reason.text and COLLECTION.isoformat() in reason.text
    assert "outside" in reason.text and "not negative" in reason.text


def test_an_out_of_window_positive_excludes_where_its_rule_says_so_and_is_flagged_where_it_asks_a_risk_assessment(
        ) -> None:
    # review 4: HBsAg positive excludes (on_positive = ineligible) wherever its sample falls; it was only "missing"
    facts = eligible_facts(MARROW)
    results = tuple(r for r in facts.results if r.marker != "hbsag") + (result(MARROW, "hbsag", "positive", -40),)
    reason = evaluate(MARROW, replace(facts, results=results)).reason_for("marker.hbsag")
    assert reason.outcome == "failed" and "POSITIVE" in reason.text and "excludes the donor" in reason.text
    results = tuple(r for r in facts.results if r.marker != "anti_hbc") + (result(MARROW, "anti_hbc", "positive", -40),)
    reason = evaluate(MARROW, replace(facts, results=results)).reason_for("marker.anti_hbc")
    assert reason.outcome == "missing" and "POSITIVE" in reason.text


# --- Sample windows and several results --------------------------------------------------------------

def test_adipose_sample_20_days_before_collection_counts_only_with_nat_or_180_day_retest() -> None:
    early = tuple(replace(r, sample_date=day(-20)) for r in eligible_facts(ADIPOSE).results)
    facts = eligible_facts(ADIPOSE, results=early)
    assert evaluate(ADIPOSE, facts).status == "pending"
    nat = tuple(result(ADIPOSE, m, "negative", -20) for m in ("hiv_nat", "hbv_nat", "hcv_nat"))
    decision = evaluate(ADIPOSE, replace(facts, results=early + nat))
    assert decision.status == "eligible" and "NAT panel negative" in decision.reason_for("marker.hev").values["window"]
    assert evaluate(ADIPOSE, replace(facts, results=early + nat[:2])).status == "pending"


def test_the_180_day_retest_opens_the_wider_window_only_once_its_negative_results_are_recorded() -> None:
    early = tuple(replace(r, sample_date=day(-25)) for r in eligible_facts(ADIPOSE).results)
    declared = eligible_facts(ADIPOSE, results=early, retest_180_days_negative=True)
    decision = evaluate(ADIPOSE, declared)  # a ticked box months before the retest can exist
    assert decision.status == "pending"
    assert "not all recorded negative" in decision.reason_for("marker.hev").values["window"]
    retested = [m.id for m in ADIPOSE.markers if m.required and m.window is None]
    retest = tuple(result(ADIPOSE, marker, "negative", 181) for marker in retested)
    decision = evaluate(ADIPOSE, replace(declared, results=early + retest))
    assert decision.status == "eligible"
    assert "180-day retest negative" in decision.reason_for("marker.hev").values["window"]
    assert evaluate(ADIPOSE, replace(declared, results=early + retest[:-1])).status == "pending"  # one missing
    too_soon = tuple(replace(r, sample_date=day(179)) for r in retest)
    assert evaluate(ADIPOSE, replace(declared, results=early + too_soon)).status == "pending"
    positive = retest[:-1] + (replace(retest[-1], result="positive"),)
    assert evaluate(ADIPOSE, replace(declared, results=early + positive)).status != "eligible"


def test_a_later_in_window_negative_supersedes_an_earlier_indeterminate() -> None:
    facts = with_results(MARROW, result(MARROW, "anti_hcv", "indeterminate", -20))
    assert evaluate(MARROW, facts).status == "eligible"


def test_a_later_indeterminate_leaves_the_donor_pending() -> None:
    decision = evaluate(MARROW, with_results(MARROW, result(MARROW, "anti_hcv", "indeterminate", 0),
                                             result(MARROW, "anti_hcv", "negative", -20)))
    assert decision.status == "pending" and "indeterminate" in decision.reason_for("marker.anti_hcv").text


def test_a_positive_and_a_negative_on_the_same_day_count_as_positive() -> None:
    assert evaluate(MARROW, with_results(MARROW, result(MARROW, "hbsag", "positive"))).status == "ineligible"


def test_an_earlier_positive_followed_by_a_negative_excludes_or_needs_a_risk_assessment_as_its_rule_says() -> None:
    # review 4: HBsAg positive excludes (on_positive = ineligible): a later negative does not clear it
    decision = evaluate(MARROW, with_results(MARROW, result(MARROW, "hbsag", "positive", -20)))
    assert decision.status == "ineligible"
    assert decision.reason_for("marker.hbsag").outcome == "failed"
    decision = evaluate(MARROW, with_results(MARROW, result(MARROW, "anti_hbc", "positive", -20)))
    assert decision.status == "pending"
    assert decision.reason_for("marker.anti_hbc").outcome == "risk_assessment"


def test_results_for_markers_the_rule_set_does_not_list_are_reported_but_not_counted() -> None:
    stray = MarkerResult("cmv_igm", "serology", "positive", COLLECTION)
    decision = evaluate(MARROW, with_results(MARROW, stray))
    assert decision.status == "eligible" and decision.unjudged_results == (stray,)


def test_an_unknown_collection_date_leaves_markers_and_age_pending() -> None:
    decision = evaluate(MARROW, eligible_facts(MARROW, collection_date=None))
    assert decision.status == "pending"
    assert decision.reason_for("limit.age").outcome == "missing"
    assert decision.reason_for("marker.hbsag").outcome == "missing"


def test_a_male_marrow_donor_needs_no_contraception() -> None:
    facts = eligible_facts(MARROW, sex="male", childbearing_potential=None, contraception=None)
    assert evaluate(MARROW, facts).status == "eligible"


def test_a_marker_result_outside_the_vocabulary_is_refused() -> None:
    with pytest.raises(ValueError):
        MarkerResult("hbsag", "serology", "weak positive", COLLECTION)


# --- Every criterion of every rule file is exercised ------------------------------------------------

def _cases(kind: str) -> list[tuple[str, str]]:
    """Every criterion that excludes or holds up a donor on its own (a question with excludes = false does neither:
    it decides which markers are required, tested on its own below)."""
    return [(rs.id, c.rule_id) for rs in RULE_SETS.values() for c in rs.criteria()
            if kind in ("any", type(c).__name__) and getattr(c, "excludes", True)]


def _criterion(rule_set_id: str, rule_id: str) -> tuple[RuleSet, object]:
    rule_set = RULE_SETS[rule_set_id]
    return rule_set, next(c for c in rule_set.criteria() if c.rule_id == rule_id)


def failing(rule_set: RuleSet, criterion: object) -> list[DonorFacts]:
    """Otherwise-eligible donors that break `criterion` (both sides of a range)."""
    facts = eligible_facts(rule_set)
    if isinstance(criterion, Marker):
        return [replace(facts, results=(*facts.results, result(rule_set, criterion.id, "positive")))]
    if isinstance(criterion, Question):
        return [replace(facts, answers={**facts.answers, criterion.id: True})]
    if isinstance(criterion, Limit):
        step, out = (Decimal("0.1"), []) if criterion.quantity == "weight" else (Decimal(1), [])
        for bound, sign in ((criterion.min, -1), (criterion.max, 1)):
            if bound is not None:
                value = bound + sign * step
                out.append(replace(facts, weight_kg=value) if criterion.quantity == "weight"
                           else replace(facts, date_of_birth=born_aged(int(value))))
        return out
    assert isinstance(criterion, RequiredFact)
    field_name = {"consent": "consent_signed", "social_security": "social_security", "contraception": "contraception"}
    if criterion.kind == "relationship":
        return [replace(facts, relationship="friend")]
    return [replace(facts, **{field_name[criterion.kind]: False})]


def unknown(rule_set: RuleSet, criterion: object) -> DonorFacts:
    """An otherwise-eligible donor for whom `criterion` cannot be judged yet."""
    facts = eligible_facts(rule_set)
    if isinstance(criterion, Marker):
        kept = tuple(r for r in facts.results if r.marker != criterion.id)
        return replace(facts, results=(*kept, result(rule_set, criterion.id, "indeterminate")))
    if isinstance(criterion, Question):
        return replace(facts, answers={**facts.answers, criterion.id: None})
    if isinstance(criterion, Limit):
        return replace(facts, weight_kg=None) if criterion.quantity == "weight" else replace(facts, date_of_birth=None)
    assert isinstance(criterion, RequiredFact)
    return replace(facts, **{{"consent": "consent_signed", "relationship": "relationship",
                              "social_security": "social_security", "contraception": "contraception"}[criterion.kind]: None})


@pytest.mark.parametrize(("rule_set_id", "rule_id"), _cases("any"))
def test_breaking_any_single_criterion_makes_an_eligible_donor_not_eligible(rule_set_id: str, rule_id: str) -> None:
    rule_set, criterion = _criterion(rule_set_id, rule_id)
    expected = "pending" if getattr(criterion, "on_positive", "") == "risk_assessment" else "ineligible"
    for facts in failing(rule_set, criterion):
        decision = evaluate(rule_set, facts)
        assert decision.status == expected
        assert [r.rule_id for r in decision.blocking_reasons] == [rule_id]
        assert decision.reason_for(rule_id).outcome in ("failed", "risk_assessment")


@pytest.mark.parametrize(("rule_set_id", "rule_id"), _cases("any"))
def test_leaving_any_single_criterion_unknown_makes_the_decision_pending(rule_set_id: str, rule_id: str) -> None:
    rule_set, criterion = _criterion(rule_set_id, rule_id)
    decision = evaluate(rule_set, unknown(rule_set, criterion))
    assert decision.status == "pending"
    assert [(r.rule_id, r.outcome) for r in decision.blocking_reasons] == [(rule_id, "missing")]
    assert next(i for i in decision.checklist if i.rule_id == rule_id).colour == "grey"


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.data())
def test_adding_any_positive_mandatory_marker_to_an_eligible_donor_never_yields_eligible(data: st.DataObject) -> None:
    rule_set = RULE_SETS[data.draw(st.sampled_from(sorted(RULE_SETS)))]
    marker = data.draw(st.sampled_from([m for m in rule_set.markers if m.required]))
    positive = result(rule_set, marker.id, "positive", data.draw(st.integers(-400, 400)))
    negatives = [result(rule_set, marker.id, "negative", o) for o in data.draw(st.lists(st.integers(-60, 60), max_size=3))]
    facts = eligible_facts(rule_set)
    results = data.draw(st.permutations([*facts.results, *negatives, positive]))
    decision = evaluate(rule_set, replace(facts, results=tuple(results)))
    assert decision.status != "eligible"
    assert decision.reason_for(marker.rule_id).outcome != "met"


# --- HTLV-I/II for a high-prevalence origin (EU 2006/17/EC Annex II 1.2) ---------------------------------------

def test_cord_htlv_is_required_while_the_mothers_origin_is_yes_or_not_answered() -> None:
    origin = "htlv_high_prevalence_origin"
    no = eligible_facts(CORD)  # every question answered "no", no HTLV result
    assert no.answers[origin] is False and evaluate(CORD, no).status == "eligible"
    yes = replace(no, answers={**no.answers, origin: True})
    decision = evaluate(CORD, yes)  # "yes" excludes nobody: it makes the test required
    assert decision.status == "pending"
    assert decision.reason_for(f"question.{origin}").outcome == "met"
    assert decision.reason_for("marker.htlv_1_2").outcome == "missing"
    unknown = replace(no, answers={k: v for k, v in no.answers.items() if k != origin})
    assert evaluate(CORD, unknown).reason_for("marker.htlv_1_2").outcome == "missing"  # not asked: the safe side
    tested = replace(yes, results=yes.results + (result(CORD, "htlv_1_2", "negative"),))
    assert evaluate(CORD, tested).status == "eligible"
    positive = replace(yes, results=yes.results + (result(CORD, "htlv_1_2", "positive"),))
    assert evaluate(CORD, positive).status == "ineligible"


def test_a_marker_required_if_an_unknown_or_excluding_question_is_a_configuration_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from mscbatch.core.donor_rules import ConfigError, load_donor_rule_set
    from mscbatch.paths import config_dir

    text = (config_dir() / "donor_rules" / "cord_eu.toml").read_text()
    broken = tmp_path / "cord.toml"
    broken.write_text(text.replace('required_if = "htlv_high_prevalence_origin"', 'required_if = "malignancy"'))
    with pytest.raises(ConfigError, match="required_if"):
        load_donor_rule_set(broken)
