"""ISBT 128-compatible identifiers: DIN, keyboard check character K (ISO/IEC 7064 MOD 37-2), product code."""
from __future__ import annotations

import pytest

from mscbatch.core.identifiers import (
    DEMO_FIN,
    MOD_37_2_ALPHABET,
    IdentifierError,
    check_character,
    division_bag_number,
    division_code,
    make_din,
    make_product_code,
    parse_din,
    parse_product_code,
    validate_fin,
)

DIN_VECTORS = [
    ("G123417654321", "A"),
    ("G123498654321", "H"),
    ("A999921123456", "3"),
    ("A999818123456", "N"),
    ("A999820123456", "E"),
    ("W000009123456", "G"),
]


@pytest.mark.parametrize(("din", "expected"), DIN_VECTORS)
def test_check_character_matches_the_published_test_vectors(din: str, expected: str) -> None:
    assert check_character(din) == expected
    assert parse_din(din + expected).check_character == expected


def test_make_din_builds_the_13_characters_and_its_check_character() -> None:
    din = make_din("G1234", 17, 654321)
    assert din.text == "G123417654321"
    assert str(din) == "G123417654321"
    assert din.check_character == "A"
    assert din.typed == "G123417654321A"
    assert din.display == "G1234 17 654321 A"


def test_make_din_accepts_a_four_digit_year_and_pads_the_sequence() -> None:
    din = make_din("W0000", 2009, 123456)
    assert din.text == "W000009123456" and din.check_character == "G"
    assert make_din(DEMO_FIN, 2025, 1).text == "X999925000001"


@pytest.mark.parametrize(("year", "sequence"), [(100, 1), (1999, 1), (25, -1), (25, 1_000_000)])
def test_make_din_refuses_a_year_or_sequence_out_of_range(year: int, sequence: int) -> None:
    with pytest.raises(IdentifierError):
        make_din("G1234", year, sequence)


@pytest.mark.parametrize("typed", [
    "G123417654321", "G123417654321A", "G1234 17 654321 A", "g123417654321a", "  G123417654321A \n",
])
def test_parse_din_accepts_the_typed_forms(typed: str) -> None:
    din = parse_din(typed)
    assert (din.fin, din.year, din.sequence, din.text) == ("G1234", 17, 654321, "G123417654321")


@pytest.mark.parametrize(("typed", "fragment"), [
    ("", "DIN is empty"),
    ("G12341765432", "has 12"),
    ("G123417654321AB", "has 15"),
    ("O123417654321", "letter O"),
    ("0123417654321", "cannot start with '0'"),
    ("G12A417654321", "character 4 ('A') of the DIN must be a digit (FIN digits"),
    ("G12341O654321", "character 7 ('O') of the DIN must be a digit (the year"),
    ("G1234176543X1", "character 12 ('X') of the DIN must be a digit (the sequence"),
    ("G123417654321B", "the check character B does not match DIN G123417654321"),
    ("G123417654321-", "check character '-' is not possible"),
])
def test_parse_din_says_exactly_what_is_wrong(typed: str, fragment: str) -> None:
    with pytest.raises(IdentifierError) as caught:
        parse_din(typed)
    assert fragment in str(caught.value)
    assert "expected" not in str(caught.value)  # the right K is never told (typed in, it names another bag)


@pytest.mark.parametrize(("din", "k"), DIN_VECTORS)
def test_every_single_character_substitution_of_a_typed_din_is_caught(din: str, k: str) -> None:
    typed = din + k
    alphabet = MOD_37_2_ALPHABET + "O-"
    for position in range(len(typed)):
        for char in alphabet:
            if char == typed[position]:
                continue
            mistyped = typed[:position] + char + typed[position + 1:]
            with pytest.raises(IdentifierError):
                parse_din(mistyped)


@pytest.mark.parametrize(("din", "k"), DIN_VECTORS)
def test_every_transposition_of_adjacent_characters_is_caught(din: str, k: str) -> None:
    typed = din + k
    swapped_any = False
    for position in range(len(typed) - 1):
        a, b = typed[position], typed[position + 1]
        if a == b:
            continue
        swapped_any = True
        with pytest.raises(IdentifierError):
            parse_din(typed[:position] + b + a + typed[position + 2:])
    assert swapped_any


def test_the_demo_fin_is_valid_but_recognisably_fake() -> None:
    assert validate_fin(DEMO_FIN) == "X9999"


def test_product_code_is_s_plus_pdc_collection_type_and_division() -> None:
    code = make_product_code("X001", "V", "00")
    assert code.text == "SX001V00" and str(code) == "SX001V00"
    assert not code.is_directed and not code.is_biohazard and not code.is_autologous


def test_directed_biohazard_and_autologous_collection_types_are_recognised() -> None:
    assert make_product_code("X002", "2").is_directed
    assert make_product_code("X002", "3").is_directed and make_product_code("X002", "3").is_biohazard
    assert make_product_code("X002", "1").is_autologous


def test_parse_product_code_round_trips_and_tolerates_case_and_spaces() -> None:
    code = parse_product_code(" sx002 2 b0 ")
    assert (code.pdc, code.collection_type, code.division, code.text) == ("X002", "2", "B0", "SX0022B0")
    assert parse_product_code("SX001VAb").division == "Ab"


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "product code is empty"),
    ("SX001V0", "has 7"),
    ("EX001V00", "starts with S, not 'E'"),
    ("SX-01V00", "character 3 ('-') of the product code must be a letter or digit"),
    ("SX001Q00", "collection type 'Q' is unknown"),
    ("SX001V0A", "division '0A' is not valid"),
])
def test_parse_product_code_says_exactly_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(IdentifierError) as caught:
        parse_product_code(text)
    assert fragment in str(caught.value)


def test_make_product_code_hints_when_given_the_five_character_pdc() -> None:
    with pytest.raises(IdentifierError, match="give the 4 characters after S"):
        make_product_code("SX001", "V")


def test_a_single_bag_is_undivided_and_split_lots_use_a0_to_z0() -> None:
    assert division_code(1, 1) == "00"
    assert [division_code(n, 3) for n in (1, 2, 3)] == ["A0", "B0", "C0"]
    assert division_code(26, 26) == "Z0"
    assert [division_bag_number(d) for d in ("00", "A0", "B0", "Z0")] == [1, 1, 2, 26]


@pytest.mark.parametrize(("bag_number", "bag_count"), [(1, 27), (0, 3), (4, 3), (1, 0)])
def test_division_code_refuses_impossible_bag_numbers(bag_number: int, bag_count: int) -> None:
    with pytest.raises(IdentifierError):
        division_code(bag_number, bag_count)


def test_a_second_level_division_has_no_bag_number() -> None:
    with pytest.raises(IdentifierError, match="second-level"):
        division_bag_number("Ab")


def test_a_scanned_din_symbol_gives_its_din_and_computes_k() -> None:
    """The label's Code 128 (ISBT 128 data structure 001) read by a scanner: no K in it, the symbol's own check
    stands for it; K is computed so the DIN names its bag as a typed DIN with its K does."""
    from mscbatch.core.identifiers import is_din_symbol, parse_din_symbol

    din = parse_din_symbol("=G12341765432100")
    assert (din.text, din.check_character) == ("G123417654321", "A")
    assert parse_din_symbol(" =g12341765432100 ").text == "G123417654321"
    assert not is_din_symbol("G123417654321A") and not is_din_symbol("=G123417654321")
    for broken in ("=O12341765432100", "=G1234176543210!", "=G12341765432", "=G1234X765432100"):
        with pytest.raises(IdentifierError):
            parse_din_symbol(broken)
