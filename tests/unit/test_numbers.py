from __future__ import annotations

from decimal import Decimal

from mscbatch.core.numbers import plain


def test_plain_numbers_have_no_exponent_and_no_trailing_zeros() -> None:
    assert [plain(Decimal(v)) for v in ("20.00", "62.50", "100", "0.50", "1E+2", "12.5")] == \
        ["20", "62.5", "100", "0.5", "100", "12.5"]
    assert plain(None) == "" and plain(7) == "7"
