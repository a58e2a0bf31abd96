"""Release specifications: versioned TOML files (config/release_specs/) read into frozen dataclasses.

DOMAIN.md section 5: each product has a versioned release specification (ISCT identity, Dominici 2006;
safety per Ph. Eur.; viability, count, potency). Kinds of test live in the string-keyed registry KINDS, so
adding a test is a config change and adding a kind is one registry entry. Entered values are checked here
against the test's unit (ALCOA+ "accurate", DOMAIN.md section 9): an impossible value is refused at entry,
with the test and the rule named, rather than judged.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from mscbatch.core.configfiles import ConfigError, load_rule_file, require


@dataclass(frozen=True)
class Censored:
    """A result the method reports only as beyond one of its limits: "< 0.05" (endotoxin below the LAL test's
    detection limit: the true value is somewhere under 0.05) or "> 5" (above its highest standard). Kept as typed
    (`text`, ALCOA+ original): the technician never has to invent a number. `bound` is the limit, in the test's unit."""

    relation: str  # "<" or ">"
    bound: Decimal
    text: str


Value = Decimal | str | Censored


class ResultValueError(ValueError):
    """An entered result is impossible for its test (wrong unit, out of the unit's range, not in the list)."""

    def __init__(self, test_name: str, field: str, rule: str):
        self.test_name, self.field, self.rule = test_name, field, rule
        super().__init__(f"{test_name}: {rule}")


@dataclass(frozen=True)
class Unit:
    """What a value in this unit may be: a number (whole or not, with bounds) or a word from a list."""

    symbol: str
    numeric: bool
    whole: bool = False
    low: Decimal | None = None
    high: Decimal | None = None
    rule: str = ""


UNITS: dict[str, Unit] = {
    "percent": Unit("%", True, low=Decimal(0), high=Decimal(100), rule="a percentage is between 0 and 100"),
    "cells": Unit("cells", True, whole=True, low=Decimal(0), rule="a count is a whole number, 0 or more"),
    "EU/mL": Unit("EU/mL", True, low=Decimal(0), rule="an endotoxin concentration is 0 or more"),
    "none": Unit("", False),
}
UNIT_ALIASES = {"%": "percent", "eu/ml": "EU/mL", "": "none"}
#: counts are typed in millions, as every other count of the lab record and the specification's limits are written
#: ("250" = 250 x10^6 cells); the result is kept in whole cells, the test's unit
MILLION_CELLS = "x10^6 cells"
MILLION = Decimal(10) ** 6
_SCALED_UNITS = {"x10^6 cells": ("cells", MILLION), "x10^6": ("cells", MILLION), "10^6 cells": ("cells", MILLION)}
#: how a unit is written next to a number on a page or the certificate (counts in millions: shown_number)
UNIT_SHOWN = {"percent": "%", "none": "", "cells": MILLION_CELLS}


@dataclass(frozen=True)
class ReleaseTest:
    """One line of a release specification. A non-blocking test is informative: shown, never refusing."""

    id: str
    name: str
    kind: str
    unit: str
    group: str
    method: str
    blocking: bool
    min: Decimal | None = None
    max: Decimal | None = None
    strict: bool = False
    pass_result: str | None = None
    fail_result: str | None = None
    may_be_pending_at_conditional_release: bool = False
    dose_based_k: Decimal | None = None
    variant: str | None = None
    note: str = ""

    def format(self, value: Value) -> str:
        return format_value(self.unit, value)

    @property
    def limit_text(self) -> str:
        return KINDS[self.kind].limit_text(self)


@dataclass(frozen=True)
class Judgement:
    """Whether a value meets the test's limit (None: no limit) and the comparison in plain words."""

    meets: bool | None
    comparison: str


@dataclass(frozen=True)
class Kind:
    """A kind of release test: which limit keys it needs and how it judges a value."""

    numeric: bool
    required: frozenset[str]
    allowed: frozenset[str]
    judge: Callable[[ReleaseTest, Value], Judgement]
    limit_text: Callable[[ReleaseTest], str]


def format_value(unit: str, value: Value) -> str:
    """A value with its unit as people write it: "94.6 %", "4 EU/mL", "250 x10^6 cells"."""
    if isinstance(value, Censored):  # as typed, with its unit: "< 0.05 EU/mL"
        return f"{value.text} {UNITS[unit].symbol}".rstrip()
    if isinstance(value, str) or unit == "none":
        return str(value)
    if unit == "cells":  # always in millions, as the limit is: "0.0002 x10^6 cells < 100 x10^6 cells" shows the slip
        return f"{shown_number(unit, value)} {MILLION_CELLS}"
    return f"{value:f} {UNITS[unit].symbol}".rstrip()


def shown_number(unit: str, value: Value | str) -> str:
    """A stored result as a page prints it beside UNIT_SHOWN[unit]: a count in millions (200000000 -> "200"),
    anything else as stored."""
    if unit != "cells":
        return str(value)
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if not number.is_finite():
        return str(value)
    return f"{(number / MILLION).normalize():f}"


def _minimum(t: ReleaseTest, v: Value) -> Judgement:
    assert t.min is not None
    if isinstance(v, Censored):
        return _censored(t, v)
    assert isinstance(v, Decimal)
    ok = v > t.min if t.strict else v >= t.min
    sign = (">" if t.strict else ">=") if ok else ("<=" if t.strict else "<")
    return Judgement(ok, f"{t.format(v)} {sign} {t.format(t.min)}")


def _maximum(t: ReleaseTest, v: Value) -> Judgement:
    assert t.max is not None
    if isinstance(v, Censored):
        return _censored(t, v)
    assert isinstance(v, Decimal)
    ok = v < t.max if t.strict else v <= t.max
    sign = ("<" if t.strict else "<=") if ok else (">=" if t.strict else ">")
    return Judgement(ok, f"{t.format(v)} {sign} {t.format(t.max)}")


def _range(t: ReleaseTest, v: Value) -> Judgement:
    assert t.min is not None and t.max is not None
    if isinstance(v, Censored):
        return _censored(t, v)
    assert isinstance(v, Decimal)
    ok = t.min <= v <= t.max
    return Judgement(ok, f"{t.format(v)} {'within' if ok else 'outside'} {_range_text(t)}")


def _censored(t: ReleaseTest, v: Censored) -> Judgement:
    """A censored result meets a limit only when every value it allows does. "< X" is somewhere below X: it meets an
    upper limit L when X <= L (then every value under X is under L, strict or not), and never a lower limit (how low
    is unknown). "> X" the other way round: it meets a lower limit M when X >= M, never an upper limit. A result that
    does not show compliance fails, as a number beyond the limit would: a blocking test opens its OOS, and the lab
    retests with a method that can show it (a dilution, another range)."""
    below, limits = v.relation == "<", []
    if t.max is not None:
        limits.append(("<" if t.strict else "<=", t.max, below and v.bound <= t.max, not below and v.bound >= t.max))
    if t.min is not None:
        limits.append((">" if t.strict else ">=", t.min, not below and v.bound >= t.min, below and v.bound <= t.min))
    for sign, limit, meets, beyond in limits:
        if not meets:
            why = (f", so not {sign} {t.format(limit)}" if beyond else
                   f": how far {'below' if below else 'above'} {t.format(v.bound)} is unknown, so it is not shown to be "
                   f"{sign} {t.format(limit)}")
            return Judgement(False, t.format(v) + why)
    return Judgement(True, f"{t.format(v)}, so " + " and ".join(f"{sign} {t.format(limit)}"
                                                                for sign, limit, _m, _b in limits))


def _range_text(t: ReleaseTest) -> str:
    return f"{t.format(t.min or Decimal(0))} to {t.format(t.max or Decimal(0))}"


def _qualitative(t: ReleaseTest, v: Value) -> Judgement:
    ok = v == t.pass_result
    return Judgement(ok, f"{v}" + ("" if ok else f", expected {t.pass_result}"))


def _informative(t: ReleaseTest, v: Value) -> Judgement:
    return Judgement(None, f"{t.format(v)} (recorded, no limit)")


_LIMITS = frozenset({"min", "max", "strict", "pass_result", "fail_result", "dose_based_k"})
KINDS: dict[str, Kind] = {
    "minimum": Kind(True, frozenset({"min"}), frozenset({"min", "strict"}), _minimum,
                    lambda t: f"{'>' if t.strict else '>='} {t.format(t.min or Decimal(0))}"),
    "maximum": Kind(True, frozenset({"max"}), frozenset({"max", "strict", "dose_based_k"}), _maximum,
                    lambda t: f"{'<' if t.strict else '<='} {t.format(t.max or Decimal(0))}"),
    "range": Kind(True, frozenset({"min", "max"}), frozenset({"min", "max"}), _range, _range_text),
    "negative": Kind(False, frozenset(), frozenset({"pass_result", "fail_result"}), _qualitative,
                     lambda t: str(t.pass_result)),
    "pass_fail": Kind(False, frozenset(), frozenset({"pass_result", "fail_result"}), _qualitative,
                      lambda t: str(t.pass_result)),
    "informative": Kind(True, frozenset(), frozenset(), _informative, lambda t: "no limit (informative)"),
}
QUALITATIVE_DEFAULTS = {"negative": ("negative", "positive"), "pass_fail": ("pass", "fail")}


def parse_result_value(test: ReleaseTest, raw: Decimal | int | str, unit: str) -> Value:
    """Check an entered value against the test's unit and return it as Decimal (numbers), Censored ("< 0.05",
    "> 5": a number the method only bounds) or the spec's word.

    Refuses: another unit than the test's; a percentage outside 0..100; a negative or fractional count; a
    word that is neither the pass nor the fail result of a qualitative test; a censored count (a count is a number
    of cells, typed in millions, never reported as below or above a limit). Binary floats are refused:
    limits and results are compared in Decimal (DESIGN.md conventions).
    """
    typed = " ".join(unit.split()).lower()
    canonical, scale = _SCALED_UNITS.get(typed, (UNIT_ALIASES.get(typed, unit.strip()), Decimal(1)))
    if canonical != test.unit:
        expected = {"none": "no unit (a result word)", "cells": f"cells ({MILLION_CELLS}, or whole cells)"}.get(
            test.unit, test.unit)
        raise ResultValueError(test.name, "unit", f"unit {unit!r} is wrong (this test is reported in {expected})")
    if isinstance(raw, float | bool):
        raise TypeError(f"{test.name}: give the value as Decimal, int or text, not {type(raw).__name__}")
    if not UNITS[test.unit].numeric:
        return _parse_word(test, str(raw))
    if isinstance(raw, str) and raw.strip().startswith(CENSORED_SIGNS):
        return _parse_censored(test, raw.strip(), scale)
    return _parse_number(test, raw, scale)


#: how a censored result starts: "< 0.05" below the method's (detection) limit, "> 5" above its range
CENSORED_SIGNS = ("<", ">", "\u2264", "\u2265")


def _parse_censored(test: ReleaseTest, text: str, scale: Decimal) -> Censored:
    """"< 0.05" or ">5": the sign, then the method's limit, a number the test's unit allows; kept as typed."""
    relation, number = text[0], text[1:].strip()
    if relation in "\u2264\u2265" or number.startswith("="):
        raise ResultValueError(test.name, "value", f"{text!r}: write a result beyond the method's limit as \"<\" or "
                               "\">\" then the limit, as in < 0.05 (not <= or >=)")
    if test.unit == "cells" or scale != 1:
        raise ResultValueError(test.name, "value", f"{text!r}: a cell count is a number of cells (typed in millions), "
                               "never reported as below or above a limit")
    if not number:
        raise ResultValueError(test.name, "value", f"{text!r}: write the method's limit after the sign, as in < 0.05")
    bound = _parse_number(test, number, scale)
    rule = UNITS[test.unit]
    # "< 0 EU/mL" or "> 100 %" leaves no possible value: a slip, not a result
    if (relation == "<" and rule.low is not None and bound <= rule.low) or (
            relation == ">" and rule.high is not None and bound >= rule.high):
        raise ResultValueError(test.name, "value", f"{text!r} is impossible ({rule.rule})")
    return Censored(relation, bound, text)


def _parse_number(test: ReleaseTest, raw: Decimal | int | str, scale: Decimal) -> Decimal:
    if "," in str(raw):  # the app's other number fields refuse it too: "1,500" could be 1.5 or 1500
        raise ResultValueError(test.name, "value", f"{raw!r} is not a number: write the decimal point, as in 9.5 "
                               "(a comma is not read as one)")
    try:
        value = raw if isinstance(raw, Decimal) else Decimal(str(raw).strip())
    except InvalidOperation:
        raise ResultValueError(test.name, "value", f"{raw!r} is not a number") from None
    rule = UNITS[test.unit]
    shown = f"{raw} {MILLION_CELLS if scale != 1 else rule.symbol}".strip()
    if not value.is_finite():
        raise ResultValueError(test.name, "value", f"{raw!r} is not a number")
    if value.is_zero():
        value = value.copy_abs()  # "-0" is 0: never kept or printed as "-0 %"
    if scale != 1:
        # far past any count either way: x10^6 of 1E+999999 would overflow the arithmetic, of 1E-1000030 round to 0
        if value.adjusted() > 100 or (not value.is_zero() and value.adjusted() < -100):
            why = "no lot holds that many cells" if value.adjusted() > 100 else rule.rule
            raise ResultValueError(test.name, "value", f"{shown} is impossible ({why})")
        value = value * scale
    if (rule.low is not None and value < rule.low) or (rule.high is not None and value > rule.high) or (
        rule.whole and value != value.to_integral_value()
    ):
        raise ResultValueError(test.name, "value", f"{shown} is impossible ({rule.rule})")
    return value.to_integral_value() if rule.whole else value


def _parse_word(test: ReleaseTest, raw: str) -> str:
    word = " ".join(raw.split()).lower()
    if test.kind == "informative":
        if not word:
            raise ResultValueError(test.name, "value", "a result is required")
        return " ".join(raw.split())
    allowed = {str(test.pass_result).lower(): test.pass_result, str(test.fail_result).lower(): test.fail_result}
    if word not in allowed:
        raise ResultValueError(
            test.name, "value", f"{raw!r} is not a result of this test (enter {test.pass_result!r} or {test.fail_result!r})"
        )
    return str(allowed[word])


def judge_value(test: ReleaseTest, value: Value) -> Judgement:
    """Compare an already parsed value with the test's limit, through its kind in KINDS."""
    return KINDS[test.kind].judge(test, value)


@dataclass(frozen=True)
class ReleaseSpec:
    """One versioned release specification; decisions store id, version and sha256 (DOMAIN.md section 3/9)."""

    id: str
    version: str
    title: str
    products: tuple[str, ...]
    sources: tuple[str, ...]
    tests: tuple[ReleaseTest, ...]
    path: Path
    sha256: str

    def test(self, test_id: str) -> ReleaseTest:
        for t in self.tests:
            if t.id == test_id:
                return t
        raise KeyError(f"release spec {self.id} v{self.version} has no test {test_id!r}")

    @property
    def conditional_release_tests(self) -> tuple[ReleaseTest, ...]:
        return tuple(t for t in self.tests if t.may_be_pending_at_conditional_release)


_TEST_KEYS = frozenset({"id", "name", "kind", "unit", "group", "method", "blocking", "note", "variant",
                        "variants", "may_be_pending_at_conditional_release"}) | _LIMITS
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def load_release_spec(path: Path) -> ReleaseSpec:
    """Read and validate one spec file; any problem raises ConfigError naming the file and the key."""
    rule_file = load_rule_file(path)
    data = rule_file.data
    if not _VERSION.match(rule_file.version):
        raise ConfigError(path, "version", f"{rule_file.version!r} is not a version number: write whole numbers "
                          "separated by dots (\"1\", \"1.1\", \"2\"), so that the highest version, the one in force, "
                          "is clear")
    title = require(data, "title", str, path, "")
    products = _strings(require(data, "products", list, path, ""), path, "products")
    sources = _strings(require(data, "sources", list, path, ""), path, "sources")
    raw_tests = require(data, "tests", list, path, "")
    if not raw_tests:
        raise ConfigError(path, "tests", "a release specification needs at least one test")
    tests: list[ReleaseTest] = []
    for index, raw in enumerate(raw_tests):
        where = f"tests[{index}]"
        if not isinstance(raw, dict):
            raise ConfigError(path, where, "expected a table ([[tests]])")
        test = _load_test(raw, path, where)
        if any(t.id == test.id for t in tests):
            raise ConfigError(path, f"{where}.id", f"duplicate test id {test.id!r}")
        tests.append(test)
    return ReleaseSpec(rule_file.id, rule_file.version, title, products, sources, tuple(tests), path,
                       rule_file.sha256)


def version_key(version: str) -> tuple[int, ...]:
    """How versions of one specification are ordered, the highest being in force: as numbers, part by part
    ("1.10" after "1.9"), trailing zeros aside ("1", "1.0" and "01" are one version: load_release_specs refuses
    two of them). load_release_spec has refused any other version string."""
    parts = [int(part) for part in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def load_release_specs(directory: Path) -> tuple[ReleaseSpec, ...]:
    """All *.toml specs of a folder (config/release_specs/), refusing two files with the same id+version (also
    written differently, "1" and "1.0"), a version that changes how a test's results are written, and two
    specification ids that name the same product class (which would be in force is not clear: versions of two
    ids are not ordered against each other)."""
    specs = tuple(load_release_spec(p) for p in sorted(directory.glob("*.toml")))
    seen: dict[tuple[str, tuple[int, ...]], ReleaseSpec] = {}
    for spec in specs:
        twin = seen.get((spec.id, version_key(spec.version)))
        if twin is not None:
            key = "id" if twin.version == spec.version else "version"
            raise ConfigError(spec.path, key, f"{spec.id} v{spec.version} is also defined in {twin.path} "
                              f"(v{twin.version}): give each version one number")
        seen[(spec.id, version_key(spec.version))] = spec
    _check_one_spec_per_product(specs)
    _check_versions_keep_results_readable(specs)
    return specs


def in_force(specs: tuple[ReleaseSpec, ...]) -> tuple[ReleaseSpec, ...]:
    """The highest version of each specification id: the one new lots are judged against. Older versions stay
    installed for the lots signed under them (release.specs.spec_of_lot), and may name classes that have since
    moved to another id."""
    best: dict[str, ReleaseSpec] = {}
    for spec in specs:
        if spec.id not in best or version_key(spec.version) > version_key(best[spec.id].version):
            best[spec.id] = spec
    return tuple(best.values())


def _check_one_spec_per_product(specs: tuple[ReleaseSpec, ...]) -> None:
    """A product class is judged under one specification id, its highest version in force (release.specs): a
    second id whose version in force names the same class is refused, naming both files and the class. A class
    moves to another id by a new version of the old id that no longer names it."""
    claimed: dict[str, ReleaseSpec] = {}
    for spec in in_force(specs):
        for product in spec.products:
            other = claimed.setdefault(product, spec)
            if other.id != spec.id:
                raise ConfigError(spec.path, "products", (
                    f"product class {product!r} is named both by specification {spec.id!r} (this file) and by "
                    f"specification {other.id!r} ({other.path.name}): which one its lots are judged against would "
                    "not be clear. Name each product class in one specification id; to move a class to another id, "
                    "add a new version of the old id that no longer names it."))


def _check_versions_keep_results_readable(specs: tuple[ReleaseSpec, ...]) -> None:
    """A lot is judged under the version in force until QA signs its release (release.specs), so a new version
    judges results entered under the previous ones: each test must keep its unit, and a test reported as a word
    its words. A new way of reporting is a new test id (the old results then simply no longer count)."""
    by_id: dict[str, list[ReleaseSpec]] = {}
    for spec in specs:
        by_id.setdefault(spec.id, []).append(spec)
    for versions in by_id.values():
        versions.sort(key=lambda s: version_key(s.version))
        for position, later in enumerate(versions):
            for index, test in enumerate(later.tests):
                for earlier in versions[:position]:  # every earlier version: a test may skip one and come back
                    _refuse_reporting_change(earlier, later, index, test)


def _refuse_reporting_change(earlier: ReleaseSpec, later: ReleaseSpec, index: int, test: ReleaseTest) -> None:
    before = next((t for t in earlier.tests if t.id == test.id), None)
    problem = None if before is None else _reporting_change(before, test)
    if problem is not None:
        key, was, now = problem
        raise ConfigError(later.path, f"tests[{index}].{key}", (
            f"test {test.id!r} is reported {was} in version {earlier.version} ({earlier.path.name}) but {now} here: "
            f"results entered under version {earlier.version} could not be read under this version, which judges "
            "every unreleased lot. Keep the unit and the result words, or give the new way of reporting a new "
            "test id."))


def _reporting_change(before: ReleaseTest, after: ReleaseTest) -> tuple[str, str, str] | None:
    """(key, how before, how after) when a result written for `before` cannot be read for `after`, else None."""
    if before.unit != after.unit:
        return "unit", f"in {_unit_words(before.unit)}", f"in {_unit_words(after.unit)}"
    if before.unit != "none" or after.kind == "informative":  # numbers keep their unit's range; any word is kept
        return None
    words = lambda t: "as any word" if t.kind == "informative" else f"as {t.pass_result!r} / {t.fail_result!r}"  # noqa: E731
    if before.kind == "informative":
        return "kind", words(before), words(after)
    if {str(before.pass_result).lower(), str(before.fail_result).lower()} != {
            str(after.pass_result).lower(), str(after.fail_result).lower()}:
        changed = "pass_result" if str(before.pass_result).lower() != str(after.pass_result).lower() else "fail_result"
        return changed, words(before), words(after)
    return None


def _unit_words(unit: str) -> str:
    return {"none": "words (no unit)", "percent": "%"}.get(unit, unit)


def specs_for_product(specs: tuple[ReleaseSpec, ...], product: str) -> tuple[ReleaseSpec, ...]:
    """The specs in force (the highest version of each id) whose `products` list names this product: one at most,
    as load_release_specs refuses two."""
    return tuple(s for s in in_force(specs) if product in s.products)


def _strings(values: list[Any], path: Path, key: str) -> tuple[str, ...]:
    if not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise ConfigError(path, key, "expected a non-empty list of non-empty strings")
    return tuple(values)


def _load_test(raw: dict[str, Any], path: Path, where: str) -> ReleaseTest:
    merged = _apply_variant(raw, path, where)
    unknown = sorted(set(merged) - _TEST_KEYS)
    if unknown:
        raise ConfigError(path, f"{where}.{unknown[0]}", f"unknown key (allowed: {', '.join(sorted(_TEST_KEYS))})")
    test_id = require(merged, "id", str, path, where)
    if not _ID.match(test_id):
        raise ConfigError(path, f"{where}.id", f"{test_id!r} must be lower-case letters, digits and _")
    kind_name = require(merged, "kind", str, path, where)
    if kind_name not in KINDS:
        raise ConfigError(path, f"{where}.kind", f"unknown kind {kind_name!r} (known: {', '.join(KINDS)})")
    kind = KINDS[kind_name]
    unit = require(merged, "unit", str, path, where)
    if unit not in UNITS:
        raise ConfigError(path, f"{where}.unit", f"unknown unit {unit!r} (known: {', '.join(UNITS)})")
    if kind_name != "informative" and UNITS[unit].numeric != kind.numeric:
        need = "a numeric unit" if kind.numeric else "unit \"none\""
        raise ConfigError(path, f"{where}.unit", f"kind {kind_name!r} needs {need}, not {unit!r}")
    present = set(merged) & _LIMITS
    missing, extra = sorted(kind.required - present), sorted(present - kind.allowed)
    if missing:
        raise ConfigError(path, f"{where}.{missing[0]}", f"missing (kind {kind_name!r} needs it)")
    if extra:
        raise ConfigError(path, f"{where}.{extra[0]}", f"not allowed for kind {kind_name!r}")
    limits = {k: require(merged, k, Decimal, path, where) for k in ("min", "max", "dose_based_k") if k in present}
    rule = UNITS[unit]
    for key, limit in limits.items():
        if (rule.low is not None and limit < rule.low) or (rule.high is not None and limit > rule.high):
            raise ConfigError(path, f"{where}.{key}", f"{limit} is impossible ({rule.rule})")
    if "min" in limits and "max" in limits and limits["min"] > limits["max"]:
        raise ConfigError(path, f"{where}.min", "min is above max")
    if "dose_based_k" in limits and (unit != "EU/mL" or limits["dose_based_k"] <= 0):
        raise ConfigError(path, f"{where}.dose_based_k", "only an endotoxin test (EU/mL) has a K/M limit; K > 0")
    words = {k: require(merged, k, str, path, where) for k in ("pass_result", "fail_result", "note") if k in merged}
    flags = {k: require(merged, k, bool, path, where) if k in merged else False
             for k in ("strict", "may_be_pending_at_conditional_release")}
    default_pass, default_fail = QUALITATIVE_DEFAULTS.get(kind_name, (None, None))
    test = ReleaseTest(
        id=test_id, name=require(merged, "name", str, path, where), kind=kind_name, unit=unit,
        group=require(merged, "group", str, path, where), method=require(merged, "method", str, path, where),
        blocking=require(merged, "blocking", bool, path, where), min=limits.get("min"), max=limits.get("max"),
        pass_result=words.get("pass_result", default_pass), fail_result=words.get("fail_result", default_fail),
        dose_based_k=limits.get("dose_based_k"), variant=merged.get("variant"), note=words.get("note", ""),
        **flags,
    )
    if test.pass_result is not None and test.pass_result.lower() == str(test.fail_result).lower():
        raise ConfigError(path, f"{where}.fail_result", "pass_result and fail_result must differ")
    return test


def _apply_variant(raw: dict[str, Any], path: Path, where: str) -> dict[str, Any]:
    """One key toggles: `variant = "x"` merges [tests.variants.x] over the test (e.g. HLA-DR blocking or not)."""
    if "variants" not in raw:
        if "variant" in raw:
            raise ConfigError(path, f"{where}.variant", "set, but the test has no [variants] tables")
        return raw
    variants = require(raw, "variants", dict, path, where)
    chosen = require(raw, "variant", str, path, where)
    if chosen not in variants or not isinstance(variants[chosen], dict):
        raise ConfigError(path, f"{where}.variant", f"{chosen!r} is not one of: {', '.join(variants)}")
    clash = sorted({"id", "variant", "variants"} & set(variants[chosen]))
    if clash:
        raise ConfigError(path, f"{where}.variants.{chosen}.{clash[0]}", "a variant cannot change this key")
    merged = {k: v for k, v in raw.items() if k != "variants"}
    merged.update(variants[chosen])
    return merged
