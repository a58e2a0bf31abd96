"""Review of session 33's plain-number rule: three values parsed by their services from text (an infusion's volume,
a donor's weight, a returned bag's warmest logger reading) still read "1_0" as 10 and "１２" as 12; and the lot
correction forms wrote their own counts as "1.2E+2", which the rule then refused when sent back unchanged."""
from __future__ import annotations

from decimal import Decimal

import pytest

from mscbatch.api.plain_numbers import is_plain_number
from mscbatch.custody.infusions import _volume
from mscbatch.custody.returns import _temperature
from mscbatch.errors import ValidationFailed
from mscbatch.lots.views import _in_millions


@pytest.mark.parametrize("typed", ["1_0", "１２", "١٢", "1e1"])
def test_an_infusion_volume_is_written_plainly(typed: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        _volume(typed)
    assert refused.value.field == "volume_ml"


def test_a_plain_infusion_volume_is_still_taken() -> None:
    assert _volume("20,5") == Decimal("20.5") and _volume(" 12 ") == Decimal("12") and _volume("-0") == 0


@pytest.mark.parametrize("typed", ["-1_0", "－150", "1e2"])
def test_a_logger_reading_is_written_plainly(typed: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        _temperature(typed)
    assert refused.value.field == "logger_max_c"


def test_a_plain_logger_reading_is_still_taken() -> None:
    assert _temperature("-165.5") == Decimal("-165.5") and _temperature("−170") == Decimal("-170")


def test_a_donor_weight_is_written_plainly() -> None:
    from mscbatch.donors.validation import _Problems, _weight

    problems = _Problems()
    assert _weight("5_5", problems) is None and "weight_kg" in problems.errors
    assert _weight("55.5", _Problems()) == Decimal("55.5")


@pytest.mark.parametrize("cells", [10_000_000, 120_000_000, 1_000_000_000, 2_500_000, 100])
def test_a_correction_forms_counts_are_written_plainly(cells: int) -> None:
    shown = str(_in_millions(cells))
    assert is_plain_number(shown, signed=False), shown
    assert Decimal(shown) * 10**6 == cells
