"""Session 42: the protocol's plausible adult weights (dosing.plausible_weight_kg) are read and checked when the
protocol file loads, like its other dosing settings: a wrong range names its key and never loads."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from mscbatch.core.configfiles import ConfigError
from mscbatch.core.protocols import PLAUSIBLE_WEIGHT_KG, load_protocol
from tests.unit.test_protocols import SLE_FILE, SSC_FILE, _variant

SHIPPED = "plausible_weight_kg = [35, 150]   # local choice\n"


def test_both_shipped_protocols_take_adults_of_35_to_150_kg() -> None:
    for file in (SLE_FILE, SSC_FILE):
        protocol = load_protocol(file)
        assert protocol.dosing.plausible_weight_kg == (Decimal(35), Decimal(150)), file.name
        assert protocol.version == "1.3"  # a changed rule file is a new version


def test_a_protocol_without_the_setting_takes_the_adult_default(tmp_path: Path) -> None:
    assert load_protocol(_variant(tmp_path, SHIPPED, "")).dosing.plausible_weight_kg == PLAUSIBLE_WEIGHT_KG
    decimals = load_protocol(_variant(tmp_path, SHIPPED, "plausible_weight_kg = [40.5, 140]\n"))
    assert decimals.dosing.plausible_weight_kg == (Decimal("40.5"), Decimal(140))


@pytest.mark.parametrize("typed", ["[150, 35]", "[35, 35]", "[0, 150]", "[35, 401]", "[35]", "[35, 150, 200]",
                                   '"35-150"', '["35", "150"]', "[true, 150]", "150"])
def test_a_wrong_plausible_weight_range_is_refused_naming_its_key(tmp_path: Path, typed: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_protocol(_variant(tmp_path, SHIPPED, f"plausible_weight_kg = {typed}\n"))
    assert info.value.key == "dosing.plausible_weight_kg", str(info.value)
