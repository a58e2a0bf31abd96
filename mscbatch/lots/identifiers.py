"""Checking a typed or scanned identifier: a DIN (with or without its check character K) or a product code.

ISBT 128 keyboard entry: the check character K (ISO/IEC 7064 MOD 37-2) is typed after the 13 characters of
the DIN so that a mistyped character is caught; the core says exactly what is wrong (length, a letter where a
digit belongs, a FIN starting with O, the wrong K). A DIN typed without K is not valid: nothing would catch one
slipped digit, which names another bag of the unit. Only a valid DIN (K given and right) is looked up among the
unit's bags; the answer to a DIN without K does not tell its K either (typing it back would check nothing).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.core.identifiers import (
    Din,
    IdentifierError,
    is_din_symbol,
    parse_din,
    parse_din_symbol,
    parse_product_code,
)
from mscbatch.lots.models import Bag


@dataclass(frozen=True)
class IdentifierCheck:
    text: str
    kind: str  # "din", "product_code" or "unknown"
    valid: bool
    message: str
    parts: dict[str, str] = field(default_factory=dict)
    k_given: bool = False


MISSING_K = ("DIN (field text): no check character K was typed after its 13 characters: type the check character, "
             "the boxed character printed after the DIN on the label (14 characters in all). A DIN without K is not "
             "checked, so no bag is looked up.")


def check_identifier(text: str | None) -> IdentifierCheck:
    raw = (text or "").strip()
    compact = "".join(raw.split())
    if compact[:1].upper() == "S" and len(compact) == 8:
        try:
            code = parse_product_code(compact)
        except IdentifierError as error:
            return IdentifierCheck(raw, "product_code", False, f"Product code: {error}.")
        return IdentifierCheck(raw, "product_code", True, "A valid product code.", {
            "product_description_code": code.pdc, "collection_type": code.collection_type, "division": code.division})
    if is_din_symbol(compact):  # the label's Code 128 read by a scanner: the symbol's own check stands for K
        try:
            din = parse_din_symbol(compact)
        except IdentifierError as error:
            return IdentifierCheck(raw, "din", False, f"Scanned DIN: {error}.")
        return IdentifierCheck(raw, "din", True, "A valid DIN, read from the label's bar code.", _din_parts(din), True)
    try:
        din = parse_din(raw)
    except IdentifierError as error:
        return IdentifierCheck(raw, "din", False, f"DIN: {error}.")
    k_given = len(compact) == 14  # parse_din took 13 or 14 characters; with 14 it checked K
    if not k_given:
        return IdentifierCheck(raw, "din", False, MISSING_K)
    return IdentifierCheck(raw, "din", True, "A valid DIN; its check character K matches.", _din_parts(din), k_given)


def _din_parts(din: Din) -> dict[str, str]:
    return {
        "din": din.text, "fin": din.fin, "year": f"{din.year:02d}", "sequence": f"{din.sequence:06d}",
        "check_character": din.check_character, "display": din.display}


def bag_with_din(session: Session, din: str) -> Bag | None:
    return session.scalar(select(Bag).where(Bag.din == din))
