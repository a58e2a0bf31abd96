"""Verdicts, lot status, endotoxin K/M and release readiness (mscbatch.core.verdicts): plain values only."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from mscbatch.core.release_spec import ReleaseSpec, ReleaseTest, load_release_spec
from mscbatch.core.verdicts import (
    LabResult,
    LotStatus,
    VerdictStatus,
    can_release,
    current_result,
    endotoxin_km_limit,
    judge_endotoxin_dose,
    judge_lot,
    judge_test,
)

SPEC_DIR = Path(__file__).resolve().parents[2] / "config" / "release_specs"
DEFAULT = load_release_spec(SPEC_DIR / "msc_default_v1.toml")
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def result(test_id: str, value: Decimal | int | str, minutes: int = 0, invalidated: bool = False) -> LabResult:
    unit = DEFAULT.test(test_id).unit
    return LabResult(test_id, value, unit, T0 + timedelta(minutes=minutes), invalidated)


def passing_value(test: ReleaseTest) -> Decimal | str:
    if test.pass_result is not None:
        return test.pass_result
    if test.kind == "minimum":
        assert test.min is not None
        return test.min + 1 if test.strict else test.min
    if test.kind in ("maximum", "range"):
        return test.min if test.min is not None else Decimal(0)
    return Decimal(1)


def failing_value(test: ReleaseTest) -> Decimal | str:
    if test.fail_result is not None:
        return test.fail_result
    if test.kind == "minimum":
        assert test.min is not None
        return test.min - 1
    assert test.kind == "maximum" and test.max is not None
    return test.max if test.strict else test.max + 1


def all_passing(spec: ReleaseSpec = DEFAULT, skip: frozenset[str] = frozenset()) -> list[LabResult]:
    return [LabResult(t.id, passing_value(t), t.unit, T0) for t in spec.tests if t.id not in skip]


def allowed(lot_results: list[LabResult], **overrides: object) -> list[str]:
    facts: dict[str, object] = dict(donor_approved=True, open_oos=0, releaser_entered_results=False,
                                    releaser_recorded_manufacture=False)
    facts.update(overrides)
    return can_release(judge_lot(DEFAULT, lot_results).verdicts, **facts)  # type: ignore[arg-type]


@pytest.mark.parametrize("test", DEFAULT.tests, ids=lambda t: t.id)
def test_every_default_spec_test_passes_a_conforming_value_and_fails_a_nonconforming_one(test: ReleaseTest) -> None:
    good = judge_test(test, [LabResult(test.id, passing_value(test), test.unit, T0)])
    bad = judge_test(test, [LabResult(test.id, failing_value(test), test.unit, T0)])
    if test.blocking:
        assert (good.status, bad.status) == (VerdictStatus.PASS, VerdictStatus.FAIL)
        assert bad.reason.startswith(f"{test.name} failed (")
    else:
        assert (good.status, bad.status) == (VerdictStatus.INFORMATIVE, VerdictStatus.INFORMATIVE)
        assert (good.meets_limit, bad.meets_limit) == (True, False)


def test_cd105_at_94_6_percent_fails_and_the_lot_fails_with_that_reason() -> None:
    lot = judge_lot(DEFAULT, [*all_passing(skip=frozenset({"cd105"})), result("cd105", "94.6")])
    assert lot.status is LotStatus.FAIL
    assert lot.blocking_reasons == ("CD105 failed (94.6 % < 95 %)",)


def test_hla_dr_at_3_percent_fails_when_blocking() -> None:
    verdict = judge_test(DEFAULT.test("hla_dr"), [result("hla_dr", "3")])
    assert verdict.status is VerdictStatus.FAIL
    assert verdict.reason == "HLA-DR failed (3 % > 2 %)"


def test_hla_dr_at_3_percent_is_informative_and_meets_its_limit_when_informative(tmp_path: Path) -> None:
    text = (SPEC_DIR / "msc_default_v1.toml").read_text(encoding="utf-8")
    path = tmp_path / "informative.toml"
    path.write_text(text.replace('variant = "blocking"', 'variant = "informative"'), encoding="utf-8")
    spec = load_release_spec(path)
    verdict = judge_test(spec.test("hla_dr"), [result("hla_dr", "3")])
    assert (verdict.status, verdict.blocking, verdict.meets_limit) == (VerdictStatus.INFORMATIVE, False, True)
    assert verdict.reason == "HLA-DR informative (3 % <= 20 %; meets its informative limit)"
    lot = judge_lot(spec, [*all_passing(spec, skip=frozenset({"hla_dr"})), result("hla_dr", "3")])
    assert lot.status is LotStatus.READY


def test_viability_of_69_9_percent_fails_at_a_70_percent_minimum() -> None:
    assert judge_test(DEFAULT.test("viability"), [result("viability", "69.9")]).status is VerdictStatus.FAIL


def test_viability_of_70_0_percent_passes_at_a_70_percent_minimum() -> None:
    verdict = judge_test(DEFAULT.test("viability"), [result("viability", "70.0")])
    assert (verdict.status, verdict.value_text) == (VerdictStatus.PASS, "70.0 %")


def test_an_informative_potency_failure_does_not_block_the_lot() -> None:
    lot = judge_lot(DEFAULT, [*all_passing(skip=frozenset({"potency_pbmc"})), result("potency_pbmc", "5")])
    assert lot.status is LotStatus.READY
    potency = next(v for v in lot.verdicts if v.test_id == "potency_pbmc")
    assert potency.meets_limit is False and "does not meet its informative limit" in potency.reason


def test_the_endotoxin_km_limit_for_70_kg_and_100_ml_over_1_hour_is_3_5_eu_per_ml() -> None:
    assert endotoxin_km_limit(Decimal(70), Decimal(100), Decimal(1)) == Decimal("3.5")


def test_4_eu_per_ml_fails_the_km_limit_for_70_kg_receiving_100_ml_over_1_hour() -> None:
    verdict = judge_endotoxin_dose(DEFAULT.test("endotoxin"), Decimal(4), "EU/mL", Decimal(70), Decimal(100), 1)
    assert (verdict.status, verdict.meets_limit) == (VerdictStatus.FAIL, False)
    assert verdict.reason.startswith("Endotoxin failed (4 EU/mL > 3.50 EU/mL")


def test_3_5_eu_per_ml_meets_the_same_km_limit() -> None:
    verdict = judge_endotoxin_dose(DEFAULT.test("endotoxin"), "3.5", "EU/mL", 70, 100, 1)
    assert verdict.status is VerdictStatus.PASS


def test_a_slower_infusion_raises_the_km_limit_but_a_faster_one_counts_as_one_hour() -> None:
    assert endotoxin_km_limit(70, 100, 2) == Decimal("7.00")
    assert endotoxin_km_limit(70, 100, Decimal("0.5")) == Decimal("3.50")


def test_the_km_limit_is_rounded_down_so_it_is_never_overstated() -> None:
    assert endotoxin_km_limit(Decimal("62.5"), 30, 1) == Decimal("10.41")


@pytest.mark.parametrize("bad", [(0, 100, 1), (70, 0, 1), (70, 100, 0), (-70, 100, 1)])
def test_a_km_limit_without_a_positive_weight_volume_and_duration_is_refused(bad: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match="must be above 0"):
        endotoxin_km_limit(*bad)


def test_the_current_result_is_the_latest_one_not_invalidated() -> None:
    first, retest = result("cd105", "94.6", 0, invalidated=True), result("cd105", "96", 60)
    assert current_result([retest, first]) is retest
    assert current_result([first]) is None


def test_a_retest_counts_once_the_oos_result_is_invalidated() -> None:
    verdict = judge_test(DEFAULT.test("cd105"), [result("cd105", "94.6", 0, True), result("cd105", "96", 60)])
    assert verdict.status is VerdictStatus.PASS and verdict.value_text == "96 %"


def test_a_valid_failing_result_is_not_hidden_by_a_later_passing_retest() -> None:
    verdict = judge_test(DEFAULT.test("cd105"), [result("cd105", "96", 60), result("cd105", "94.6", 0)])
    assert verdict.status is VerdictStatus.FAIL
    assert "stands until its OOS investigation invalidates it" in verdict.reason


def test_a_test_whose_every_result_was_invalidated_is_pending() -> None:
    verdict = judge_test(DEFAULT.test("sterility"), [result("sterility", "positive", 0, True)])
    assert verdict.status is VerdictStatus.PENDING
    assert "a valid retest is needed" in verdict.reason


def test_a_lot_with_every_blocking_test_passed_is_ready() -> None:
    lot = judge_lot(DEFAULT, all_passing())
    assert (lot.status, lot.blocking_reasons) == (LotStatus.READY, ())
    assert (lot.spec_id, lot.spec_version, lot.spec_sha256) == ("msc_default", "1", DEFAULT.sha256)


def test_a_lot_missing_its_sterility_result_is_pending() -> None:
    lot = judge_lot(DEFAULT, all_passing(skip=frozenset({"sterility"})))
    assert lot.status is LotStatus.PENDING
    assert lot.blocking_reasons == ("Sterility pending (no valid result yet)",)


def test_a_failure_outranks_a_pending_test_in_the_lot_status() -> None:
    results = [*all_passing(skip=frozenset({"sterility", "mycoplasma"})), result("mycoplasma", "detected")]
    assert judge_lot(DEFAULT, results).status is LotStatus.FAIL


def test_a_result_for_a_test_outside_the_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="not in release spec msc_default v1: cd200"):
        judge_lot(DEFAULT, [LabResult("cd200", Decimal(1), "percent", T0)])


def test_release_is_allowed_when_every_condition_holds() -> None:
    assert allowed(all_passing()) == []


def test_release_is_refused_while_a_blocking_test_is_pending() -> None:
    assert allowed(all_passing(skip=frozenset({"karyotype"}))) == ["Karyotype pending (no valid result yet)"]


def test_release_is_refused_when_a_blocking_test_failed() -> None:
    results = [*all_passing(skip=frozenset({"cd105"})), result("cd105", "94.6")]
    assert allowed(results) == ["CD105 failed (94.6 % < 95 %)"]


def test_release_is_refused_while_an_oos_is_open() -> None:
    assert allowed(all_passing(), open_oos=1) == ["an OOS is open"]
    assert allowed(all_passing(), open_oos=2) == ["2 OOS investigations are open"]


def test_release_is_refused_when_the_donor_is_not_approved() -> None:
    assert allowed(all_passing(), donor_approved=False) == ["donor eligibility not approved"]


def test_release_is_refused_to_the_person_who_entered_a_result() -> None:
    assert allowed(all_passing(), releaser_entered_results=True) == [
        "you entered results of this lot; another QA person must release it (segregation of duties, EU GMP ch. 2)"
    ]


def test_release_is_refused_to_the_person_who_recorded_the_manufacture() -> None:
    assert "you recorded the manufacture of this lot" in allowed(all_passing(), releaser_recorded_manufacture=True)[0]


def test_every_refusal_reason_is_listed_together() -> None:
    reasons = allowed(all_passing(skip=frozenset({"sterility"})), donor_approved=False, open_oos=1,
                      releaser_entered_results=True)
    assert len(reasons) == 4


def test_conditional_release_allows_the_named_pending_sterility_test() -> None:
    assert allowed(all_passing(skip=frozenset({"sterility"})), conditional_tests={"sterility"}) == []


def test_conditional_release_does_not_excuse_another_pending_test() -> None:
    results = all_passing(skip=frozenset({"sterility", "mycoplasma"}))
    assert allowed(results, conditional_tests={"sterility"}) == ["Mycoplasma pending (no valid result yet)"]


def test_conditional_release_refuses_a_test_the_spec_does_not_allow_to_be_pending() -> None:
    reasons = allowed(all_passing(skip=frozenset({"karyotype"})), conditional_tests={"karyotype"})
    assert reasons == ["Karyotype cannot be pending at conditional release (the specification does not allow it)"]


def test_conditional_release_never_excuses_a_failed_test() -> None:
    results = [*all_passing(skip=frozenset({"sterility"})), result("sterility", "positive")]
    assert allowed(results, conditional_tests={"sterility"}) == ["Sterility failed (positive, expected negative)"]


def test_conditional_release_naming_an_unknown_test_is_refused() -> None:
    assert "not a test of this lot's specification" in allowed(all_passing(), conditional_tests={"cd200"})[0]


def test_release_with_no_judged_test_is_refused() -> None:
    reasons = can_release([], donor_approved=True, open_oos=0, releaser_entered_results=False,
                          releaser_recorded_manufacture=False)
    assert reasons == ["no release test has been judged for this lot"]
