"""config/products.toml's cryopreservation.dmso_percent (s44): the DMSO % (v/v) range a product's bags are frozen
with, a site value. Required of a product frozen with DMSO (required_reagent_types lists "dmso"), absent for one
that is not (those keep the 0 % rule), and validated when present: numbers, unit "%", 0 < min < max <= 100. Every
wrong value is refused naming the file and the key."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from mscbatch.core.configfiles import ConfigError
from mscbatch.core.site_config import load_products
from mscbatch.paths import config_dir
from tests.unit.test_site_config import _edited

PRODUCTS = config_dir() / "products.toml"
DMSO = 'dmso_percent = { min = 5, max = 10, unit = "%" }'
KEY = "products[0].cryopreservation.dmso_percent"
REAGENTS = 'required_reagent_types = ["medium", "platelet_lysate or fbs", "trypsin", "dmso"]'
WITHOUT_DMSO = 'required_reagent_types = ["medium", "platelet_lysate or fbs", "trypsin"]'


def test_the_shipped_products_are_frozen_at_5_to_10_percent_dmso() -> None:
    products = load_products(PRODUCTS).products
    assert products and all(product.bag_dmso_percent == (Decimal(5), Decimal(10)) for product in products)


@pytest.mark.parametrize(("new", "key", "fragment"), [
    ('dmso_percent = { min = 0.05, max = 0.1, unit = "fraction" }', f"{KEY}.unit", 'in percent (unit = "%"'),
    ('dmso_percent = { min = 5, max = 10 }', f"{KEY}.unit", "missing"),
    ('dmso_percent = { min = "5", max = 10, unit = "%" }', f"{KEY}.min", "expected Decimal"),
    ('dmso_percent = { min = 5, max = true, unit = "%" }', f"{KEY}.max", "expected Decimal"),
    ('dmso_percent = { min = 0, max = 10, unit = "%" }', f"{KEY}.min", "greater than 0 %"),
    ('dmso_percent = { min = -5, max = 10, unit = "%" }', f"{KEY}.min", "greater than 0 %"),
    ('dmso_percent = { min = 10, max = 5, unit = "%" }', f"{KEY}.max", "above min 10 and at most 100 %"),
    ('dmso_percent = { min = 10, max = 10, unit = "%" }', f"{KEY}.max", "above min 10"),
    ('dmso_percent = { min = 5, max = 150, unit = "%" }', f"{KEY}.max", "at most 100 %"),
    ('dmso_percent = { min = 5, max = 10, unit = "%", typical = 7.5 }', f"{KEY}.typical", "unknown key"),
    ('dmso_percent = 10', KEY, "expected dict"),
    ('dmso_pecent = { min = 5, max = 10, unit = "%" }', "products[0].cryopreservation.dmso_pecent", "unknown key"),
    ("", KEY, "missing for product 'UC-MSC', frozen with DMSO"),
])
def test_a_wrong_dmso_range_is_refused_naming_file_and_key(tmp_path: Path, new: str, key: str,
                                                          fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_products(_edited(tmp_path, PRODUCTS, DMSO, new))
    assert caught.value.file.endswith("products.toml")
    assert caught.value.key == key, caught.value.key
    assert fragment in caught.value.problem, caught.value.problem


def test_a_product_not_frozen_with_dmso_needs_no_range_and_may_not_have_one(tmp_path: Path) -> None:
    without = _edited(tmp_path, PRODUCTS, REAGENTS, WITHOUT_DMSO)
    with pytest.raises(ConfigError) as caught:  # a range says its bags hold DMSO: contradicts the reagent list
        load_products(without)
    assert caught.value.key == KEY and "is not frozen with DMSO" in caught.value.problem
    (tmp_path / "plain").mkdir()
    neither = _edited(tmp_path / "plain", without, DMSO, "")
    product = load_products(neither).products[0]
    assert product.bag_dmso_percent is None and ("dmso",) not in product.required_reagent_types
    assert product.culture_limits.bag_cells_per_ml == (500_000, 50_000_000)
