"""Safety review 2 of the configuration: a protocol names its products (config/protocols/*.toml `products`), each
product names its trial (config/products.toml `trial`, printed on the bag label), and the protocol its own
(`trial_id`, printed on the dose sheet). Nothing compared them, so a bag given in one trial could carry another
trial's id on its label. The app now refuses to start on such a mismatch, naming the file and the key."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mscbatch import create_app
from mscbatch.core.configfiles import ConfigError
from mscbatch.core.protocols import check_products, load_protocols
from mscbatch.core.site_config import load_products
from mscbatch.lots import queries as lot_queries
from mscbatch.paths import config_dir
from mscbatch.patients import queries as patient_queries
from tests.conftest import TEST_CONFIG

BM_TRIAL = 'trial = "NCT02213705"                 # SSc-BM systemic sclerosis trial'


@pytest.fixture
def site_config_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the shipped config/ that the app reads instead (the cached files are read again, and again after)."""
    copy = tmp_path / "config"
    shutil.copytree(config_dir(), copy)
    monkeypatch.setattr("mscbatch.paths.config_dir", lambda: copy)
    monkeypatch.setattr(lot_queries, "config_dir", lambda: copy)
    patient_queries.protocols.cache_clear()
    lot_queries.product_catalogue.cache_clear()
    yield copy
    patient_queries.protocols.cache_clear()
    lot_queries.product_catalogue.cache_clear()


def _start(tmp_path: Path):  # type: ignore[no-untyped-def]
    return create_app({**TEST_CONFIG, "DATABASE_URL": f"sqlite:///{tmp_path / 'start.db'}"})


def test_the_app_refuses_to_start_when_a_protocols_product_is_made_for_another_trial(site_config_copy, tmp_path):
    products = site_config_copy / "products.toml"
    text = products.read_text()
    assert BM_TRIAL in text
    products.write_text(text.replace(BM_TRIAL, 'trial = "NCT03562065"'))  # the lupus trial's id on the marrow bags
    with pytest.raises(ConfigError) as refused:
        _start(tmp_path)
    error = refused.value
    assert error.file.endswith("ssc_bm.toml") and error.key == "products[0]"
    assert "'BM-MSC' is made for trial 'NCT03562065' (products.toml, products[1].trial)" in error.problem
    assert "not for this protocol's trial_id 'NCT02213705'" in error.problem


def test_a_protocol_naming_a_product_that_is_not_made_stops_the_start(site_config_copy, tmp_path):
    protocol = site_config_copy / "protocols" / "ssc_bm.toml"
    protocol.write_text(protocol.read_text().replace('products = ["BM-MSC"]', 'products = ["BM-MCS"]'))
    with pytest.raises(ConfigError, match=r"products\[0\]: product 'BM-MCS' is not in products.toml"):
        _start(tmp_path)


def test_the_shipped_files_agree_and_a_label_may_name_the_trial_twice(site_config_copy):
    check_products(load_protocols(site_config_copy / "protocols"), load_products(site_config_copy / "products.toml"))
    products = site_config_copy / "products.toml"
    products.write_text(products.read_text().replace(BM_TRIAL, 'trial = "NCT02213705 / 2014-000123-45"'))
    check_products(load_protocols(site_config_copy / "protocols"), load_products(products))
