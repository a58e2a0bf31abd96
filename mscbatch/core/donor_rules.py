"""Donor eligibility rule sets: one versioned TOML file per tissue source / protocol (config/donor_rules/).

DOMAIN.md section 3: a donor decision must name every rule it applied and the rule set (id, version,
SHA-256) it was judged with. This module turns a rule file into frozen dataclasses and refuses anything it
does not understand: an unknown kind, a missing field or a wrong unit raises ConfigError naming the file and
the key, so a typo can never silently drop a criterion. The engine lives in eligibility.py.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from mscbatch.core.configfiles import ConfigError, load_rule_file, require

TISSUE_SOURCES = ("adipose_tissue", "bone_marrow", "umbilical_cord")
METHODS = ("serology", "NAT")
#: What a positive result means: excluded outright, or pending a documented risk assessment
#: (EU 2006/17/EC Annex II 1.3 for anti-HBc+ / HBsAg-, 1.4 for a reactive treponemal test).
POSITIVE_OUTCOMES = ("ineligible", "risk_assessment")
LIMIT_KINDS = ("min", "max", "range")
#: quantity -> the only unit accepted for it (the engine computes the value in that unit).
QUANTITY_UNITS = {"weight": "kg", "age": "years"}
#: Facts a rule set may require; each has an evaluator of the same name in eligibility.py.
FACT_KINDS = ("consent", "social_security", "relationship", "contraception")
WINDOW_UNIT = "days"

_TOP_KEYS = {"id", "version", "tissue_source", "protocol", "title", "sources", "sample_window", "markers",
             "questions", "limits", "required_facts"}
_WINDOW_KEYS = {"from_days", "to_days", "unit", "source", "note", "to_confirm", "extended"}
_EXTENDED_KEYS = {"from_days", "to_days", "unit", "source", "note", "accept_retest_180_days", "nat_markers"}
_MARKER_KEYS = {"id", "name", "method", "on_positive", "required", "required_if", "source", "note", "window"}
_QUESTION_KEYS = {"id", "text", "source", "note", "excludes"}
_LIMIT_KEYS = {"id", "quantity", "kind", "min", "max", "unit", "text", "source", "note"}
_FACT_KEYS = {"id", "kind", "text", "source", "note", "allowed"}


@dataclass(frozen=True)
class ExtendedWindow:
    """EU 2006/17/EC Annex II 2.5-2.6: a wider window once a 180-day retest or a donation-sample NAT exists."""

    from_days: int
    to_days: int
    accept_retest_180_days: bool
    nat_markers: tuple[str, ...]
    source: str
    note: str = ""


@dataclass(frozen=True)
class SampleWindow:
    """Days relative to the collection date (negative = before) within which a sample counts."""

    from_days: int
    to_days: int
    source: str
    note: str = ""
    to_confirm: bool = False
    extended: ExtendedWindow | None = None

    def contains(self, offset_days: int) -> bool:
        return self.from_days <= offset_days <= self.to_days


@dataclass(frozen=True)
class Marker:
    """One infectious-disease marker; `required` False means judged only when a result was recorded."""

    id: str
    name: str
    method: str
    on_positive: str
    source: str
    required: bool = True
    note: str = ""
    window: SampleWindow | None = None
    # a question (excludes = false) whose "yes", or no answer yet, makes this marker required (EU Annex II 1.2:
    # HTLV-I/II for donors from high-prevalence areas); "no" leaves it as `required` says
    required_if: str = ""

    @property
    def rule_id(self) -> str:
        return f"marker.{self.id}"


@dataclass(frozen=True)
class Question:
    """An exclusion question: the answer "yes" (True) excludes the donor. With `excludes` false it only decides
    which markers are required (Marker.required_if): it must be answered, and a yes or no answer excludes nobody."""

    id: str
    text: str
    source: str
    note: str = ""
    excludes: bool = True

    @property
    def rule_id(self) -> str:
        return f"question.{self.id}"


@dataclass(frozen=True)
class Limit:
    """A numeric limit; min and max are inclusive bounds of the ELIGIBLE range (50 kg minimum: 50 passes)."""

    id: str
    quantity: str
    kind: str
    unit: str
    text: str
    source: str
    min: Decimal | None = None
    max: Decimal | None = None
    note: str = ""

    @property
    def rule_id(self) -> str:
        return f"limit.{self.id}"


@dataclass(frozen=True)
class RequiredFact:
    """A fact that must hold (consent signed, social security, relationship, contraception)."""

    id: str
    kind: str
    text: str
    source: str
    allowed: tuple[str, ...] = ()
    note: str = ""

    @property
    def rule_id(self) -> str:
        return f"fact.{self.id}"


Criterion = Marker | Question | Limit | RequiredFact


@dataclass(frozen=True)
class WindowInUse:
    """One sample window of a rule set as a person reads it: what it applies to, its days, its source and whether
    the rule file marks it "to confirm" (DOMAIN.md: such a value is configurable and the UI says so)."""

    applies_to: str
    from_days: int
    to_days: int
    source: str
    note: str = ""
    to_confirm: bool = False

    @property
    def days(self) -> str:
        return f"{self.from_days:+d}..{self.to_days:+d} days from the collection"


@dataclass(frozen=True)
class RuleSet:
    """A loaded donor rule file; id, version and sha256 are stored with every decision judged by it."""

    id: str
    version: str
    sha256: str
    path: str
    tissue_source: str
    protocol: str
    title: str
    sources: tuple[str, ...]
    sample_window: SampleWindow
    markers: tuple[Marker, ...]
    questions: tuple[Question, ...] = ()
    limits: tuple[Limit, ...] = ()
    required_facts: tuple[RequiredFact, ...] = ()

    def criteria(self) -> Iterator[Criterion]:
        """Every criterion, in checklist order: facts, limits, questions, markers."""
        yield from self.required_facts
        yield from self.limits
        yield from self.questions
        yield from self.markers

    def marker(self, marker_id: str) -> Marker | None:
        return next((m for m in self.markers if m.id == marker_id), None)

    def windows(self) -> tuple[WindowInUse, ...]:
        """Every sample window of the rule set: the default one, its extended one, each marker's own."""
        base = self.sample_window
        own = [m for m in self.markers if m.window is not None]
        rows = [WindowInUse("every marker without its own window" if own else "every marker", base.from_days,
                            base.to_days, base.source, base.note, base.to_confirm)]
        if base.extended is not None:
            ext = base.extended
            opens = [*(["a negative 180-day retest"] if ext.accept_retest_180_days else []),
                     *([f"a negative NAT panel ({', '.join(ext.nat_markers)})"] if ext.nat_markers else [])]
            rows.append(WindowInUse(f"extended, once {' or '.join(opens) or 'recorded'}", ext.from_days, ext.to_days,
                                    ext.source, ext.note))
        rows += [WindowInUse(m.name, m.window.from_days, m.window.to_days, m.window.source, m.window.note,
                             m.window.to_confirm) for m in own if m.window is not None]
        return tuple(rows)


def _key(where: str, key: str) -> str:
    """The dotted key shown in a ConfigError ("markers[2].method", or "id" at the top level)."""
    return f"{where}.{key}" if where else key


def _check_keys(table: dict[str, Any], allowed: set[str], file: Path, where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(file, _key(where, unknown[0]), f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _choice(table: dict[str, Any], key: str, choices: tuple[str, ...], file: Path, where: str) -> str:
    value = require(table, key, str, file, where)
    if value not in choices:
        raise ConfigError(file, _key(where, key), f"unknown kind {value!r} (expected one of: {', '.join(choices)})")
    return value


def _optional(table: dict[str, Any], key: str, kind: type, default: Any, file: Path, where: str) -> Any:
    return require(table, key, kind, file, where) if key in table else default


def _days(table: dict[str, Any], file: Path, where: str) -> tuple[int, int]:
    if require(table, "unit", str, file, where) != WINDOW_UNIT:
        raise ConfigError(file, f"{where}.unit", f"bad unit {table['unit']!r} (sample windows are in \"days\")")
    start = require(table, "from_days", int, file, where)
    end = require(table, "to_days", int, file, where)
    if start > end:
        raise ConfigError(file, f"{where}.from_days", f"from_days {start} is after to_days {end}")
    return start, end


def _window(table: dict[str, Any], file: Path, where: str) -> SampleWindow:
    _check_keys(table, _WINDOW_KEYS, file, where)
    start, end = _days(table, file, where)
    extended = None
    if "extended" in table:
        ext_where = f"{where}.extended"
        ext = require(table, "extended", dict, file, where)
        _check_keys(ext, _EXTENDED_KEYS, file, ext_where)
        ext_start, ext_end = _days(ext, file, ext_where)
        nat = tuple(_optional(ext, "nat_markers", list, [], file, ext_where))
        if not all(isinstance(n, str) for n in nat):
            raise ConfigError(file, f"{ext_where}.nat_markers", "expected a list of marker ids")
        extended = ExtendedWindow(ext_start, ext_end, _optional(ext, "accept_retest_180_days", bool, False, file,
                                  ext_where), nat, require(ext, "source", str, file, ext_where),
                                  _optional(ext, "note", str, "", file, ext_where))
    return SampleWindow(start, end, require(table, "source", str, file, where), _optional(table, "note", str, "", file, where),
                        _optional(table, "to_confirm", bool, False, file, where), extended)


def _rows(data: dict[str, Any], key: str, file: Path, allowed: set[str], needed: bool) -> list[tuple[str, dict]]:
    rows = require(data, key, list, file, "") if needed or key in data else []
    if needed and not rows:
        raise ConfigError(file, key, "must list at least one entry")
    seen: set[str] = set()
    out = []
    for index, row in enumerate(rows):
        where = f"{key}[{index}]"
        if not isinstance(row, dict):
            raise ConfigError(file, where, "expected a table")
        _check_keys(row, allowed, file, where)
        row_id = require(row, "id", str, file, where)
        if row_id in seen:
            raise ConfigError(file, f"{where}.id", f"duplicate id {row_id!r}")
        seen.add(row_id)
        out.append((where, row))
    return out


def _marker(row: dict[str, Any], file: Path, where: str) -> Marker:
    return Marker(
        id=row["id"], name=require(row, "name", str, file, where), method=_choice(row, "method", METHODS, file, where),
        on_positive=_choice(row, "on_positive", POSITIVE_OUTCOMES, file, where),
        source=require(row, "source", str, file, where), required=_optional(row, "required", bool, True, file, where),
        note=_optional(row, "note", str, "", file, where),
        window=_window(require(row, "window", dict, file, where), file, f"{where}.window") if "window" in row else None,
        required_if=_optional(row, "required_if", str, "", file, where),
    )


def _limit(row: dict[str, Any], file: Path, where: str) -> Limit:
    quantity = _choice(row, "quantity", tuple(QUANTITY_UNITS), file, where)
    kind = _choice(row, "kind", LIMIT_KINDS, file, where)
    unit = require(row, "unit", str, file, where)
    if unit != QUANTITY_UNITS[quantity]:
        raise ConfigError(file, f"{where}.unit", f"bad unit {unit!r} for {quantity} (must be {QUANTITY_UNITS[quantity]!r})")
    low = require(row, "min", Decimal, file, where) if kind in ("min", "range") else None
    high = require(row, "max", Decimal, file, where) if kind in ("max", "range") else None
    if low is not None and high is not None and low > high:
        raise ConfigError(file, f"{where}.min", f"min {low} is above max {high}")
    return Limit(row["id"], quantity, kind, unit, require(row, "text", str, file, where),
                 require(row, "source", str, file, where), low, high, _optional(row, "note", str, "", file, where))


def _fact(row: dict[str, Any], file: Path, where: str) -> RequiredFact:
    kind = _choice(row, "kind", FACT_KINDS, file, where)
    allowed: tuple[str, ...] = ()
    if kind == "relationship":
        allowed = tuple(require(row, "allowed", list, file, where))
        if not allowed or not all(isinstance(a, str) for a in allowed):
            raise ConfigError(file, f"{where}.allowed", "expected a non-empty list of relationship names")
    return RequiredFact(row["id"], kind, require(row, "text", str, file, where), require(row, "source", str, file, where),
                        allowed, _optional(row, "note", str, "", file, where))


def load_donor_rule_set(path: Path) -> RuleSet:
    """Load and validate one donor rule file; ConfigError names the file and the offending key."""
    rule_file = load_rule_file(path)
    data, file = rule_file.data, path
    _check_keys(data, _TOP_KEYS, file, "")
    version = require(data, "version", (str, int), file, "")
    sources = tuple(require(data, "sources", list, file, ""))
    if not sources or not all(isinstance(s, str) for s in sources):
        raise ConfigError(file, "sources", "expected a non-empty list of citations")
    markers = tuple(_marker(row, file, where) for where, row in _rows(data, "markers", file, _MARKER_KEYS, True))
    window = _window(require(data, "sample_window", dict, file, ""), file, "sample_window")
    if window.extended:
        for nat in window.extended.nat_markers:
            if not any(m.id == nat and m.method == "NAT" for m in markers):
                raise ConfigError(file, "sample_window.extended.nat_markers", f"{nat!r} is not a NAT marker of this file")
    questions = tuple(Question(row["id"], require(row, "text", str, file, where), require(row, "source", str, file, where),
                               _optional(row, "note", str, "", file, where),
                               _optional(row, "excludes", bool, True, file, where))
                      for where, row in _rows(data, "questions", file, _QUESTION_KEYS, False))
    deciding = {q.id for q in questions if not q.excludes}
    for n, marker in enumerate(markers):
        if marker.required_if and marker.required_if not in deciding:
            raise ConfigError(file, f"markers[{n}].required_if",
                              f"{marker.required_if!r} is not a question of this file with excludes = false")
    return RuleSet(
        id=require(data, "id", str, file, ""), version=str(version), sha256=rule_file.sha256, path=str(path),
        tissue_source=_choice(data, "tissue_source", TISSUE_SOURCES, file, ""),
        protocol=require(data, "protocol", str, file, ""), title=require(data, "title", str, file, ""),
        sources=sources, sample_window=window, markers=markers,
        questions=questions,
        limits=tuple(_limit(row, file, where) for where, row in _rows(data, "limits", file, _LIMIT_KEYS, False)),
        required_facts=tuple(_fact(row, file, where)
                             for where, row in _rows(data, "required_facts", file, _FACT_KEYS, False)),
    )


def load_all_donor_rule_sets(directory: Path) -> dict[str, RuleSet]:
    """Load every *.toml in `directory` (sorted by name), keyed by rule-set id; two files with one id is an error."""
    rule_sets: dict[str, RuleSet] = {}
    for path in sorted(directory.glob("*.toml")):
        rule_set = load_donor_rule_set(path)
        if rule_set.id in rule_sets:
            raise ConfigError(path, "id", f"duplicate rule-set id {rule_set.id!r} (also in {rule_sets[rule_set.id].path})")
        rule_sets[rule_set.id] = rule_set
    return rule_sets
