"""ISBT 128-compatible identifiers: donation identification number (DIN), keyboard check character, product code.

Rules implemented (DOMAIN.md section 7, after ICCBBA ISBT 128 Standard ST-001):
- DIN = FIN (5 characters: one of A-N, P-Z, 1-9, then 4 digits) + year (2 digits) + sequence (6 digits),
  13 characters, unique per FIN and year and never reused (uniqueness is the service's job: it owns the counter).
- The keyboard-entry check character K is ISO/IEC 7064 MOD 37-2 over the 13 characters. It is printed boxed
  next to the DIN so that a hand-typed DIN can be verified: a single substituted character or two swapped
  adjacent characters always change K, so a typing error can never silently point at another donation.
- Product code = "S" (cellular therapy) + the 4 characters of the product description code (PDC) that follow it
  + collection type (1 character) + division (2 characters, "00" when undivided). Each bag is one division.

FINs and PDCs are assigned by ICCBBA under licence: they are site configuration (config/site.toml,
config/products.toml), never constants in code. DEMO_FIN below is a placeholder that we did not obtain from
ICCBBA; it exists only for demo data and tests, and site_config refuses it in a file not marked demo.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from stdnum.iso7064 import mod_37_2

DEMO_FIN = "X9999"
"""A clearly fake facility identification number, for demo data and tests only (not assigned by ICCBBA)."""

MOD_37_2_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"
FIN_FIRST_CHARACTERS = "ABCDEFGHIJKLMNPQRSTUVWXYZ123456789"
"""ISBT 128 leaves out the letter O (read as zero) and the digit 0 as first character of a FIN."""

DIN_LENGTH = 13
CELLULAR_THERAPY_PREFIX = "S"

COLLECTION_TYPES: dict[str, str] = {
    "V": "allogeneic (volunteer)",
    "7": "allogeneic",
    "2": "for directed recipient use only",
    "3": "for directed recipient use only, biohazard",
    "1": "for autologous use only",
}
"""Collection (donation) type codes accepted in a product code, with what each means for labelling and use."""

DIRECTED_COLLECTION_TYPES = frozenset({"2", "3"})
BIOHAZARD_COLLECTION_TYPES = frozenset({"3"})
AUTOLOGOUS_COLLECTION_TYPES = frozenset({"1"})

UNDIVIDED = "00"
MAX_DIVISIONS = 26

_DIVISION_RE = re.compile(r"^(00|[A-Z]0|[A-Z][a-z])$")


class IdentifierError(ValueError):
    """A DIN, check character or product code is malformed. The message says exactly what is wrong."""


@dataclass(frozen=True)
class Din:
    """A donation identification number. `text` is the 13-character DIN; K is not part of the DIN itself."""

    fin: str
    year: int
    sequence: int
    text: str
    check_character: str

    def __str__(self) -> str:
        return self.text

    @property
    def typed(self) -> str:
        """The keyboard form a person types from the label: DIN followed by K ("G123417654321A")."""
        return self.text + self.check_character

    @property
    def display(self) -> str:
        """The eye-readable grouping used on labels and screens: "G1234 17 654321 A"."""
        return f"{self.fin} {self.year:02d} {self.sequence:06d} {self.check_character}"


def din_shown(bag: Any) -> str:
    """The bag's DIN as every page and label shows it, with its check character K: "G1234 17 654321 A" (a nurse
    reads the refusal against the label in her hand, where the boxed K is part of the number)."""
    return din_words(bag.din or "", bag.check_character)


def din_words(din: str, k: str) -> str:
    """A DIN and its check character K as every page and label shows them: "G1234 17 654321 A" (din_shown, for
    what holds no bag: a draw, a stored calculation)."""
    if len(din) != 13 or not din[5:].isdigit():  # never a DIN this unit allocates: said as stored, not refused again
        return f"{din} {k}".strip()
    return Din(fin=din[:5], year=int(din[5:7]), sequence=int(din[7:]), text=din, check_character=k).display


@dataclass(frozen=True)
class ProductCode:
    """A parsed product code, e.g. "SX001V00" = S + PDC "X001" + collection type "V" + division "00"."""

    pdc: str
    collection_type: str
    division: str
    text: str

    def __str__(self) -> str:
        return self.text

    @property
    def is_directed(self) -> bool:
        """Directed products carry "For use by intended recipient only" and may go to no one else."""
        return self.collection_type in DIRECTED_COLLECTION_TYPES

    @property
    def is_biohazard(self) -> bool:
        return self.collection_type in BIOHAZARD_COLLECTION_TYPES

    @property
    def is_autologous(self) -> bool:
        return self.collection_type in AUTOLOGOUS_COLLECTION_TYPES


def validate_fin(fin: str) -> str:
    """Return the FIN upper-cased, or raise IdentifierError naming the faulty character."""
    fin = _ascii(fin.strip(), "FIN").upper()
    if len(fin) != 5:
        raise IdentifierError(f"a FIN has 5 characters; {fin!r} has {len(fin)}")
    _check_fin_first(fin[0], where="FIN")
    _check_digits(fin, range(1, 5), "FIN digits are characters 2-5", label="FIN")
    return fin


def check_character(din13: str) -> str:
    """The ISO/IEC 7064 MOD 37-2 keyboard check character K of a 13-character DIN (validated first)."""
    din = _validate_din13(_normalise(din13, "DIN"))
    return mod_37_2.calc_check_digit(din)


def make_din(fin: str, year: int, sequence: int) -> Din:
    """Build a DIN from its parts. `year` is two-digit (0-99) or a full year 2000-2099; sequence 0-999999."""
    fin = validate_fin(fin)
    if isinstance(year, bool) or not isinstance(year, int):
        raise IdentifierError(f"DIN year must be an integer, got {year!r}")
    if 2000 <= year <= 2099:
        year -= 2000
    if not 0 <= year <= 99:
        raise IdentifierError(f"DIN year must be two digits (0-99) or 2000-2099, got {year}")
    if isinstance(sequence, bool) or not isinstance(sequence, int) or not 0 <= sequence <= 999_999:
        raise IdentifierError(f"DIN sequence must be an integer 0-999999 (6 digits), got {sequence!r}")
    text = f"{fin}{year:02d}{sequence:06d}"
    return Din(fin=fin, year=year, sequence=sequence, text=text, check_character=mod_37_2.calc_check_digit(text))


def parse_din(text: str) -> Din:
    """Parse a typed or scanned DIN, with or without its check character K.

    Accepts upper or lower case, surrounding spaces and the label's grouping spaces ("G1234 17 654321 A").
    When K is present it must match: this is what catches typing errors (ISBT 128 keyboard entry check).
    """
    if not isinstance(text, str):
        raise IdentifierError(f"DIN must be text, got {type(text).__name__}")
    din = _normalise(text, "DIN")
    if not din:
        raise IdentifierError("DIN is empty")
    if len(din) not in (DIN_LENGTH, DIN_LENGTH + 1):
        raise IdentifierError(
            f"a DIN has 13 characters, 14 with its check character; {din!r} has {len(din)}")
    din13 = _validate_din13(din[:DIN_LENGTH])
    expected = mod_37_2.calc_check_digit(din13)
    if len(din) == DIN_LENGTH + 1:
        given = din[DIN_LENGTH]
        # The expected K is never said: told it, a person who mistyped a digit of the DIN would type that K and
        # name another bag, the very slip K exists to catch (ISBT 128 keyboard entry check).
        if given not in MOD_37_2_ALPHABET:
            raise IdentifierError(
                f"check character {given!r} is not possible (K is 0-9, A-Z or *): scan the label's code or type the "
                "DIN and K again from the label")
        if given != expected:
            raise IdentifierError(
                f"the check character {given} does not match DIN {din13}: a character of the DIN or K was "
                "mistyped. Scan the label's code or type both again from the label")
    return Din(fin=din13[:5], year=int(din13[5:7]), sequence=int(din13[7:]), text=din13,
               check_character=expected)


#: ISBT 128 data structure 001, the DIN as the label's Code 128 carries it: "=" + 13-character DIN + 2 flag
#: characters ("00": unused). What a unit's barcode scanner types when it reads that symbol.
ISBT128_DIN_IDENTIFIER = "="
ISBT128_FLAGS_UNUSED = "00"
DIN_SYMBOL_LENGTH = 1 + DIN_LENGTH + 2


def is_din_symbol(text: str) -> bool:
    """The text has the shape of a scanned DIN symbol (data structure 001), to be read by parse_din_symbol."""
    compact = "".join((text or "").split())
    return compact.startswith(ISBT128_DIN_IDENTIFIER) and len(compact) == DIN_SYMBOL_LENGTH


def parse_din_symbol(text: str) -> Din:
    """The DIN a barcode scanner read from the label's Code 128 ("=X99992600000100").

    A machine read needs no keyboard check character: Code 128 carries its own check, and the scanner gives
    nothing it could not decode. K is computed, so the DIN names its bag as a typed DIN with the right K does."""
    compact = _ascii("".join((text or "").split()), "scanned DIN").upper()
    if not is_din_symbol(compact):
        raise IdentifierError(f"a scanned DIN symbol is \"=\" + 13 characters + 2 flag characters; "
                              f"{compact!r} has {len(compact)}")
    flags = compact[1 + DIN_LENGTH:]
    if not flags.isascii() or not flags.isalnum():
        raise IdentifierError(f"the 2 flag characters of a scanned DIN are letters or digits, got {flags!r}")
    din13 = _validate_din13(compact[1:1 + DIN_LENGTH])
    return Din(fin=din13[:5], year=int(din13[5:7]), sequence=int(din13[7:]), text=din13,
               check_character=mod_37_2.calc_check_digit(din13))


def make_product_code(pdc: str, collection_type: str, division: str = UNDIVIDED) -> ProductCode:
    """Build a product code "S" + PDC (4 characters after S) + collection type + division."""
    pdc = _ascii(pdc.strip(), "product description code").upper()
    if len(pdc) != 4 or not pdc.isascii() or not pdc.isalnum():
        hint = " (give the 4 characters after S)" if len(pdc) == 5 and pdc.startswith("S") else ""
        raise IdentifierError(f"product description code must be 4 letters or digits, got {pdc!r}{hint}")
    _check_collection_type(collection_type)
    _check_division(division)
    return ProductCode(pdc=pdc, collection_type=collection_type, division=division,
                       text=f"{CELLULAR_THERAPY_PREFIX}{pdc}{collection_type}{division}")


def parse_product_code(text: str) -> ProductCode:
    """Parse an 8-character product code such as "SX001V00" or "SX0012B0" (spaces and case are tolerated,
    except that a second-level division keeps its lower-case letter)."""
    if not isinstance(text, str):
        raise IdentifierError(f"product code must be text, got {type(text).__name__}")
    code = _ascii("".join(text.split()), "product code")
    if not code:
        raise IdentifierError("product code is empty")
    if len(code) != 8:
        raise IdentifierError(
            f"a product code has 8 characters (S + 4-character PDC + collection type + 2-character division); "
            f"{code!r} has {len(code)}")
    head = code[:6].upper()
    division = code[6].upper() + code[7]
    if head[0] != CELLULAR_THERAPY_PREFIX:
        raise IdentifierError(f"a cellular therapy product code starts with S, not {code[0]!r}")
    for position in range(1, 5):
        if not (head[position].isascii() and head[position].isalnum()):
            raise IdentifierError(
                f"character {position + 1} ({code[position]!r}) of the product code must be a letter or digit "
                "(the PDC is characters 2-5)")
    return make_product_code(head[1:5], head[5], division)


def division_code(bag_number: int, bag_count: int) -> str:
    """Division code of bag n of N.

    Scheme (ISBT 128 first-level divisions): a lot frozen as a single bag is undivided, "00"; when a lot is
    split into N bags (2 <= N <= 26), bag 1 is "A0", bag 2 "B0", ... bag 26 "Z0". Second-level divisions
    ("Aa", "Ab": a bag split again) are accepted by the parser but never generated here. "n of N" itself is
    printed separately on the label, since the division code does not carry N.
    """
    if bag_count < 1 or bag_count > MAX_DIVISIONS:
        raise IdentifierError(f"a lot can be split into 1 to {MAX_DIVISIONS} bags (divisions A0-Z0), not {bag_count}")
    if not 1 <= bag_number <= bag_count:
        raise IdentifierError(f"bag number must be between 1 and {bag_count}, got {bag_number}")
    if bag_count == 1:
        return UNDIVIDED
    return f"{chr(ord('A') + bag_number - 1)}0"


def division_bag_number(division: str) -> int:
    """Inverse of division_code for first-level divisions: "00" and "A0" -> 1, "B0" -> 2 ... "Z0" -> 26."""
    _check_division(division)
    if division == UNDIVIDED:
        return 1
    if division[1] != "0":
        raise IdentifierError(f"division {division!r} is a second-level division; it has no bag number of its own")
    return ord(division[0]) - ord("A") + 1


def _normalise(text: str, what: str) -> str:
    return _ascii("".join(text.split()), what).upper()


def _ascii(text: str, what: str) -> str:
    """The text itself when it is plain ASCII, else IdentifierError naming the first other character.

    Checked before .upper(): Unicode upper-casing turns "ß" into "SS" (every later character moves one place:
    "Sß001V00" was read as the valid "SSS00100") and the long s "ſ" or the dotless "ı" into a plain S or I, so a
    character no label prints passed for one that it does."""
    for index, char in enumerate(text):
        if not char.isascii():
            raise IdentifierError(f"character {index + 1} ({char!r}) of the {what} is not a plain letter or digit: "
                                  "type it with A-Z and 0-9")
    return text


def _validate_din13(din: str) -> str:
    if len(din) != DIN_LENGTH:
        raise IdentifierError(f"a DIN has 13 characters (without its check character); {din!r} has {len(din)}")
    _check_fin_first(din[0], where="DIN")
    _check_digits(din, range(1, 5), "FIN digits are characters 2-5", label="DIN")
    _check_digits(din, range(5, 7), "the year is characters 6-7", label="DIN")
    _check_digits(din, range(7, 13), "the sequence number is characters 8-13", label="DIN")
    return din


def _check_fin_first(char: str, where: str) -> None:
    if char in FIN_FIRST_CHARACTERS:
        return
    if char == "O":
        raise IdentifierError(
            f"the {where} starts with the letter O, which ISBT 128 never uses in a FIN (read as zero); "
            "the first character must be A-N, P-Z or 1-9")
    raise IdentifierError(f"the {where} cannot start with {char!r}; the first character must be A-N, P-Z or 1-9")


def _check_digits(text: str, positions: range, explanation: str, label: str) -> None:
    for index in positions:
        if not ("0" <= text[index] <= "9"):
            raise IdentifierError(
                f"character {index + 1} ({text[index]!r}) of the {label} must be a digit ({explanation})")


def _check_collection_type(collection_type: str) -> None:
    if collection_type not in COLLECTION_TYPES:
        known = ", ".join(f"{code} {meaning}" for code, meaning in COLLECTION_TYPES.items())
        raise IdentifierError(f"collection type {collection_type!r} is unknown; use one of: {known}")


def _check_division(division: str) -> None:
    if not _DIVISION_RE.match(division):
        raise IdentifierError(
            f"division {division!r} is not valid: use 00 (undivided), A0-Z0 (bags of a split lot) "
            "or Aa-Zz (second-level division)")
