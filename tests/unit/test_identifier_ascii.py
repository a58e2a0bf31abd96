"""Identifiers are plain ASCII (review C): Unicode upper-casing turned "ß" into "SS" (every later character moved
one place, so "Sß001V00" was read as the valid product code "SSS00100") and the long s "ſ" or the dotless "ı"
into a plain S or I, so a character no label prints passed for one that it does. Each parser refuses any other
character before it upper-cases, naming it."""
from __future__ import annotations

import pytest

from mscbatch.core.identifiers import (
    IdentifierError,
    check_character,
    make_din,
    make_product_code,
    parse_din,
    parse_din_symbol,
    parse_product_code,
    validate_fin,
)

DIN = make_din("G1234", 17, 654321)  # G123417654321, K = A


@pytest.mark.parametrize("typed", ["S\u00df001V00", "\u017fX001V00", "SX001V\u0131a", "SX\u0130\u0130\u0130V00"])
def test_a_product_code_with_a_character_outside_ascii_is_refused(typed: str) -> None:
    with pytest.raises(IdentifierError, match="is not a plain letter or digit"):
        parse_product_code(typed)


@pytest.mark.parametrize("typed", [
    "\u017f" + DIN.text[1:] + "S",  # ſ for a FIN starting with S: upper-cased to a plain S
    DIN.text + "\u017f",  # ſ as the check character
    "G1234 17 654321 \uff21",  # fullwidth A as K
])
def test_a_din_with_a_character_outside_ascii_is_refused(typed: str) -> None:
    with pytest.raises(IdentifierError, match="is not a plain letter or digit"):
        parse_din(typed)


def test_the_long_s_no_longer_passes_for_an_s_in_a_din() -> None:
    din = make_din("S1234", 17, 654321)
    assert parse_din(din.typed) == din  # the plain S still reads
    with pytest.raises(IdentifierError, match=r"character 1 \('\u017f'\) of the DIN"):
        parse_din("\u017f" + din.typed[1:])
    with pytest.raises(IdentifierError, match="scanned DIN"):
        parse_din_symbol("=\u017f" + din.text[1:] + "00")
    with pytest.raises(IdentifierError):
        check_character("\u017f" + din.text[1:])


def test_fin_and_product_description_code_from_configuration_are_ascii_too() -> None:
    with pytest.raises(IdentifierError, match="FIN"):
        validate_fin("\u017f1234")
    with pytest.raises(IdentifierError, match="product description code"):
        make_product_code("\u017f001", "V")
    assert validate_fin(" s1234 ") == "S1234" and make_product_code("x001", "V").text == "SX001V00"


def test_plain_identifiers_still_read_in_any_case_and_spacing() -> None:
    assert parse_product_code(" sx001 2b0 ").text == "SX0012B0"
    assert parse_din("g1234 17 654321 a") == DIN
    assert parse_din_symbol("=" + DIN.text.lower() + "00") == DIN
