"""config/products.toml's site values for the s41 lot rules: culture.min_doubling_time (the fastest doubling a
passage may show) and cryopreservation.cells_per_ml (the range a bag may hold), required of every product and
refused naming file and key when wrong."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from mscbatch.core.configfiles import ConfigError
from mscbatch.core.site_config import load_products
from mscbatch.paths import config_dir
from tests.unit.test_site_config import _edited

PRODUCTS = config_dir() / "products.toml"
DOUBLING = 'min_doubling_time = { value = 15, unit = "hours" }'
CELLS = 'cells_per_ml = { min = 0.5, max = 50, unit = "10^6/mL" }'


def test_the_shipped_products_carry_a_15_h_doubling_time_and_a_cells_per_ml_range() -> None:
    for product in load_products(PRODUCTS).products:
        assert product.culture_limits.min_doubling_time_hours == Decimal(15)
        assert product.culture_limits.bag_cells_per_ml == (500_000, 50_000_000)


@pytest.mark.parametrize(("old", "new", "key", "fragment"), [
    (DOUBLING, "", "products[0].culture.min_doubling_time", "missing"),
    (DOUBLING, 'min_doubling_time = { value = 0, unit = "hours" }', "products[0].culture.min_doubling_time.value",
     "greater than 0"),
    (DOUBLING, 'min_doubling_time = { value = 15, unit = "weeks" }', "products[0].culture.min_doubling_time.unit",
     "unknown unit"),
    (CELLS, 'cells_per_ml = { min = 0.5, max = 50, unit = "cells/mL" }',
     "products[0].cryopreservation.cells_per_ml.unit", "millions of cells per mL"),
    (CELLS, 'cells_per_ml = { min = 60, max = 50, unit = "10^6/mL" }',
     "products[0].cryopreservation.cells_per_ml.max", "between min 60 and 1000"),
    (CELLS, 'cells_per_ml = { min = 0, max = 50, unit = "10^6/mL" }',
     "products[0].cryopreservation.cells_per_ml.min", "greater than 0"),
])
def test_a_wrong_site_value_is_refused_naming_its_key(tmp_path: Path, old: str, new: str, key: str,
                                                      fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_products(_edited(tmp_path, PRODUCTS, old, new))
    assert caught.value.key == key
    assert fragment in caught.value.problem
