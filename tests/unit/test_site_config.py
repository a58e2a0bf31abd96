"""config/site.toml and config/products.toml: the shipped files load; every schema error names file and key."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from mscbatch.core.configfiles import ConfigError
from mscbatch.core.identifiers import DEMO_FIN
from mscbatch.core.site_config import TRIAL_ID_MAX, effective_storage_limit_c, load_products, load_site_config
from mscbatch.paths import config_dir

SITE = config_dir() / "site.toml"
PRODUCTS = config_dir() / "products.toml"


def _edited(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    text = source.read_text(encoding="utf-8")
    assert old in text, f"test setup: {old!r} not in {source.name}"
    target = tmp_path / source.name
    target.write_text(text.replace(old, new, 1), encoding="utf-8")
    return target


def _expect_error(path: Path, loader, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        loader(path)
    assert caught.value.key == key
    assert fragment in caught.value.problem
    assert str(path) in str(caught.value)


def test_the_shipped_site_file_is_a_demo_with_the_fake_fin() -> None:
    site = load_site_config(SITE)
    assert site.demo and site.fin == DEMO_FIN
    assert site.timezone == "Europe/Paris" and str(site.tz) == "Europe/Paris"
    assert site.id == "site" and len(site.sha256) == 64
    assert site.storage_temperature_max_c <= Decimal(-135)


def test_lot_numbers_follow_the_site_format_and_regex() -> None:
    site = load_site_config(SITE)
    assert site.format_lot_number(2025, 1) == "MSC-2025-0001"
    assert site.is_valid_lot_number("MSC-2025-0042")
    assert not site.is_valid_lot_number("MSC-25-42")
    with pytest.raises(ValueError, match="does not match the site pattern"):
        site.format_lot_number(2025, 10_000)


def test_the_shipped_products_cover_the_three_tissue_sources() -> None:
    catalogue = load_products(PRODUCTS)
    uc, bm, at = catalogue.get("UC-MSC"), catalogue.get("BM-MSC"), catalogue.get("AT-MSC")
    assert (uc.product_class, uc.collection_type, uc.trial) == ("MSC(WJ)", "V", "NCT03562065")
    assert (bm.product_class, bm.collection_type, bm.is_directed) == ("MSC(M)", "2", True)
    assert at.product_class == "MSC(AT)" and not at.is_directed
    assert bm.trial == "NCT02213705" and at.trial.startswith("DEMO-")  # no registry id in our sources: a fake one
    assert uc.product_code("A0").text == "SX001VA0"
    assert uc.post_thaw_limit_minutes == 60 and uc.shelf_life == timedelta(days=365)
    assert uc.culture_limits.max_passage >= uc.culture_limits.warn_passage


def test_an_unknown_product_id_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="UC-MSC"):
        load_products(PRODUCTS).get("CB-MSC")


def test_the_stricter_storage_limit_wins() -> None:
    site, uc = load_site_config(SITE), load_products(PRODUCTS).get("UC-MSC")
    assert effective_storage_limit_c(site, uc) == min(site.storage_temperature_max_c, uc.storage_temperature_max_c)


def test_the_demo_fin_in_a_production_site_file_is_refused(tmp_path: Path) -> None:
    path = _edited(tmp_path, SITE, "\ndemo = true\n", "\ndemo = false\n")
    _expect_error(path, load_site_config, "fin", "fake demo FIN")


@pytest.mark.parametrize(("old", "new", "key", "fragment"), [
    ('fin = "X9999"', 'fin = "O1234"', "fin", "letter O"),
    ('timezone = "Europe/Paris"', 'timezone = "Europe/Lutece"', "timezone", "unknown time zone"),
    ('timezone = "Europe/Paris"', 'tz = "Europe/Paris"', "tz", "unknown key"),
    ('format = "MSC-{year}-{seq:04d}"', 'format = "MSC-{year}-{n:04d}"', "lot_number.format", "only {year}"),
    ("regex = '^MSC-\\d{4}-\\d{4}$'", "regex = '^MSC-\\d{2}-\\d{4}$'", "lot_number.regex", "does not match"),
    ('unit = "C"', 'unit = "F"', "storage.temperature.unit", "degrees Celsius"),
    ("max = -150", "max = -80", "storage.temperature.max", "warmer than vapour-phase"),
    ('facility_name = "Demo Cell Therapy Unit (not a real facility)"', "", "facility_name", "missing"),
])
def test_site_file_errors_name_the_key(tmp_path: Path, old: str, new: str, key: str, fragment: str) -> None:
    _expect_error(_edited(tmp_path, SITE, old, new), load_site_config, key, fragment)


@pytest.mark.parametrize(("old", "new", "key", "fragment"), [
    ('class = "MSC(WJ)"', 'class = "MSC(XX)"', "products[0].class", "unknown class"),
    ('tissue_source = "umbilical_cord"', 'tissue_source = "bone_marrow"', "products[0].tissue_source",
     "MSC(WJ) comes from umbilical_cord"),
    ('tissue_source = "umbilical_cord"', 'tissue_source = "placenta"', "products[0].tissue_source",
     "unknown tissue source"),
    ('product_description_code = "X001"', 'product_description_code = "X0001"',
     "products[0].product_description_code", "4 letters or digits"),
    ('product_description_code = "X003"', 'product_description_code = "X001"',
     "products[2].product_description_code", "product code SX001V00 is already used by UC-MSC"),
    ('collection_type = "V"', 'collection_type = "Q"', "products[0].collection_type", "unknown"),
    ('{ value = 365, unit = "days", from = "freeze" }', '{ value = 12, unit = "months", from = "freeze" }',
     "products[0].shelf_life.unit", "give the duration in days"),
    ('{ value = 60, unit = "minutes", to_confirm = true }', '{ value = 60, unit = "min" }',
     "products[0].post_thaw_limit.unit", "unknown unit"),
    ('{ value = 60, unit = "minutes", to_confirm = true }', '{ value = 60, unit = "minutes", to_confirm = "yes" }',
     "products[0].post_thaw_limit.to_confirm", "true or false"),
    ('{ value = 365, unit = "days", from = "freeze" }', '{ value = 365, unit = "days", from = "thaw" }',
     "products[0].shelf_life.from", "unknown start"),
    ("max_passage = 5", "max_pasage = 5", "products[0].culture.max_pasage", "unknown key"),
    ("warn_passage = 4", "warn_passage = 9", "products[0].culture.warn_passage", "between 0 and max_passage"),
    ("max_cumulative_pd = 25.0", 'max_cumulative_pd = "25"', "products[0].culture.max_cumulative_pd",
     "expected Decimal"),
    ('id = "BM-MSC"', 'id = "UC-MSC"', "products[1].id", "duplicate product id"),
    ('name = "Umbilical cord MSC"\n', "", "products[0].name", "missing"),
])
def test_product_file_errors_name_the_key(tmp_path: Path, old: str, new: str, key: str, fragment: str) -> None:
    _expect_error(_edited(tmp_path, PRODUCTS, old, new), load_products, key, fragment)


@pytest.mark.parametrize(("old", "new"), [
    ('trial = "NCT03562065"                 # SLE-UC lupus trial\n', ""),
    ('trial = "NCT03562065"', 'trial = ""'),
    ('trial = "NCT03562065"', 'trial = "   "'),
])
def test_a_product_without_a_trial_id_is_refused_naming_the_product(tmp_path: Path, old: str, new: str) -> None:
    """Review finding: AT-MSC had no trial and its labels said "For clinical trial use only" with no id."""
    _expect_error(_edited(tmp_path, PRODUCTS, old, new), load_products, "products[0].trial",
                  "missing for product 'UC-MSC'")


@pytest.mark.parametrize("trial", ["NCT03562065 / 2023-503456-12-00 / ISRCTN12345678", "NCT03562065\u00a0(EU)",
                                   "NCT0356\t2065"])
def test_a_trial_id_the_label_cannot_hold_is_refused_when_the_configuration_loads(tmp_path: Path, trial: str) -> None:
    _expect_error(_edited(tmp_path, PRODUCTS, 'trial = "NCT03562065"', f'trial = "{trial}"'), load_products,
                  "products[0].trial", "at most 31 printable ASCII characters")


def test_the_longest_trial_id_the_configuration_accepts_prints_on_the_bag_label() -> None:
    """Two registry ids, 31 characters: the boundary of the check above (tests/unit/test_label_trial_id.py prints
    it and reads it back from the PDF)."""
    from tests.unit.test_label_trial_id import TRIAL_IDS

    longest = max((param.values[0] for param in TRIAL_IDS), key=len)
    assert len(longest) == TRIAL_ID_MAX


def test_every_shipped_product_names_its_trial() -> None:
    assert all(product.trial.strip() for product in load_products(PRODUCTS).products)


def test_a_fractional_duration_is_kept_exactly(tmp_path: Path) -> None:
    path = _edited(tmp_path, PRODUCTS, '{ value = 60, unit = "minutes", to_confirm = true }',
                   '{ value = 1.5, unit = "hours" }')
    assert load_products(path).get("UC-MSC").post_thaw_limit == timedelta(minutes=90)


def test_s38_a_post_thaw_limit_is_to_confirm_only_where_the_file_says_so(tmp_path: Path) -> None:
    """The bedside flags a post-thaw limit as provisional from the file's `to_confirm`, not from a
    template that would go on saying it once the site confirmed the value."""
    assert load_products(PRODUCTS).get("UC-MSC").post_thaw_limit_to_confirm is True  # the shipped demo value
    path = _edited(tmp_path, PRODUCTS, '{ value = 60, unit = "minutes", to_confirm = true }',
                   '{ value = 60, unit = "minutes" }')
    assert load_products(path).get("UC-MSC").post_thaw_limit_to_confirm is False
