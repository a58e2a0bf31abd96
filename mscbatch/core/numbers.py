"""Numbers as people write them on a ward: 20 mL, 62.5 kg, never 2E+1 mL (what str() of a normalised Decimal gives);
and the one rule for a number typed by a person (is_plain_number), pure: the web forms, the JSON API
(api.plain_numbers) and the release results (release.results) all call it.

Python's Decimal() reads much more than a person means: "1_0" is 10, "١٢" (Arabic-Indic) and "１２" (full-width)
are 12, "1e2" is 100, "inf", "nan" and "0x10" are numbers of a sort, and spaces of any alphabet around the number
are dropped. A technician typing "1_0" got 10 silently: a wrong count or dose. The rule refuses such text."""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

#: digits 0-9, at most one decimal point ("12", "0.5", ".5", "12."), a leading minus only when signed; nothing
#: else: no underscore, no exponent, no comma, no plus, no digits of another alphabet, no space inside
PLAIN_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")

#: the spaces a keyboard or a JSON client puts around a number; a no-break or other Unicode space is refused
ASCII_SPACES = " \t\r\n"

RULE = ("write the number plainly: digits 0-9 with at most one decimal point, such as 12.5 (no sign, no "
        "underscore, no exponent such as 1e2, no comma, no spaces or other characters)")
SIGNED_RULE = ("write the number plainly: digits 0-9 with at most one decimal point, such as 12.5 (a minus sign "
               "first only below zero, such as -150.5; no underscore, no exponent such as 1e2, no comma, no spaces "
               "or other characters)")


def rule_words(*, signed: bool) -> str:
    """The rule in words, for a refusal naming its field."""
    return SIGNED_RULE if signed else RULE


def is_plain_number(text: str, *, signed: bool) -> bool:
    """The plain-number rule: True when `text`, once ASCII spaces around it are dropped, is a plainly written
    number (PLAIN_NUMBER); a minus sign first only when `signed`."""
    stripped = text.strip(ASCII_SPACES)
    if not signed and stripped.startswith("-"):
        return False
    return PLAIN_NUMBER.fullmatch(stripped) is not None


def plain(value: Any) -> str:
    """A Decimal without trailing zeros and without an exponent: Decimal("20.00") -> "20", "62.50" -> "62.5"."""
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return "" if value is None else str(value)
