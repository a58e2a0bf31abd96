"""Numbers as people write them on a ward: 20 mL, 62.5 kg, never 2E+1 mL (what str() of a normalised Decimal gives)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any


def plain(value: Any) -> str:
    """A Decimal without trailing zeros and without an exponent: Decimal("20.00") -> "20", "62.50" -> "62.5"."""
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return "" if value is None else str(value)
