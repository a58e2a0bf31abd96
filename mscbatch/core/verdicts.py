"""Verdicts on release tests, lot status, the endotoxin K/M limit, and whether QA may release a lot.

DOMAIN.md section 5: a verdict per test is pass / fail / pending / informative; any blocking fail is out of
specification (OOS) and stops release until the OOS is closed. Informative tests are shown with their value
and whether they meet their informative limit, but never block. Release also needs an approved donor, no
open OOS, and a releaser independent of QC and production (EU GMP ch. 2; Reg. 2017/1569 art. 10).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum

from mscbatch.core.release_spec import (
    Censored,
    ReleaseSpec,
    ReleaseTest,
    Value,
    format_value,
    judge_value,
    parse_result_value,
    shown_number,
)

ENDOTOXIN_K_EU_PER_KG_PER_HOUR = Decimal(5)
#: the release test of the viable cells in the lot, which the harvest's own viable count bounds (count_above_harvest)
VIABLE_COUNT_TEST_ID = "viable_cell_count"


class VerdictStatus(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    PENDING = "pending"
    INFORMATIVE = "informative"


class LotStatus(StrEnum):
    READY = "ready"  # every blocking test passed
    PENDING = "pending"  # no blocking failure, some blocking result missing
    FAIL = "fail"  # some blocking test failed (OOS)


@dataclass(frozen=True)
class LabResult:
    """One entered result. Results are never deleted (ALCOA+): an invalidated one stays, flagged."""

    test_id: str
    value: Decimal | int | str
    unit: str
    entered_at: datetime
    invalidated: bool = False
    result_id: int | None = None  # the stored result it stands for (pages print the one a verdict is judged from)


@dataclass(frozen=True)
class Verdict:
    """The verdict on one test of a lot, with the result it was judged from and the reason in plain words."""

    test_id: str
    name: str
    group: str
    status: VerdictStatus
    blocking: bool
    may_be_pending_at_conditional_release: bool
    limit_text: str
    reason: str
    value_text: str = ""
    meets_limit: bool | None = None
    result: LabResult | None = None


@dataclass(frozen=True)
class LotVerdict:
    """All verdicts of a lot against one spec (id, version and hash kept so the decision is traceable)."""

    spec_id: str
    spec_version: str
    spec_sha256: str
    status: LotStatus
    verdicts: tuple[Verdict, ...]
    blocking_reasons: tuple[str, ...]


def current_result(results: Iterable[LabResult]) -> LabResult | None:
    """The result that counts for a test: the latest entered among those not invalidated.

    Rule: an invalidated result (an OOS invalidated by its investigation) no longer counts but is kept; among
    valid results the one entered last counts (ties: the later in the given order). judge_test adds the OOS
    rule on top: a valid failing result is never hidden by a later passing retest.
    """
    valid = [r for r in results if not r.invalidated]
    if not valid:
        return None
    return max(enumerate(valid), key=lambda pair: (pair[1].entered_at, pair[0]))[1]


def judge_test(test: ReleaseTest, results: Sequence[LabResult]) -> Verdict:
    """Verdict on one test from all results ever entered for it.

    A failing valid result stands until the OOS investigation invalidates it: retesting into compliance is
    not allowed (FDA guidance on OOS results, 2006; EU GMP ch. 6), so a later passing retest does not hide
    it. Non-blocking tests are informative whatever their value.
    """
    own = [r for _, r in sorted(enumerate(r for r in results if r.test_id == test.id),
                                key=lambda pair: (pair[1].entered_at, pair[0]))]
    base = dict(test_id=test.id, name=test.name, group=test.group, blocking=test.blocking,
                may_be_pending_at_conditional_release=test.may_be_pending_at_conditional_release,
                limit_text=test.limit_text)
    latest = current_result(own)
    if latest is None:
        why = "no valid result yet" if not own else "every result was invalidated; a valid retest is needed"
        return Verdict(status=VerdictStatus.PENDING, reason=f"{test.name} pending ({why})", **base)
    judged = [(r, judge_value(test, parse_result_value(test, r.value, r.unit))) for r in own if not r.invalidated]
    failing = [pair for pair in judged if pair[1].meets is False]
    chosen, judgement = failing[-1] if (failing and test.blocking) else next(p for p in judged if p[0] is latest)
    if not test.blocking or judgement.meets is None:  # a blocking test with no limit (kind "informative": a
        # "report the result" line) waits for its result, which then neither passes nor fails: it never blocks, as
        # "no limit" read as a failure left the lot with no way to release it and no OOS to open
        status = VerdictStatus.INFORMATIVE
        meets = {True: "meets", False: "does not meet", None: "no limit"}[judgement.meets]
        reason = f"{test.name} informative ({judgement.comparison}; {meets} its informative limit)"
    elif judgement.meets:
        status, reason = VerdictStatus.PASS, f"{test.name} passed ({judgement.comparison})"
    else:
        status, reason = VerdictStatus.FAIL, f"{test.name} failed ({judgement.comparison})"
        if chosen is not latest:
            reason = reason[:-1] + "; a failing result stands until its OOS investigation invalidates it)"
    value_text = test.format(parse_result_value(test, chosen.value, chosen.unit))
    return Verdict(status=status, reason=reason, value_text=value_text, meets_limit=judgement.meets,
                   result=chosen, **base)


def judge_lot(spec: ReleaseSpec, results: Iterable[LabResult]) -> LotVerdict:
    """Judge every test of the spec; the lot is "fail" on any blocking fail, else "pending" on any blocking
    pending, else "ready". A result for a test the spec does not have is refused (wrong spec or version)."""
    results = list(results)
    known = {t.id for t in spec.tests}
    stray = sorted({r.test_id for r in results} - known)
    if stray:
        raise ValueError(f"results for tests not in release spec {spec.id} v{spec.version}: {', '.join(stray)}")
    verdicts = tuple(judge_test(t, results) for t in spec.tests)
    blocking = [v for v in verdicts if v.blocking]
    if any(v.status is VerdictStatus.FAIL for v in blocking):
        status = LotStatus.FAIL
    elif any(v.status is VerdictStatus.PENDING for v in blocking):
        status = LotStatus.PENDING
    else:
        status = LotStatus.READY
    reasons = tuple(v.reason for v in blocking if v.status in (VerdictStatus.FAIL, VerdictStatus.PENDING))
    return LotVerdict(spec.id, spec.version, spec.sha256, status, verdicts, reasons)


def endotoxin_km_limit(
    weight_kg: Decimal | int, volume_ml: Decimal | int, infusion_hours: Decimal | int,
    k: Decimal | int = ENDOTOXIN_K_EU_PER_KG_PER_HOUR,
) -> Decimal:
    """Dose-based endotoxin limit K/M in EU/mL (Ph. Eur. 5.1.10; DOMAIN.md section 5).

    K = 5 EU/kg/h (parenteral route); M = the largest volume given per kg within one hour. An infusion
    shorter than one hour still puts its whole volume into one hour, so hours below 1 count as 1.
    70 kg, 100 mL over 1 h: M = 100/70 mL/kg/h, limit = 5 x 70 / 100 = 3.5 EU/mL. Rounded down to
    0.01 EU/mL, so the limit is never overstated.
    """
    weight, volume, hours, k = (Decimal(x) for x in (weight_kg, volume_ml, infusion_hours, k))
    for label, x in (("weight_kg", weight), ("volume_ml", volume), ("infusion_hours", hours), ("k", k)):
        if not x.is_finite() or x <= 0:
            raise ValueError(f"endotoxin K/M limit: {label} must be above 0, got {x}")
    # K / M with M = volume / weight / hours, rearranged so no rounded intermediate quotient is divided again
    limit_eu_per_ml = k * weight * max(hours, Decimal(1)) / volume
    return limit_eu_per_ml.quantize(Decimal("0.01"), rounding=ROUND_DOWN)


def judge_endotoxin_dose(
    test: ReleaseTest, value: Decimal | int | str, unit: str,
    weight_kg: Decimal | int, volume_ml: Decimal | int, infusion_hours: Decimal | int,
) -> Verdict:
    """Dose-based endotoxin check for one patient and one infusion: the result must be not more than K/M
    (Ph. Eur. 5.1.10). Uses the spec's dose_based_k (default 5 EU/kg/h) and the patient's weight and
    infused volume (DOMAIN.md section 6). Pass/fail only; the lot's fixed limit is judged by judge_lot. A result
    below the detection limit ("< 0.05") counts as its limit, the most it can be; one above the range ("> 5")
    cannot be shown to be under any limit and fails."""
    k = test.dose_based_k if test.dose_based_k is not None else ENDOTOXIN_K_EU_PER_KG_PER_HOUR
    limit = endotoxin_km_limit(weight_kg, volume_ml, infusion_hours, k)
    measured: Value = parse_result_value(test, value, unit)
    shown, limit_shown = format_value(test.unit, measured), format_value(test.unit, limit)
    context = f"K/M limit for {weight_kg} kg, {volume_ml} mL over {infusion_hours} h"
    if isinstance(measured, Censored):  # "< X": X is the most it can be; "> X" has no upper bound at all
        ok = measured.relation == "<" and measured.bound <= limit
        comparison = (f"{shown}, so <= {limit_shown}" if ok else f"{shown}: not shown to be <= {limit_shown}") + \
            f", {context}"
    else:
        assert isinstance(measured, Decimal)
        ok = measured <= limit
        comparison = f"{shown} {'<=' if ok else '>'} {limit_shown}, {context}"
    return Verdict(
        test_id=test.id, name=test.name, group=test.group,
        status=VerdictStatus.PASS if ok else VerdictStatus.FAIL, blocking=True,
        may_be_pending_at_conditional_release=False, limit_text=f"<= {limit_shown} (K/M)",
        reason=f"{test.name} {'passed' if ok else 'failed'} ({comparison})",
        value_text=shown, meets_limit=ok,
    )


def can_release(
    verdicts: Iterable[Verdict],
    donor_approved: bool,
    open_oos: int,
    releaser_entered_results: bool,
    releaser_recorded_manufacture: bool,
    conditional_tests: Iterable[str] = frozenset(),
) -> list[str]:
    """Every reason QA may not release the lot now, in plain words; an empty list means release is allowed.

    conditional_tests names blocking tests that may still be pending (conditional release, EudraLex Vol 4
    Part IV section 11, e.g. sterility still incubating): only tests the spec marks
    may_be_pending_at_conditional_release qualify (an informative test named is refused too), and a failed test
    never does.
    """
    verdicts = list(verdicts)
    conditional = set(conditional_tests)
    if open_oos < 0:
        raise ValueError(f"open_oos cannot be negative, got {open_oos}")
    refusals: list[str] = []
    if not verdicts:
        refusals.append("no release test has been judged for this lot")
    by_id = {v.test_id: v for v in verdicts}
    for test_id in sorted(conditional - set(by_id)):
        refusals.append(f"conditional release names {test_id!r}, which is not a test of this lot's specification")
    for v in verdicts:
        # checked first, for informative tests too: naming one the specification does not allow to be pending would
        # sign a conditional release the specification never provided for
        if v.test_id in conditional and not v.may_be_pending_at_conditional_release:
            refusals.append(f"{v.name} cannot be pending at conditional release (the specification does not allow it)")
        if not v.blocking or v.status in (VerdictStatus.PASS, VerdictStatus.INFORMATIVE):  # reported, no limit
            continue
        if v.status is VerdictStatus.PENDING and v.test_id in conditional:
            continue
        refusals.append(v.reason)
    if not donor_approved:
        refusals.append("donor eligibility not approved")
    if open_oos:
        refusals.append("an OOS is open" if open_oos == 1 else f"{open_oos} OOS investigations are open")
    if releaser_entered_results:
        refusals.append("you entered results of this lot; another QA person must release it "
                        "(segregation of duties, EU GMP ch. 2)")
    if releaser_recorded_manufacture:
        refusals.append("you recorded the manufacture of this lot; another QA person must release it "
                        "(segregation of duties, EU GMP ch. 2)")
    return refusals


def count_above_harvest(verdicts: Iterable[Verdict], harvest_viable_cells: int | None) -> str | None:
    """The release count of viable cells set against the manufacturing record: frozen cells do not multiply after
    the harvest, so a result above the harvest's viable cells means the result or the record is wrong (a count typed
    in whole cells and read as millions, another lot's result). No tolerance is assumed: any excess is a
    discrepancy, resolved by correcting the result or by QA's written justification signed with the release (the
    caller says which of these the user can do: release.release.count_discrepancy). None when there is no such test, no result or no harvest recorded."""
    if harvest_viable_cells is None:
        return None
    verdict = next((v for v in verdicts if v.test_id == VIABLE_COUNT_TEST_ID and v.result is not None), None)
    if verdict is None or verdict.result is None:
        return None
    value = Decimal(str(verdict.result.value))
    if value <= harvest_viable_cells:
        return None
    return (f"{verdict.name} {verdict.value_text} is more than the {shown_number('cells', Decimal(harvest_viable_cells))}"
            " x10^6 viable cells of the lot's harvest (manufacturing record): cells do not multiply once harvested, so the "
            "result or the record is wrong")
