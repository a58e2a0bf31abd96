"""Enrolment check of a trial patient against a protocol's measurable criteria (DOMAIN.md section 6).

The answer is one of three: "eligible", "not_eligible" (an inclusion criterion is not met, or an exclusion
criterion is met), or "incomplete" (nothing excludes the patient yet, but a required value is missing).
A missing value is never read as normal: like a test outside its window (DOMAIN.md section 3), it counts
as missing. Every result carries the criterion's id, text and source so the clinician sees why, and the
decision carries the protocol id, version and hash it was judged with.
"""
from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from mscbatch.core.ages import birthday, completed_years
from mscbatch.core.protocols import Criterion, Protocol

ELIGIBLE = "eligible"
NOT_ELIGIBLE = "not_eligible"
INCOMPLETE = "incomplete"

MET = "met"
NOT_MET = "not_met"
MISSING = "missing"

AGE_PARAMETER = "age_years"

_COMPARE: dict[str, Callable[[Decimal, Decimal], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}

Value = Decimal | bool | None


@dataclass(frozen=True)
class CriterionResult:
    """How one criterion came out. For an inclusion "met" is good; for an exclusion "met" excludes."""

    criterion_id: str
    kind: str
    text: str
    source: str
    status: str  # "met" | "not_met" | "missing"
    value: Value
    required: bool = True

    @property
    def blocks_enrolment(self) -> bool:
        return (self.kind == "inclusion" and self.status == NOT_MET) or (self.kind == "exclusion" and self.status == MET)


@dataclass(frozen=True)
class EnrolmentDecision:
    protocol_id: str
    protocol_version: str
    protocol_sha256: str
    on_date: date
    status: str  # "eligible" | "not_eligible" | "incomplete"
    results: tuple[CriterionResult, ...]

    @property
    def eligible(self) -> bool:
        return self.status == ELIGIBLE

    @property
    def blocking(self) -> tuple[CriterionResult, ...]:
        """The criteria that make the patient not eligible."""
        return tuple(r for r in self.results if r.blocks_enrolment)

    @property
    def missing(self) -> tuple[CriterionResult, ...]:
        """Required values still to be entered."""
        return tuple(r for r in self.results if r.status == MISSING and r.required)


def age_result(protocol: Protocol, date_of_birth: date | None, on_date: date) -> CriterionResult:
    """Age > above_years and < below_years, strictly, on exact dates (seeds 001 and 002, inclusion 1):
    a patient is "over 18" from the day after the 18th birthday and "under 70" until the day before the
    70th birthday."""
    limits = protocol.age
    text = f"Age > {limits.above_years} and < {limits.below_years} years"
    if date_of_birth is None:
        return CriterionResult(f"{protocol.id}.age", "inclusion", text, limits.source, MISSING, None)
    if date_of_birth > on_date:
        raise ValueError(f"date of birth {date_of_birth} is after the check date {on_date}")
    inside = birthday(date_of_birth, limits.above_years) < on_date < birthday(date_of_birth, limits.below_years)
    age = Decimal(completed_years(date_of_birth, on_date))
    return CriterionResult(f"{protocol.id}.age", "inclusion", text, limits.source, MET if inside else NOT_MET, age)


def _judge(criterion: Criterion, value: Value) -> str:
    """Apply one criterion. Types are checked, not coerced: a float or a yes/no where a number is expected
    is a programming error upstream, not a patient fact."""
    if value is None:
        return MISSING
    if criterion.is_boolean:
        if not isinstance(value, bool):
            raise TypeError(f"{criterion.parameter}: expected True/False, got {value!r}")
        return MET if value else NOT_MET
    if isinstance(value, bool):
        if value is False and criterion.accepts_never:
            return NOT_MET  # "never received": a "months since" criterion cannot be met
        raise TypeError(f"{criterion.parameter}: expected a Decimal in {criterion.unit}, got {value!r}")
    if not isinstance(value, Decimal):
        raise TypeError(f"{criterion.parameter}: expected a Decimal in {criterion.unit}, got {type(value).__name__} {value!r}")
    if not value.is_finite():
        raise ValueError(f"{criterion.parameter}: {value} is not a finite number")
    assert criterion.threshold is not None
    return MET if _COMPARE[criterion.comparator](value, criterion.threshold) else NOT_MET


def _normalise(value: object) -> Value:
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return value  # type: ignore[return-value]


def evaluate(protocol: Protocol, values: Mapping[str, Value], date_of_birth: date | None, on_date: date) -> EnrolmentDecision:
    """Judge a patient against every measurable criterion of the protocol (age first, then inclusions, then
    exclusions, in file order). `values` maps parameter names (Protocol.parameters()) to Decimal for numbers,
    bool for yes/no, None or absence for "not measured"; ints are accepted as whole numbers, floats refused.
    An unknown parameter name raises ValueError so that a misspelt form field cannot go unnoticed."""
    known = protocol.parameters()
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{protocol.id}: unknown parameter(s) {', '.join(unknown)}")
    results = [age_result(protocol, date_of_birth, on_date)]
    for criterion in protocol.criteria:
        value = _normalise(values.get(criterion.parameter))
        results.append(CriterionResult(criterion.id, criterion.kind, criterion.text, criterion.source,
                                       _judge(criterion, value), value, criterion.required))
    if any(r.blocks_enrolment for r in results):
        status = NOT_ELIGIBLE
    elif any(r.status == MISSING and r.required for r in results):
        status = INCOMPLETE
    else:
        status = ELIGIBLE
    return EnrolmentDecision(protocol.id, protocol.version, protocol.sha256, on_date, status, tuple(results))
