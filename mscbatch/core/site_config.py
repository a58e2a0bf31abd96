"""Site settings (config/site.toml) and products (config/products.toml), validated into frozen dataclasses.

Both are versioned rule files (configfiles.load_rule_file): a lot records the id, version and SHA-256 of the
files it was made under. Every problem raises ConfigError naming the file and the key: an unknown key (a typo
such as `max_pasage` must not silently drop a limit), a missing field, an unknown kind or a bad unit.
FINs and product description codes are ICCBBA-licensed site data (DOMAIN.md section 7), which is why they are
here and not in code.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mscbatch.core.configfiles import ConfigError, load_rule_file, require
from mscbatch.core.culture import CultureLimits
from mscbatch.core.identifiers import (
    AUTOLOGOUS_COLLECTION_TYPES,
    DEMO_FIN,
    IdentifierError,
    ProductCode,
    make_product_code,
    validate_fin,
)

PRODUCT_CLASSES: dict[str, str] = {
    "MSC(M)": "bone_marrow", "MSC(AT)": "adipose_tissue", "MSC(WJ)": "umbilical_cord", "MSC(CB)": "cord_blood",
}
"""ISBT 128 / ISCT class names (ICCBBA-ISCT joint statement 2021) and the tissue each comes from."""

DURATION_UNITS = {"minutes": timedelta(minutes=1), "hours": timedelta(hours=1), "days": timedelta(days=1)}
SHELF_LIFE_STARTS = ("freeze", "collection")
WARMEST_STORAGE_C = Decimal(-135)
"""Vapour-phase liquid nitrogen storage: nothing warmer than -135 C is accepted (DOMAIN.md section 4)."""


@dataclass(frozen=True)
class SiteConfig:
    path: Path
    id: str
    version: str
    sha256: str
    demo: bool
    facility_name: str
    fin: str
    timezone: str
    lot_number_format: str
    lot_number_regex: re.Pattern[str]
    storage_temperature_max_c: Decimal

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def format_lot_number(self, year: int, seq: int) -> str:
        """The lot number for the seq-th lot of a year, e.g. MSC-2025-0001; refused if it breaks the regex
        (e.g. seq 10000 with a 4-digit pattern: the yearly counter is exhausted, the format must change)."""
        number = self.lot_number_format.format(year=year, seq=seq)
        if not self.is_valid_lot_number(number):
            raise ValueError(f"lot number {number!r} does not match the site pattern "
                             f"{self.lot_number_regex.pattern!r} ({self.path.name}, lot_number)")
        return number

    def is_valid_lot_number(self, text: str) -> bool:
        return bool(self.lot_number_regex.fullmatch(text))


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    product_class: str
    tissue_source: str
    product_description_code: str
    collection_type: str
    trial: str  # the clinical trial id its labels print (required)
    shelf_life: timedelta
    shelf_life_from: str
    post_thaw_limit: timedelta
    storage_temperature_max_c: Decimal
    culture_limits: CultureLimits
    #: reagent types the manufacturing record must name before quarantine (DOMAIN.md section 4), each entry the
    #: types of which any one will do: (("medium",), ("platelet_lysate", "fbs"), ("trypsin",), ("dmso",))
    required_reagent_types: tuple[tuple[str, ...], ...] = ()
    #: the post-thaw limit is a demo value the site has still to set from its stability studies (`to_confirm =
    #: true`): the bedside check says so beside it (DOMAIN.md: a value "to confirm" is flagged in the UI)
    post_thaw_limit_to_confirm: bool = False
    #: the DMSO % (v/v) a bag of the product is frozen with, (min, max) from `cryopreservation.dmso_percent` (a
    #: site value): required of a product frozen with DMSO (required_reagent_types lists "dmso"), None for the others
    #: (they keep the 0 % rule: no 0 % once a DMSO lot is recorded on the lot)
    bag_dmso_percent: tuple[Decimal, Decimal] | None = None

    @property
    def post_thaw_limit_minutes(self) -> int:
        return int(self.post_thaw_limit.total_seconds() // 60)

    @property
    def is_directed(self) -> bool:
        """Directed (e.g. familial marrow in SSc-BM): "For use by intended recipient only" (DOMAIN.md 2)."""
        return self.product_code().is_directed

    def product_code(self, division: str = "00") -> ProductCode:
        return make_product_code(self.product_description_code, self.collection_type, division)


@dataclass(frozen=True)
class ProductCatalogue:
    path: Path
    id: str
    version: str
    sha256: str
    products: tuple[Product, ...]

    def get(self, product_id: str) -> Product:
        for product in self.products:
            if product.id == product_id:
                return product
        raise KeyError(f"no product {product_id!r} in {self.path.name} (known: {', '.join(self.ids)})")

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.products)


def effective_storage_limit_c(site: SiteConfig, product: Product) -> Decimal:
    """The stricter (colder) of the site SOP limit and the product's own storage limit."""
    return min(site.storage_temperature_max_c, product.storage_temperature_max_c)


def load_site_config(path: Path) -> SiteConfig:
    rule = load_rule_file(path)
    data = rule.data
    _only(data, {"id", "version", "demo", "facility_name", "fin", "timezone", "lot_number", "storage"}, path, "")
    demo = require(data, "demo", bool, path, "") if "demo" in data else False
    try:
        fin = validate_fin(require(data, "fin", str, path, ""))
    except IdentifierError as exc:
        raise ConfigError(path, "fin", str(exc)) from exc
    if fin == DEMO_FIN and not demo:
        raise ConfigError(path, "fin", f"{DEMO_FIN} is the fake demo FIN; set your ICCBBA FIN or mark demo = true")
    timezone = require(data, "timezone", str, path, "")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(path, "timezone", f"unknown time zone {timezone!r} (use an IANA name)") from exc
    lot = require(data, "lot_number", dict, path, "")
    _only(lot, {"format", "regex"}, path, "lot_number")
    lot_format, lot_regex = _lot_number_rule(lot, path)
    storage = require(data, "storage", dict, path, "")
    _only(storage, {"temperature"}, path, "storage")
    facility_name = require(data, "facility_name", str, path, "")
    _check_printable(facility_name, "processing_facility", path, "facility_name")
    return SiteConfig(
        path=path, id=rule.id, version=rule.version, sha256=rule.sha256, demo=demo,
        facility_name=facility_name, fin=fin, timezone=timezone,
        lot_number_format=lot_format, lot_number_regex=lot_regex,
        storage_temperature_max_c=_temperature(storage, "temperature", path, "storage"))


def _check_printable(text: str, label_field: str, path: Path, key: str) -> None:
    """A text every bag label prints: refused when the label could not print it (mscbatch.labels.field_problem,
    the renderer's own rule), at load time rather than at the first print."""
    from mscbatch.labels import field_problem

    problem = field_problem(label_field, text.strip())
    if problem:
        raise ConfigError(path, key, f"{text.strip()[:60]!r} {problem} (every bag label prints it)")


def load_products(path: Path) -> ProductCatalogue:
    rule = load_rule_file(path)
    _only(rule.data, {"id", "version", "products"}, path, "")
    entries = require(rule.data, "products", list, path, "")
    if not entries:
        raise ConfigError(path, "products", "no product defined")
    products: list[Product] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(path, f"products[{index}]", "expected a table ([[products]])")
        products.append(_product(entry, path, f"products[{index}]"))
    seen_ids: set[str] = set()
    seen_codes: dict[str, str] = {}
    for index, product in enumerate(products):
        if product.id in seen_ids:
            raise ConfigError(path, f"products[{index}].id", f"duplicate product id {product.id!r}")
        seen_ids.add(product.id)
        code = product.product_code().text
        if code in seen_codes:
            raise ConfigError(path, f"products[{index}].product_description_code",
                              f"product code {code} is already used by {seen_codes[code]}")
        seen_codes[code] = product.id
    return ProductCatalogue(path=path, id=rule.id, version=rule.version, sha256=rule.sha256,
                            products=tuple(products))


def _product(entry: dict[str, Any], path: Path, where: str) -> Product:
    _only(entry, {"id", "name", "class", "tissue_source", "product_description_code", "collection_type", "trial",
                  "shelf_life", "post_thaw_limit", "storage_temperature", "culture", "cryopreservation",
                  "required_reagent_types"},
          path, where)
    product_class = require(entry, "class", str, path, where)
    if product_class not in PRODUCT_CLASSES:
        raise ConfigError(path, f"{where}.class", f"unknown class {product_class!r}; use one of {', '.join(PRODUCT_CLASSES)}")
    tissue = require(entry, "tissue_source", str, path, where)
    if tissue not in PRODUCT_CLASSES.values():
        raise ConfigError(path, f"{where}.tissue_source",
                          f"unknown tissue source {tissue!r}; use one of {', '.join(PRODUCT_CLASSES.values())}")
    if PRODUCT_CLASSES[product_class] != tissue:
        raise ConfigError(path, f"{where}.tissue_source",
                          f"{product_class} comes from {PRODUCT_CLASSES[product_class]}, not {tissue}")
    pdc = require(entry, "product_description_code", str, path, where)
    collection_type = require(entry, "collection_type", str, path, where)
    try:
        make_product_code(pdc, collection_type)
    except IdentifierError as exc:
        key = "collection_type" if "collection type" in str(exc) else "product_description_code"
        raise ConfigError(path, f"{where}.{key}", str(exc)) from exc
    if collection_type in AUTOLOGOUS_COLLECTION_TYPES:
        raise ConfigError(path, f"{where}.collection_type", f"{collection_type!r} means for autologous use only, and "
                          "autologous products are not modelled: their label would have to print \"FOR AUTOLOGOUS "
                          "USE ONLY\" and the patient (21 CFR 1271.90(c)(1)), and only that patient may receive "
                          "them; use V or 7 (allogeneic) or 2 (directed, for use by intended recipient only)")
    shelf = require(entry, "shelf_life", dict, path, where)
    _only(shelf, {"value", "unit", "from"}, path, f"{where}.shelf_life")
    shelf_from = require(shelf, "from", str, path, f"{where}.shelf_life")
    if shelf_from not in SHELF_LIFE_STARTS:
        raise ConfigError(path, f"{where}.shelf_life.from", f"unknown start {shelf_from!r}; use freeze or collection")
    thaw = require(entry, "post_thaw_limit", dict, path, where)
    _only(thaw, {"value", "unit", "to_confirm"}, path, f"{where}.post_thaw_limit")
    thaw_to_confirm = thaw.get("to_confirm", False)
    if not isinstance(thaw_to_confirm, bool):
        raise ConfigError(path, f"{where}.post_thaw_limit.to_confirm", "must be true or false")
    product_id = require(entry, "id", str, path, where)
    required_reagents = _required_reagents(entry, product_id, path, where)
    cryopreservation = require(entry, "cryopreservation", dict, path, where)
    _only(cryopreservation, {"cells_per_ml", "dmso_percent"}, path, f"{where}.cryopreservation")
    return Product(
        id=product_id, name=require(entry, "name", str, path, where),
        product_class=product_class, tissue_source=tissue, product_description_code=pdc.strip().upper(),
        collection_type=collection_type,
        trial=_trial(entry, product_id, path, where),
        shelf_life=_duration(shelf, path, f"{where}.shelf_life"), shelf_life_from=shelf_from,
        post_thaw_limit=_duration(thaw, path, f"{where}.post_thaw_limit"), post_thaw_limit_to_confirm=thaw_to_confirm,
        storage_temperature_max_c=_temperature(entry, "storage_temperature", path, where),
        culture_limits=replace(
            _culture_limits(require(entry, "culture", dict, path, where), path, f"{where}.culture"),
            bag_cells_per_ml=_bag_cells_per_ml(cryopreservation, path, f"{where}.cryopreservation")),
        required_reagent_types=required_reagents,
        bag_dmso_percent=_bag_dmso_percent(cryopreservation, product_id, ("dmso",) in required_reagents, path,
                                           f"{where}.cryopreservation"))


def _required_reagents(entry: dict[str, Any], product_id: str, path: Path, where: str) -> tuple[tuple[str, ...], ...]:
    """`required_reagent_types`, required of every product: the reagent lots its manufacturing record must name
    before the lot goes to quarantine (DOMAIN.md section 4: recalls happen by reagent lot too). Each entry is a
    reagent type of the reagent lots (mscbatch.lots.reagent_rules.REAGENT_TYPES), or types joined by " or " when
    any one will do ("platelet_lysate or fbs"). An unknown or repeated type is refused naming the product."""
    from mscbatch.lots.reagent_rules import ALTERNATIVE, REQUIRABLE_TYPES, parse_requirement

    key = f"{where}.required_reagent_types"
    known = ", ".join(REQUIRABLE_TYPES)
    if "required_reagent_types" not in entry:
        raise ConfigError(path, key, f"missing for product {product_id!r}: list the reagent types its manufacturing "
                          "record must name before quarantine, e.g. required_reagent_types = [\"medium\", "
                          "\"platelet_lysate or fbs\", \"trypsin\", \"dmso\"] (types: " + known + ")")
    entries = entry["required_reagent_types"]
    if not isinstance(entries, list) or not all(isinstance(item, str) for item in entries):
        raise ConfigError(path, key, f"for product {product_id!r}: expected a list of reagent types (texts), got "
                          f"{entries!r}")
    seen: set[str] = set()
    requirements = []
    for item in entries:
        requirement = parse_requirement(item)
        for kind in requirement:
            if kind not in REQUIRABLE_TYPES:
                raise ConfigError(path, key, f"unknown reagent type {kind!r} for product {product_id!r}; use "
                                  f"{known}, or types joined by {ALTERNATIVE.strip()!r} when any one will do "
                                  "(\"platelet_lysate or fbs\")")
            if kind in seen:
                raise ConfigError(path, key, f"reagent type {kind!r} is listed twice for product {product_id!r}")
            seen.add(kind)
        requirements.append(requirement)
    return tuple(requirements)


#: The longest trial id the bag label's trial box holds (labels/bag_100x100.toml: two registry ids on two lines).
#: Checked when the configuration loads, not first at the first print of a lot; the renderer still refuses,
#: never cuts off, an id whose letters are too wide for the box.
TRIAL_ID_MAX = 31


def _trial(entry: dict[str, Any], product_id: str, path: Path, where: str) -> str:
    """The product's clinical trial id, required: its label prints "For clinical trial use only" + this id
    (DOMAIN.md section 7), and a label saying "clinical trial" without naming the trial is incomplete."""
    trial = entry.get("trial")
    if trial is None or (isinstance(trial, str) and not trial.strip()):
        raise ConfigError(path, f"{where}.trial", f"missing for product {product_id!r}: every product needs the id "
                          "of its clinical trial (e.g. trial = \"NCT03562065\"), printed on its labels after "
                          "\"For clinical trial use only\"")
    trial = str(require(entry, "trial", str, path, where)).strip()
    if len(trial) > TRIAL_ID_MAX or not (trial.isascii() and trial.isprintable()):
        raise ConfigError(path, f"{where}.trial", f"{trial[:40]!r} for product {product_id!r}: a trial id is at most "
                          f"{TRIAL_ID_MAX} printable ASCII characters (a registry number such as NCT03562065 or "
                          "2023-503456-12-00, or two: \"NCT03562065 / 2023-503456-12-00\"); the bag label's trial "
                          "box holds no more")
    return trial


def _culture_limits(table: dict[str, Any], path: Path, where: str) -> CultureLimits:
    _only(table, {"max_passage", "warn_passage", "max_cumulative_pd", "warn_cumulative_pd", "min_doubling_time"},
          path, where)
    max_passage = require(table, "max_passage", int, path, where)
    warn_passage = require(table, "warn_passage", int, path, where) if "warn_passage" in table else None
    max_pd = require(table, "max_cumulative_pd", Decimal, path, where)
    warn_pd = require(table, "warn_cumulative_pd", Decimal, path, where) if "warn_cumulative_pd" in table else None
    if max_passage < 0:
        raise ConfigError(path, f"{where}.max_passage", f"must be 0 or more, got {max_passage}")
    if warn_passage is not None and not 0 <= warn_passage <= max_passage:
        raise ConfigError(path, f"{where}.warn_passage", f"must be between 0 and max_passage {max_passage}")
    if max_pd <= 0:
        raise ConfigError(path, f"{where}.max_cumulative_pd", f"must be greater than 0, got {max_pd}")
    if warn_pd is not None and not 0 < warn_pd <= max_pd:
        raise ConfigError(path, f"{where}.warn_cumulative_pd", f"must be above 0 and at most {max_pd}")
    doubling = require(table, "min_doubling_time", dict, path, where)
    _only(doubling, {"value", "unit"}, path, f"{where}.min_doubling_time")
    min_doubling = _duration(doubling, path, f"{where}.min_doubling_time")
    return CultureLimits(max_passage=max_passage, max_cumulative_pd=max_pd,
                         warn_passage=warn_passage, warn_cumulative_pd=warn_pd,
                         min_doubling_time_hours=Decimal(int(min_doubling.total_seconds())) / 3600)


#: the unit of a product's `cryopreservation.cells_per_ml` range: millions of cells per mL, as the forms take them
CELLS_PER_ML_UNIT = "10^6/mL"


def _bag_cells_per_ml(table: dict[str, Any], path: Path, where: str) -> tuple[int, int]:
    """`cryopreservation.cells_per_ml = { min, max, unit = "10^6/mL" }`: the viable cells per mL a bag of the
    product may hold (a site value from the product specification); returned in cells per mL."""
    here = f"{where}.cells_per_ml"
    span = require(table, "cells_per_ml", dict, path, where)
    _only(span, {"min", "max", "unit"}, path, here)
    unit = require(span, "unit", str, path, here)
    if unit != CELLS_PER_ML_UNIT:
        raise ConfigError(path, f"{here}.unit", f"give the range in millions of cells per mL (unit = "
                          f"\"{CELLS_PER_ML_UNIT}\"), got {unit!r}")
    low, high = require(span, "min", Decimal, path, here), require(span, "max", Decimal, path, here)
    if not low.is_finite() or low <= 0:
        raise ConfigError(path, f"{here}.min", f"must be greater than 0, got {low}")
    if not high.is_finite() or high < low or high > 1000:
        raise ConfigError(path, f"{here}.max", f"must be between min {low} and 1000, got {high}")
    return int(low * 10**6), int(high * 10**6)


#: the unit of a product's `cryopreservation.dmso_percent` range: percent (v/v), never a fraction
DMSO_PERCENT_UNIT = "%"


def _bag_dmso_percent(table: dict[str, Any], product_id: str, frozen_with_dmso: bool, path: Path,
                      where: str) -> tuple[Decimal, Decimal] | None:
    """`cryopreservation.dmso_percent = { min, max, unit = "%" }`: the DMSO % (v/v) a bag of the product is frozen
    with (a site value from the product specification; 5-10 % is usual for MSC). The dose's DMSO per kg is counted
    from the bag's DMSO %, so a fraction typed for a percentage (0.1 for 10 %) must be refused at the freezing.
    Required of a product frozen with DMSO (required_reagent_types lists "dmso"); refused on one that is not (its
    bags are frozen without DMSO, a range would say otherwise)."""
    here = f"{where}.dmso_percent"
    example = f"dmso_percent = {{ min = 5, max = 10, unit = \"{DMSO_PERCENT_UNIT}\" }}"
    if "dmso_percent" not in table:
        if frozen_with_dmso:
            raise ConfigError(path, here, f"missing for product {product_id!r}, frozen with DMSO (required_reagent_"
                              f"types lists \"dmso\"): give the DMSO % range its bags are frozen with, e.g. "
                              f"{example} (from the product specification)")
        return None
    if not frozen_with_dmso:
        raise ConfigError(path, here, f"product {product_id!r} is not frozen with DMSO (its required_reagent_types "
                          "does not list \"dmso\"): list \"dmso\" there, or remove the DMSO range")
    span = require(table, "dmso_percent", dict, path, where)
    _only(span, {"min", "max", "unit"}, path, here)
    unit = require(span, "unit", str, path, here)
    if unit != DMSO_PERCENT_UNIT:
        raise ConfigError(path, f"{here}.unit", f"give the range in percent (unit = \"{DMSO_PERCENT_UNIT}\", "
                          f"10 for 10 %), got {unit!r}")
    low, high = require(span, "min", Decimal, path, here), require(span, "max", Decimal, path, here)
    if not low.is_finite() or low <= 0:
        raise ConfigError(path, f"{here}.min", f"must be greater than 0 %, got {low}")
    if not high.is_finite() or high <= low or high > 100:
        raise ConfigError(path, f"{here}.max", f"must be above min {low} and at most 100 %, got {high}")
    return low, high


def _duration(table: dict[str, Any], path: Path, where: str) -> timedelta:
    value = require(table, "value", Decimal, path, where)
    unit = require(table, "unit", str, path, where)
    if unit in ("months", "years"):
        raise ConfigError(path, f"{where}.unit", f"{unit} have no fixed length; give the duration in days")
    if unit not in DURATION_UNITS:
        raise ConfigError(path, f"{where}.unit", f"unknown unit {unit!r}; use {', '.join(DURATION_UNITS)}")
    if value <= 0:
        raise ConfigError(path, f"{where}.value", f"must be greater than 0, got {value}")
    microseconds = value * int(DURATION_UNITS[unit].total_seconds()) * 10**6
    return timedelta(microseconds=int(microseconds))


def _temperature(mapping: dict[str, Any], key: str, path: Path, where: str) -> Decimal:
    here = f"{where}.{key}" if where else key
    table = require(mapping, key, dict, path, where)
    _only(table, {"max", "unit"}, path, here)
    unit = require(table, "unit", str, path, here)
    if unit != "C":
        raise ConfigError(path, f"{here}.unit", f"temperatures are in degrees Celsius (unit = \"C\"), got {unit!r}")
    maximum = require(table, "max", Decimal, path, here)
    if maximum > WARMEST_STORAGE_C:
        raise ConfigError(path, f"{here}.max", f"{maximum} C is warmer than vapour-phase nitrogen storage "
                          f"({WARMEST_STORAGE_C} C or colder)")
    return maximum


def _lot_number_rule(lot: dict[str, Any], path: Path) -> tuple[str, re.Pattern[str]]:
    lot_format = require(lot, "format", str, path, "lot_number")
    fields = {name for _, name, _, _ in string.Formatter().parse(lot_format) if name is not None}
    if fields - {"year", "seq"} or "seq" not in fields:
        raise ConfigError(path, "lot_number.format",
                          f"may use only {{year}} and {{seq}}, and must use {{seq}}; found {sorted(fields)}")
    try:
        pattern = re.compile(require(lot, "regex", str, path, "lot_number"))
    except re.error as exc:
        raise ConfigError(path, "lot_number.regex", f"not a valid regular expression: {exc}") from exc
    for year, seq in ((2025, 1), (2099, 9999)):
        try:
            sample = lot_format.format(year=year, seq=seq)
        except (ValueError, IndexError) as exc:
            raise ConfigError(path, "lot_number.format", f"cannot be formatted: {exc}") from exc
        if not pattern.fullmatch(sample):
            raise ConfigError(path, "lot_number.regex", f"does not match {sample!r}, which the format produces")
    return lot_format, pattern


def _only(mapping: dict[str, Any], allowed: set[str], path: Path, where: str) -> None:
    """Refuse unknown keys: a misspelt limit would otherwise be ignored and the product run without it."""
    for key in mapping:
        if key not in allowed:
            raise ConfigError(path, f"{where}.{key}" if where else key,
                              f"unknown key; expected one of {', '.join(sorted(allowed))}")
