"""Judging serology and NAT results against a donor rule set (DOMAIN.md section 3, EU 2006/17/EC Annex II).

This is the lowest layer of the eligibility engine: it defines MarkerResult and Reason and knows nothing of
the other criteria. Import both from mscbatch.core.eligibility.

Choices, each made so that a result can never count in the donor's favour by accident:
- A sample dated outside its window (days from collection, Annex II 2.5) does not count: the marker is
  "missing", never "negative", and the reason gives the sample and collection dates.
- Several results for one marker: the latest in-window sample date decides (a retest supersedes an earlier
  indeterminate); on the same date the worst result wins (positive > indeterminate > negative).
- A positive on record for a marker whose rule says a positive excludes (on_positive = "ineligible": anti-HIV,
  HBsAg, anti-HCV, HTLV, NAT...) excludes the donor wherever its sample falls: before or after the deciding
  negative, or outside the window with no sample inside it. A later negative does not clear it (EU 2006/17/EC
  Annex II allows a risk assessment only for anti-HBc+ / HBsAg- and a reactive treponemal test), even before a
  collection date is recorded (no window is needed to judge it; anything else then stays "missing"). A positive
  entered by mistake is corrected, its marker kept: by QA, signed, when it was recorded after QA's approval (late
  news, donors.services.late_news_of), otherwise by the technician with a reason; the screening is judged again.
- For a marker whose rule asks a risk assessment, a negative that decides while a positive is on record gives
  "risk_assessment" (QA documents why the positive is superseded); an out-of-window positive with no sample in
  the window leaves it "missing" (an in-window sample is still needed).
- Indeterminate -> "missing" (retest needed). Positive -> "failed", or "risk_assessment" where the rule set
  says so (EU Annex II 1.3 anti-HBc+ / HBsAg-; 1.4 reactive treponemal test).
- A result that is not negative, on a sample dated AFTER the deciding negative (so outside the window: a late
  retest, a 180-day retest), is never ignored: a positive counts as the rule's positive (excludes, or needs the
  risk assessment); an indeterminate leaves the marker "missing" (retest needed) until a negative sampled after
  it resolves it. The same holds for an optional marker with no sample in its window.
- An optional marker (required = false) is judged only once a result is recorded.
- The extended window of a rule set (EU Annex II 2.5-2.6: -30..+7 days for living donors) applies to markers
  without their own window when a negative 180-day retest is on record (results of every such required marker
  sampled 180 days or more after the collection, the latest negative: a ticked box alone opens nothing), or when
  every listed NAT marker has a negative deciding result within the extended window.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date

from mscbatch.core.donor_rules import Marker, RuleSet

RESULT_VALUES = ("positive", "negative", "indeterminate")
_SEVERITY = {"negative": 0, "indeterminate": 1, "positive": 2}


@dataclass(frozen=True)
class MarkerResult:
    """One laboratory result for a donor (for cord: the mother) on one marker, with its sample date."""

    marker: str
    method: str
    result: str
    sample_date: date

    def __post_init__(self) -> None:
        if self.result not in RESULT_VALUES:
            raise ValueError(f"result must be one of {RESULT_VALUES}, got {self.result!r}")


@dataclass(frozen=True)
class Reason:
    """Why one criterion is met or not; `values` holds what triggered it, as text (JSON-storable)."""

    rule_id: str
    text: str
    source: str
    outcome: str
    values: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Window:
    from_days: int
    to_days: int
    label: str

    def contains(self, offset_days: int) -> bool:
        return self.from_days <= offset_days <= self.to_days


def _offset(result: MarkerResult, collection_date: date) -> int:
    return (result.sample_date - collection_date).days


def _deciding(results: Sequence[MarkerResult], collection_date: date, window: _Window) -> MarkerResult | None:
    """The latest in-window result; on the same sample date the worst one."""
    inside = [r for r in results if window.contains(_offset(r, collection_date))]
    if not inside:
        return None
    return max(inside, key=lambda r: (r.sample_date, _SEVERITY[r.result]))


RETEST_AFTER_DAYS = 180  # EU 2006/17/EC Annex II 2.5: the retest's sample is taken 180 days after the donation


def _retest_negative(rule_set: RuleSet, collection_date: date, by_marker: dict[str, list[MarkerResult]]) -> bool:
    """A negative 180-day retest is on record: every required marker judged in the default window has a result
    sampled at least 180 days after the collection, and its latest such sample (the worst on one day) is negative.
    A ticked box is not a retest: before these results exist the wider window does not open."""
    retest = _Window(RETEST_AFTER_DAYS, 10**6, "180-day retest")
    markers = [m for m in rule_set.markers if m.required and m.window is None]
    return bool(markers) and all(
        (d := _deciding(by_marker.get(m.id, []), collection_date, retest)) is not None and d.result == "negative"
        for m in markers)


def _default_window(rule_set: RuleSet, collection_date: date, by_marker: dict[str, list[MarkerResult]],
                    retest_180_days_negative: bool | None) -> _Window:
    base = rule_set.sample_window
    window = _Window(base.from_days, base.to_days, f"{base.from_days:+d}..{base.to_days:+d} days ({base.source})")
    ext = base.extended
    if ext is None:
        return window
    extended = _Window(ext.from_days, ext.to_days, f"{ext.from_days:+d}..{ext.to_days:+d} days ({ext.source}")
    if ext.accept_retest_180_days and _retest_negative(rule_set, collection_date, by_marker):
        return _Window(extended.from_days, extended.to_days, extended.label + ", 180-day retest negative)")
    if ext.nat_markers and all(
        (d := _deciding(by_marker.get(nat, []), collection_date, extended)) is not None and d.result == "negative"
        for nat in ext.nat_markers
    ):
        return _Window(extended.from_days, extended.to_days, extended.label + ", NAT panel negative)")
    if ext.accept_retest_180_days and retest_180_days_negative is True:
        return _Window(window.from_days, window.to_days, window.label[:-1] + "; a 180-day retest is declared but "
                       f"its results, sampled {RETEST_AFTER_DAYS} days or more after the collection, are not all "
                       "recorded negative: the wider window opens only once they are)")
    return window


def _listing(results: Sequence[MarkerResult], collection_date: date) -> str:
    return "; ".join(f"{r.sample_date.isoformat()} {r.result} ({_offset(r, collection_date):+d} d)"
                     for r in sorted(results, key=lambda r: r.sample_date))


def _dates(results: Sequence[MarkerResult]) -> str:
    return ", ".join(sorted({r.sample_date.isoformat() for r in results}))


def _unresolved_indeterminate(results: Sequence[MarkerResult], after: date | None) -> list[MarkerResult]:
    """Indeterminate results sampled after `after` (any date if None) that no negative sampled later resolves."""
    negatives = [r.sample_date for r in results if r.result == "negative"]
    last_negative = max(negatives) if negatives else None
    return [r for r in results if r.result == "indeterminate" and (after is None or r.sample_date > after)
            and (last_negative is None or r.sample_date >= last_negative)]  # same day: the worst counts


#: said wherever a positive on record excludes: how a positive entered by mistake is put right
_POSITIVE_EXCLUDES = ("Under this rule a positive excludes (no risk assessment can approve it). If the positive was "
                      "entered by mistake, it is corrected on the donor page, its marker kept: a result recorded after "
                      "QA's approval only by QA, signed (Correct (QA, signed); a technician is refused), any other by "
                      "the technician with a reason. The screening is then judged again.")


def _judge(marker: Marker, window: _Window, collection_date: date | None,
           results: Sequence[MarkerResult]) -> Reason | None:
    rid, src, name = marker.rule_id, marker.source, marker.name
    values = {"window": window.label, "collection_date": collection_date.isoformat() if collection_date else "not recorded"}
    if not results:
        if not marker.required:
            return None
        return Reason(rid, f"{name}: no result recorded.", src, "missing", values)
    positives = [r for r in results if r.result == "positive"]
    if collection_date is None:
        if positives and marker.on_positive == "ineligible":  # a positive excludes wherever its sample falls, so
            values["positive"] = _dates(positives)  # no window, and no collection date, is needed to judge it
            return Reason(rid, f"{name}: a result is POSITIVE (sample {_dates(positives)}; collection date not "
                          f"recorded): excludes the donor. {_POSITIVE_EXCLUDES}", src, "failed", values)
        return Reason(rid, f"{name}: collection date not recorded, so the sample window cannot be checked.",
                      src, "missing", values)
    values["results"] = _listing(results, collection_date)
    deciding = _deciding(results, collection_date, window)
    if deciding is None:
        open_indeterminate = _unresolved_indeterminate(results, None)
        if not marker.required and not positives and not open_indeterminate:
            return None  # an optional marker with only negative results outside its window: nothing to judge
        text = (f"{name}: no sample inside the window {window.from_days:+d}..{window.to_days:+d} days of the collection "
                f"on {collection_date.isoformat()}; sample(s) {values['results']} are outside it and count as missing, "
                "not negative.")
        if positives and marker.on_positive == "ineligible":
            values["positive"] = _dates(positives)
            return Reason(rid, f"{name}: a result is POSITIVE (sample {_dates(positives)}, outside the window "
                          f"{window.from_days:+d}..{window.to_days:+d} days of the collection on "
                          f"{collection_date.isoformat()}): excludes the donor. {_POSITIVE_EXCLUDES}", src, "failed",
                          values)
        if positives:
            text += (" An out-of-window result is POSITIVE: review it; an in-window sample is needed, and the positive "
                     "then needs a documented risk assessment.")
        elif open_indeterminate:
            text += (f" An out-of-window result is INDETERMINATE ({_dates(open_indeterminate)}), not resolved by a "
                     "later negative: retest needed.")
        return Reason(rid, text, src, "missing", values)
    values.update(sample_date=deciding.sample_date.isoformat(), result=deciding.result, method=deciding.method)
    days = _offset(deciding, collection_date)
    when = f"sample {deciding.sample_date.isoformat()}, {days:+d} day{'' if abs(days) == 1 else 's'} from collection"
    if deciding.result == "positive":
        if marker.on_positive == "ineligible":
            return Reason(rid, f"{name} positive ({when}): excludes the donor.", src, "failed", values)
        note = f" {marker.note}" if marker.note else ""
        return Reason(rid, f"{name} positive ({when}): further investigation and a documented risk assessment "
                      f"are required before any decision.{note}", src, "risk_assessment", values)
    later_positives = [r for r in positives if r.sample_date > deciding.sample_date]
    if positives and marker.on_positive == "ineligible":  # a positive on record excludes: nothing later clears it
        values["positive"] = _dates(positives)
        if later_positives:  # outside the window, after the deciding result: newer than it, never superseded by it
            values["later_result"] = f"positive {_dates(later_positives)}"
            text = (f"{name} {deciding.result} ({when}), but a LATER sample is positive ({_dates(later_positives)}, "
                    "outside the window)")
        else:
            text = (f"{name} {deciding.result} ({when}) but a positive result dated {_dates(positives)} is on record; "
                    f"the later {deciding.result} result does not clear it")
        return Reason(rid, f"{text}: excludes the donor. {_POSITIVE_EXCLUDES}", src, "failed", values)
    if deciding.result == "indeterminate":
        return Reason(rid, f"{name} indeterminate ({when}): retest needed.", src, "missing", values)
    if later_positives:  # outside the window, after the deciding negative: newer than it, never superseded by it
        values["later_result"] = f"positive {_dates(later_positives)}"
        note = f" {marker.note}" if marker.note else ""
        return Reason(rid, f"{name} negative ({when}), but a LATER sample is positive ({_dates(later_positives)}, "
                      "outside the window): further investigation and a documented risk assessment are required "
                      f"before any decision.{note}", src, "risk_assessment", values)
    open_indeterminate = _unresolved_indeterminate(results, deciding.sample_date)
    if open_indeterminate:
        values["later_result"] = f"indeterminate {_dates(open_indeterminate)}"
        return Reason(rid, f"{name} negative ({when}), but a LATER sample is indeterminate "
                      f"({_dates(open_indeterminate)}, outside the window) and no negative sampled after it resolves "
                      "it: retest needed; the earlier negative does not decide.", src, "missing", values)
    if positives:  # the rule asks a risk assessment for a positive (EU Annex II 1.3 anti-HBc, 1.4 treponemal)
        values["positive"] = _dates(positives)
        return Reason(rid, f"{name} negative ({when}) but a positive result dated {_dates(positives)} is on record: a "
                      "documented risk assessment must say why it is superseded.", src, "risk_assessment", values)
    return Reason(rid, f"{name} negative ({when}).", src, "met", values)


def _by_marker(rule_set: RuleSet, results: Sequence[MarkerResult]) -> tuple[dict[str, list[MarkerResult]],
                                                                           list[MarkerResult]]:
    by_marker: dict[str, list[MarkerResult]] = {}
    unjudged: list[MarkerResult] = []
    for result in results:
        if rule_set.marker(result.marker) is None:
            unjudged.append(result)
        else:
            by_marker.setdefault(result.marker, []).append(result)
    return by_marker, unjudged


def _marker_window(marker: Marker, default: _Window) -> _Window:
    own = marker.window
    return (_Window(own.from_days, own.to_days, f"{own.from_days:+d}..{own.to_days:+d} days ({own.source})")
            if own is not None else default)


@dataclass(frozen=True)
class SampleStanding:
    """Where one result's sample falls from one collection day, by the window its marker is judged with (the same
    window judge_markers uses, the extended one included when it is open). A negative outside it never counts."""

    offset_days: int
    from_days: int
    to_days: int
    inside: bool

    @property
    def window(self) -> str:
        return f"{self.from_days:+d}..{self.to_days:+d} days"


def sample_standings(rule_set: RuleSet, collection_date: date, results: Sequence[MarkerResult],
                     retest_180_days_negative: bool | None = None) -> tuple[SampleStanding | None, ...]:
    """For each result (in order), its standing from `collection_date`; None for a marker the rule set does not
    list (never judged). What a page shows next to a result must agree with what the engine counts."""
    by_marker, _unjudged = _by_marker(rule_set, results)
    default = _default_window(rule_set, collection_date, by_marker, retest_180_days_negative)
    standings: list[SampleStanding | None] = []
    for result in results:
        marker = rule_set.marker(result.marker)
        if marker is None:
            standings.append(None)
            continue
        window = _marker_window(marker, default)
        offset = _offset(result, collection_date)
        standings.append(SampleStanding(offset, window.from_days, window.to_days, window.contains(offset)))
    return tuple(standings)


def judge_markers(rule_set: RuleSet, collection_date: date | None, results: Sequence[MarkerResult],
                  retest_180_days_negative: bool | None = None, answers: Mapping[str, bool | None] | None = None,
                  ) -> tuple[list[Reason], list[MarkerResult]]:
    """One Reason per judged marker, plus the results for markers the rule set does not list (unjudged). A marker
    `required_if` a question is required while that question is answered yes or not answered (the safe side)."""
    answers = answers or {}
    by_marker, unjudged = _by_marker(rule_set, results)
    default = (_default_window(rule_set, collection_date, by_marker, retest_180_days_negative)
               if collection_date is not None else _Window(0, 0, "collection date not recorded"))
    reasons = []
    for marker in rule_set.markers:
        if marker.required_if and answers.get(marker.required_if) is not False:
            marker = replace(marker, required=True)
        window = _marker_window(marker, default)
        reason = _judge(marker, window, collection_date, by_marker.get(marker.id, []))
        if reason is not None:
            reasons.append(reason)
    return reasons, unjudged
