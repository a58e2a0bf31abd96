"""Trial protocols as versioned rule files (config/protocols/*.toml): enrolment criteria, dose levels, escalation.

A protocol file is the single place where a trial's measurable enrolment criteria (DOMAIN.md section 6, seeds
001 and 002), its dose levels and its dose-escalation plan live, so that changing a threshold is a reviewed
config change with a new version, never a code change. Every decision made with a protocol stores its id,
version and SHA-256 (DESIGN.md "Decisions store what they were judged with").

The loader is strict: an unknown comparator, unit or key, a missing field or an inconsistent escalation plan
raises ConfigError naming the file and the dotted key, so a typo cannot silently weaken a criterion.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mscbatch.core.configfiles import ConfigError, load_rule_file, require

if TYPE_CHECKING:
    from mscbatch.core.site_config import ProductCatalogue

# "is_true" is the only comparator of yes/no criteria (serology, pregnancy); the others compare a number.
NUMERIC_COMPARATORS = ("<", "<=", ">", ">=")
BOOLEAN_COMPARATOR = "is_true"
BOOLEAN_UNIT = "boolean"
# Units a criterion may be expressed in. A new unit is a deliberate code change: the UI shows it and the
# parameter name carries it (cells_per_kg style), so a misspelt unit must not load.
KNOWN_UNITS = frozenset({
    "points", "mL/min", "mL/min/m2", "%", "% predicted", "x ULN", "mmHg", "G/L", "g/dL", "/uL", "months",
    BOOLEAN_UNIT,
})
DOSE_BASES = ("viable", "total")

_CRITERION_KEYS = {"id", "parameter", "unit", "comparator", "threshold", "plausible", "text", "source", "required",
                   "accepts_never"}
_DOSING_KEYS = {"dose_levels_cells_per_kg", "dose_basis", "weight_valid_days", "tolerance_percent",
                "draw_resolution_ml", "infusion_volume_ml", "infusion_duration_h", "max_dmso_g_per_kg_per_day",
                "dmso_density_g_per_ml", "endotoxin_k_eu_per_kg_per_h", "weight_check_percent", "weight_check_days",
                "plausible_weight_kg", "source"}
#: defaults of the optional dosing keys: a weight more than 10 % away from one measured within 30 days is recorded
#: only once the clinician confirms it (a weight typed in pounds, 137.8 for 62.5 kg, would double the dose)
WEIGHT_CHECK_PERCENT = Decimal(10)
WEIGHT_CHECK_DAYS = 30
#: every weight recorded lies within these kg (patients.services.parse_weight), whatever the protocol
RECORDABLE_WEIGHT_KG = (Decimal(1), Decimal(400))
#: default of dosing.plausible_weight_kg: the weights plausible for an adult. A weight with no other weight measured
#: within weight_check_days to compare it with (the first one) is recorded outside them only once the clinician
#: confirms it: a slipped decimal point (6.25 for 62.5 kg) or a heavy adult's weight typed in pounds
PLAUSIBLE_WEIGHT_KG = (Decimal(35), Decimal(150))
_TOP_KEYS = {"id", "version", "trial_id", "short_name", "title", "products", "directed", "age", "inclusion",
             "exclusion", "dosing", "escalation"}


@dataclass(frozen=True)
class Criterion:
    """One measurable enrolment criterion. For an inclusion, "met" means the patient qualifies; for an
    exclusion, "met" means the patient is excluded.

    required=False: a missing value does not make the check incomplete (e.g. catheter PAP, only measured
    when echocardiography is suspicious). accepts_never=True: a numeric "months since" criterion accepts
    False for "never received", which cannot meet it.

    plausible (numeric criteria, required): the values a measurement in this unit can take. A value outside
    it is refused as a probable unit mix-up (platelets typed per uL, 25000, instead of 25 G/L; haemoglobin in
    g/L, 75, instead of 7.5 g/dL), which would otherwise read as a normal value and pass the exclusion.
    """

    id: str
    kind: str  # "inclusion" | "exclusion"
    parameter: str
    unit: str
    comparator: str
    threshold: Decimal | None
    text: str
    source: str
    required: bool = True
    accepts_never: bool = False
    plausible: tuple[Decimal, Decimal] | None = None

    @property
    def is_boolean(self) -> bool:
        return self.comparator == BOOLEAN_COMPARATOR


@dataclass(frozen=True)
class AgeLimits:
    """Strict age limits (both trials: > 18 and < 70 years), judged on exact dates (see enrolment)."""

    above_years: int
    below_years: int
    source: str


@dataclass(frozen=True)
class DosingSettings:
    """Per-protocol dose arithmetic settings (DOMAIN.md sections 5 and 6)."""

    dose_levels_cells_per_kg: tuple[Decimal, ...]
    dose_basis: str
    weight_valid_days: int
    tolerance_percent: Decimal
    draw_resolution_ml: Decimal
    infusion_volume_ml: Decimal
    infusion_duration_h: Decimal
    max_dmso_g_per_kg_per_day: Decimal
    dmso_density_g_per_ml: Decimal
    endotoxin_k_eu_per_kg_per_h: Decimal
    source: str
    # a new weight differing by more than weight_check_percent from the patient's previous weight measured within
    # weight_check_days is recorded only when the clinician confirms it (patients.services.record_weight)
    weight_check_percent: Decimal = WEIGHT_CHECK_PERCENT
    weight_check_days: int = WEIGHT_CHECK_DAYS
    # [lowest, highest] kg: a weight outside, with no weight within weight_check_days to compare it with, is
    # recorded only when the clinician confirms it (patients.services.implausible_weight)
    plausible_weight_kg: tuple[Decimal, Decimal] = PLAUSIBLE_WEIGHT_KG


@dataclass(frozen=True)
class EscalationStage:
    """A cohort of `patients` patients. One level: fixed. Several: the investigators must record which one
    (with the toxicity review they relied on) before the first patient of the stage is dosed."""

    id: str
    levels_cells_per_kg: tuple[Decimal, ...]
    patients: int
    rule: str

    @property
    def needs_decision(self) -> bool:
        return len(self.levels_cells_per_kg) > 1


@dataclass(frozen=True)
class EscalationPlan:
    starting_level_cells_per_kg: Decimal
    cohort_size: int
    stages: tuple[EscalationStage, ...]
    source: str
    # a patient counts towards the next stage (its decision, or its first prescription) only once their first
    # infusion is this many days old: the tolerance observed after it (SLE-UC seed 001: during the injection and
    # the 10 following days) is what the next stage rests on. 0: counted once the infusion has started.
    observation_days: int = 0


@dataclass(frozen=True)
class Protocol:
    id: str
    version: str
    sha256: str
    path: Path
    trial_id: str
    short_name: str
    title: str
    products: tuple[str, ...]
    directed: bool
    age: AgeLimits
    inclusion: tuple[Criterion, ...]
    exclusion: tuple[Criterion, ...]
    dosing: DosingSettings
    escalation: EscalationPlan

    @property
    def criteria(self) -> tuple[Criterion, ...]:
        return self.inclusion + self.exclusion

    def parameters(self) -> dict[str, str]:
        """parameter name -> unit, in file order: what an enrolment form has to ask for."""
        return {c.parameter: c.unit for c in self.criteria}


def format_cells_per_kg(cells_per_kg: Decimal) -> str:
    """Display a dose level the way the protocols write it: Decimal("2E+6") -> "2 x10^6/kg"."""
    millions = (cells_per_kg / Decimal(1_000_000)).normalize()
    return f"{millions:f} x10^6/kg"


def _check_keys(table: Any, allowed: set[str], file: Path, where: str) -> None:
    if not isinstance(table, dict):
        raise ConfigError(file, where or "(file)", f"expected a table, got {table!r}")
    for key in table:
        if key not in allowed:
            raise ConfigError(file, f"{where}.{key}" if where else key, "unknown key (typo?)")


def _decimal_list(table: dict[str, Any], key: str, file: Path, where: str) -> tuple[Decimal, ...]:
    values = require(table, key, list, file, where)
    out = []
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int | Decimal) or value <= 0:
            raise ConfigError(file, f"{where}.{key}[{i}]", f"expected a positive number, got {value!r}")
        out.append(Decimal(value))
    if not out:
        raise ConfigError(file, f"{where}.{key}", "must not be empty")
    return tuple(out)


def _positive(table: dict[str, Any], key: str, file: Path, where: str) -> Decimal:
    value = require(table, key, Decimal, file, where)
    if value <= 0:
        raise ConfigError(file, f"{where}.{key}", f"must be > 0, got {value}")
    return value


def _flag(table: dict[str, Any], key: str, default: bool, file: Path, where: str) -> bool:
    return require(table, key, bool, file, where) if key in table else default


def _criterion(raw: Any, kind: str, index: int, file: Path) -> Criterion:
    where = f"{kind}[{index}]"
    _check_keys(raw, _CRITERION_KEYS, file, where)
    comparator = require(raw, "comparator", str, file, where)
    unit = require(raw, "unit", str, file, where)
    if comparator != BOOLEAN_COMPARATOR and comparator not in NUMERIC_COMPARATORS:
        allowed = ", ".join((*NUMERIC_COMPARATORS, BOOLEAN_COMPARATOR))
        raise ConfigError(file, f"{where}.comparator", f"unknown comparator {comparator!r} (allowed: {allowed})")
    if unit not in KNOWN_UNITS:
        raise ConfigError(file, f"{where}.unit", f"unknown unit {unit!r} (allowed: {', '.join(sorted(KNOWN_UNITS))})")
    threshold: Decimal | None = None
    if comparator == BOOLEAN_COMPARATOR:
        if unit != BOOLEAN_UNIT:
            raise ConfigError(file, f"{where}.unit", f"comparator 'is_true' needs unit 'boolean', got {unit!r}")
        if "threshold" in raw or "plausible" in raw:
            raise ConfigError(file, f"{where}.threshold", "a yes/no criterion takes no threshold or plausible range")
        plausible = None
    else:
        if unit == BOOLEAN_UNIT:
            raise ConfigError(file, f"{where}.unit", f"comparator {comparator!r} needs a numeric unit, not 'boolean'")
        threshold = require(raw, "threshold", Decimal, file, where)
        plausible = _plausible(raw, threshold, file, where)
    return Criterion(
        id=require(raw, "id", str, file, where),
        kind=kind,
        parameter=require(raw, "parameter", str, file, where),
        unit=unit,
        comparator=comparator,
        threshold=threshold,
        text=require(raw, "text", str, file, where),
        source=require(raw, "source", str, file, where),
        required=_flag(raw, "required", True, file, where),
        accepts_never=_flag(raw, "accepts_never", False, file, where),
        plausible=plausible,
    )


def _plausible(raw: dict[str, Any], threshold: Decimal, file: Path, where: str) -> tuple[Decimal, Decimal]:
    bounds = require(raw, "plausible", list, file, where)
    if len(bounds) != 2 or any(isinstance(b, bool) or not isinstance(b, int | Decimal) for b in bounds):
        raise ConfigError(file, f"{where}.plausible", f"expected [lowest, highest] numbers, got {bounds!r}")
    low, high = Decimal(bounds[0]), Decimal(bounds[1])
    if not 0 <= low < high:
        raise ConfigError(file, f"{where}.plausible", f"expected 0 <= lowest < highest, got {bounds!r}")
    if not low <= threshold <= high:
        raise ConfigError(file, f"{where}.plausible", f"the threshold {threshold} lies outside {bounds!r}")
    return low, high


def _dosing(raw: dict[str, Any], file: Path) -> DosingSettings:
    where = "dosing"
    _check_keys(raw, _DOSING_KEYS, file, where)
    basis = require(raw, "dose_basis", str, file, where)
    if basis not in DOSE_BASES:
        raise ConfigError(file, f"{where}.dose_basis", f"must be one of {DOSE_BASES}, got {basis!r}")
    valid_days = require(raw, "weight_valid_days", int, file, where)
    if isinstance(valid_days, bool) or valid_days < 0:
        raise ConfigError(file, f"{where}.weight_valid_days", f"must be a whole number of days >= 0, got {valid_days!r}")
    tolerance = require(raw, "tolerance_percent", Decimal, file, where)
    if not Decimal(0) <= tolerance < Decimal(100):
        raise ConfigError(file, f"{where}.tolerance_percent", f"must be in [0, 100), got {tolerance}")
    check_percent = (require(raw, "weight_check_percent", Decimal, file, where) if "weight_check_percent" in raw
                     else WEIGHT_CHECK_PERCENT)
    if not Decimal(0) < check_percent < Decimal(100):
        raise ConfigError(file, f"{where}.weight_check_percent", f"must be in (0, 100), got {check_percent}")
    check_days = _days(raw, "weight_check_days", WEIGHT_CHECK_DAYS, file, where)
    plausible_weight = _weight_range(raw, file, where)
    return DosingSettings(
        dose_levels_cells_per_kg=_decimal_list(raw, "dose_levels_cells_per_kg", file, where),
        dose_basis=basis,
        weight_valid_days=valid_days,
        tolerance_percent=tolerance,
        **{key: _positive(raw, key, file, where) for key in (
            "draw_resolution_ml", "infusion_volume_ml", "infusion_duration_h", "max_dmso_g_per_kg_per_day",
            "dmso_density_g_per_ml", "endotoxin_k_eu_per_kg_per_h")},
        source=require(raw, "source", str, file, where),
        weight_check_percent=check_percent,
        weight_check_days=check_days,
        plausible_weight_kg=plausible_weight,
    )


def _weight_range(raw: dict[str, Any], file: Path, where: str) -> tuple[Decimal, Decimal]:
    """The optional dosing.plausible_weight_kg = [lowest, highest] kg (PLAUSIBLE_WEIGHT_KG when absent), inside the
    weights any patient may be recorded with: a range reaching beyond them would promise a check never made."""
    if "plausible_weight_kg" not in raw:
        return PLAUSIBLE_WEIGHT_KG
    bounds = raw["plausible_weight_kg"]
    if (not isinstance(bounds, list) or len(bounds) != 2
            or any(isinstance(b, bool) or not isinstance(b, int | Decimal) for b in bounds)):
        raise ConfigError(file, f"{where}.plausible_weight_kg", f"expected [lowest, highest] kg, got {bounds!r}")
    low, high = Decimal(bounds[0]), Decimal(bounds[1])
    least, most = RECORDABLE_WEIGHT_KG
    if not least <= low < high <= most:
        raise ConfigError(file, f"{where}.plausible_weight_kg",
                          f"expected {least} <= lowest < highest <= {most} kg, got {bounds!r}")
    return low, high


def _days(table: dict[str, Any], key: str, default: int, file: Path, where: str) -> int:
    """An optional whole number of days >= 0 (`default` when the key is absent)."""
    if key not in table:
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(file, f"{where}.{key}", f"must be a whole number of days >= 0, got {value!r}")
    return value


def _escalation(raw: dict[str, Any], levels: tuple[Decimal, ...], file: Path) -> EscalationPlan:
    """Every level named by the plan must be a dose level; the starting level is the first stage's level."""
    where = "escalation"
    _check_keys(raw, {"starting_level_cells_per_kg", "cohort_size", "stages", "observation_days", "source"}, file,
                where)
    cohort_size = require(raw, "cohort_size", int, file, where)
    if isinstance(cohort_size, bool) or cohort_size < 1:
        raise ConfigError(file, f"{where}.cohort_size", f"must be a whole number >= 1, got {cohort_size!r}")
    stages = []
    for i, stage in enumerate(require(raw, "stages", list, file, where)):
        at = f"{where}.stages[{i}]"
        _check_keys(stage, {"id", "levels_cells_per_kg", "patients", "rule"}, file, at)
        stage_levels = _decimal_list(stage, "levels_cells_per_kg", file, at)
        for j, level in enumerate(stage_levels):
            if level not in levels:
                raise ConfigError(file, f"{at}.levels_cells_per_kg[{j}]", f"{level} is not one of dosing.dose_levels_cells_per_kg")
        patients = stage.get("patients", cohort_size)
        if isinstance(patients, bool) or not isinstance(patients, int) or patients < 1:
            raise ConfigError(file, f"{at}.patients", f"must be a whole number >= 1, got {patients!r}")
        stages.append(EscalationStage(require(stage, "id", str, file, at), stage_levels, patients,
                                      require(stage, "rule", str, file, at)))
    if not stages:
        raise ConfigError(file, f"{where}.stages", "at least one stage is needed")
    if len({s.id for s in stages}) != len(stages):
        raise ConfigError(file, f"{where}.stages", "stage ids must be unique")
    starting = require(raw, "starting_level_cells_per_kg", Decimal, file, where)
    if stages[0].needs_decision or stages[0].levels_cells_per_kg[0] != starting:
        raise ConfigError(file, f"{where}.starting_level_cells_per_kg",
                          f"{starting} must be the single level of the first stage {stages[0].id!r}")
    return EscalationPlan(starting, cohort_size, tuple(stages), require(raw, "source", str, file, where),
                          observation_days=_days(raw, "observation_days", 0, file, where))


def load_protocol(path: Path) -> Protocol:
    """Load and validate one protocol file; raise ConfigError (file + key) on any schema problem."""
    rule_file = load_rule_file(path)
    data = rule_file.data
    _check_keys(data, _TOP_KEYS, path, "")
    products = require(data, "products", list, path, "")
    if not products or not all(isinstance(p, str) and p for p in products):
        raise ConfigError(path, "products", "expected a non-empty list of product ids")
    age_raw = require(data, "age", dict, path, "")
    _check_keys(age_raw, {"above_years", "below_years", "source"}, path, "age")
    age = AgeLimits(require(age_raw, "above_years", int, path, "age"), require(age_raw, "below_years", int, path, "age"),
                    require(age_raw, "source", str, path, "age"))
    if not 0 <= age.above_years < age.below_years:
        raise ConfigError(path, "age", f"above_years {age.above_years} must be below below_years {age.below_years}")
    inclusion = tuple(_criterion(c, "inclusion", i, path) for i, c in enumerate(require(data, "inclusion", list, path, "")))
    exclusion = tuple(_criterion(c, "exclusion", i, path) for i, c in enumerate(data.get("exclusion", [])))
    ids: dict[str, str] = {}
    parameters: dict[str, str] = {}
    keyed = [(f"inclusion[{i}]", c) for i, c in enumerate(inclusion)] + [(f"exclusion[{i}]", c) for i, c in enumerate(exclusion)]
    for key, criterion in keyed:
        if criterion.id in ids:
            raise ConfigError(path, f"{key}.id", f"duplicate criterion id {criterion.id!r} (also {ids[criterion.id]})")
        if criterion.parameter in parameters:
            raise ConfigError(path, f"{key}.parameter",
                              f"parameter {criterion.parameter!r} already used by {parameters[criterion.parameter]}")
        ids[criterion.id] = parameters[criterion.parameter] = key
    dosing = _dosing(require(data, "dosing", dict, path, ""), path)
    return Protocol(
        id=rule_file.id, version=rule_file.version, sha256=rule_file.sha256, path=path,
        trial_id=require(data, "trial_id", str, path, ""), short_name=require(data, "short_name", str, path, ""),
        title=require(data, "title", str, path, ""), products=tuple(products),
        directed=require(data, "directed", bool, path, ""), age=age, inclusion=inclusion, exclusion=exclusion,
        dosing=dosing,
        escalation=_escalation(require(data, "escalation", dict, path, ""), dosing.dose_levels_cells_per_kg, path),
    )


def load_protocols(directory: Path | None = None) -> dict[str, Protocol]:
    """All protocol files of a folder (default: the shipped config/protocols), keyed by protocol id."""
    if directory is None:
        from mscbatch.paths import config_dir

        directory = config_dir() / "protocols"
    protocols: dict[str, Protocol] = {}
    for path in sorted(directory.glob("*.toml")):
        protocol = load_protocol(path)
        if protocol.id in protocols:
            raise ConfigError(path, "id", f"protocol id {protocol.id!r} already used by {protocols[protocol.id].path}")
        protocols[protocol.id] = protocol
    return protocols


def trial_ids(text: str) -> set[str]:
    """The registry ids a trial field names: one, or two as "NCT03562065 / 2023-503456-12-00" (site_config)."""
    return {part.strip().upper() for part in text.split("/") if part.strip()}


def check_products(protocols: Mapping[str, Protocol], catalogue: ProductCatalogue) -> None:
    """Each protocol's products must exist in products.toml and be made for the protocol's trial. The bag label
    prints the product's `trial` and the dose sheet the protocol's `trial_id`: a product of another trial would
    put another trial's id on the label of a bag given in this one. Raise ConfigError naming the protocol file and
    its products[i] key, and the products.toml key it disagrees with."""
    for protocol in protocols.values():
        for index, product_id in enumerate(protocol.products):
            position = next((i for i, p in enumerate(catalogue.products) if p.id == product_id), None)
            if position is None:
                raise ConfigError(protocol.path, f"products[{index}]",
                                  f"product {product_id!r} is not in {catalogue.path.name} "
                                  f"(known: {', '.join(catalogue.ids)})")
            product = catalogue.products[position]
            if not trial_ids(product.trial) & trial_ids(protocol.trial_id):
                raise ConfigError(protocol.path, f"products[{index}]",
                                  f"product {product_id!r} is made for trial {product.trial!r} "
                                  f"({catalogue.path.name}, products[{position}].trial), not for this protocol's "
                                  f"trial_id {protocol.trial_id!r}: its labels would print another trial's id. "
                                  "Correct the trial of one file or the other")
