"""Censored results (mscbatch.core.release_spec.Censored): a number the method only bounds, "< 0.05" (endotoxin
below the LAL detection limit) or "> 90", kept as typed and judged honestly. "< X" meets an upper limit L only when
X <= L and never a lower limit (how low is unknown); "> X" meets a lower limit M only when X >= M and never an upper
limit. The dose's endotoxin check (K/M) counts "< X" as X, the most it can be."""
from __future__ import annotations

from decimal import Decimal

import pytest

from mscbatch.core.release_spec import (
    Censored,
    ReleaseTest,
    ResultValueError,
    format_value,
    judge_value,
    parse_result_value,
)
from mscbatch.core.verdicts import LabResult, VerdictStatus, judge_endotoxin_dose, judge_test


def _test(kind: str, unit: str = "percent", **limits: object) -> ReleaseTest:
    return ReleaseTest(id="t", name="Test", kind=kind, unit=unit, group="g", method="m", blocking=True,
                       **limits)  # type: ignore[arg-type]


ENDOTOXIN = _test("maximum", "EU/mL", max=Decimal("0.5"), strict=True, dose_based_k=Decimal(5))
AT_MOST = _test("maximum", "EU/mL", max=Decimal("0.5"))
VIABILITY = _test("minimum", min=Decimal(70))
ABOVE = _test("minimum", min=Decimal(20), strict=True)
BAND = _test("range", min=Decimal(10), max=Decimal(50))
INFORMATIVE = _test("informative", "EU/mL")


def _meets(test: ReleaseTest, raw: str) -> bool | None:
    return judge_value(test, parse_result_value(test, raw, {"percent": "%"}.get(test.unit, test.unit))).meets


@pytest.mark.parametrize("raw", ["< 0.05", "<0.05", "  < 0.05 ", "<  0.050"])
def test_below_the_detection_limit_is_read_and_kept_as_typed(raw):
    value = parse_result_value(ENDOTOXIN, raw, "EU/mL")
    assert value == Censored("<", Decimal("0.05"), raw.strip())
    assert format_value("EU/mL", value) == f"{raw.strip()} EU/mL"


@pytest.mark.parametrize(("test", "raw", "meets"), [
    (ENDOTOXIN, "< 0.05", True), (ENDOTOXIN, "< 0.5", True),  # every value under 0.5 is under the strict 0.5
    (ENDOTOXIN, "< 0.6", False), (AT_MOST, "< 0.5", True), (AT_MOST, "< 0.51", False),
    (ENDOTOXIN, "> 0.1", False), (ENDOTOXIN, "> 5", False), (AT_MOST, "> 0.4", False),  # never an upper limit
    (VIABILITY, "> 90", True), (VIABILITY, "> 70", True), (VIABILITY, "> 69.9", False),
    (ABOVE, "> 20", True), (ABOVE, "> 19", False),
    (VIABILITY, "< 99", False), (VIABILITY, "< 50", False),  # never a lower limit
    (BAND, "< 30", False), (BAND, "> 30", False),  # a range has both
])
def test_a_censored_value_meets_a_limit_only_when_every_value_it_allows_does(test, raw, meets):
    assert _meets(test, raw) is meets


def test_the_comparison_says_whether_the_limit_is_shown_or_missed():
    assert judge_value(ENDOTOXIN, parse_result_value(ENDOTOXIN, "< 0.05", "EU/mL")).comparison == \
        "< 0.05 EU/mL, so < 0.5 EU/mL"
    assert judge_value(ENDOTOXIN, parse_result_value(ENDOTOXIN, "< 1", "EU/mL")).comparison == (
        "< 1 EU/mL: how far below 1 EU/mL is unknown, so it is not shown to be < 0.5 EU/mL")
    assert judge_value(ENDOTOXIN, parse_result_value(ENDOTOXIN, "> 5", "EU/mL")).comparison == \
        "> 5 EU/mL, so not < 0.5 EU/mL"
    assert judge_value(VIABILITY, parse_result_value(VIABILITY, "< 50", "%")).comparison == "< 50 %, so not >= 70 %"


def test_an_informative_test_records_it_without_a_verdict():
    assert _meets(INFORMATIVE, "< 0.05") is None


def test_the_lot_verdict_shows_the_value_as_typed():
    from datetime import UTC, datetime

    verdict = judge_test(ENDOTOXIN, [LabResult("t", "<0.05", "EU/mL", datetime(2026, 1, 1, tzinfo=UTC))])
    assert verdict.status is VerdictStatus.PASS and verdict.value_text == "<0.05 EU/mL"
    failing = judge_test(ENDOTOXIN, [LabResult("t", "< 1", "EU/mL", datetime(2026, 1, 1, tzinfo=UTC))])
    assert failing.status is VerdictStatus.FAIL and "not shown to be < 0.5 EU/mL" in failing.reason


@pytest.mark.parametrize(("raw", "words"), [
    ("<", "write the method's limit after the sign"), ("<= 0.05", "not <= or >="), ("\u2264 0.05", "not <= or >="),
    ("< 0", "impossible"), ("< -1", "impossible"), ("< 0,05", "decimal point"), ("< abc", "not a number"),
])
def test_a_censored_value_that_is_not_a_result_is_refused_in_words(raw, words):
    with pytest.raises(ResultValueError, match=words):
        parse_result_value(ENDOTOXIN, raw, "EU/mL")


def test_no_percentage_above_100_and_no_censored_count():
    with pytest.raises(ResultValueError, match="impossible"):
        parse_result_value(VIABILITY, "> 100", "%")
    count = _test("minimum", "cells", min=Decimal(10**8))
    for unit in ("x10^6 cells", "cells"):
        with pytest.raises(ResultValueError, match="never reported as below or above a limit"):
            parse_result_value(count, "< 100", unit)


def test_the_dose_counts_below_the_detection_limit_as_its_limit():
    """70 kg, 100 mL over 1 h: K/M = 3.5 EU/mL. "< 3.5" is at most 3.5: passes; "< 3.6" may be above: fails; "> X"
    has no upper bound: fails whatever X."""
    def dose(raw: str) -> VerdictStatus:
        return judge_endotoxin_dose(ENDOTOXIN, raw, "EU/mL", Decimal(70), Decimal(100), Decimal(1)).status

    assert dose("< 3.5") is VerdictStatus.PASS
    assert dose("< 3.6") is VerdictStatus.FAIL
    assert dose("> 0.01") is VerdictStatus.FAIL
    assert "< 0.05 EU/mL, so <= 3.50 EU/mL" in judge_endotoxin_dose(
        ENDOTOXIN, "< 0.05", "EU/mL", Decimal(70), Decimal(100), Decimal(1)).reason
