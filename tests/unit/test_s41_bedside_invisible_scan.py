"""S41 (nurse-reviewer): a bag scan sent with an invisible character (a zero-width space, a byte-order mark, a
scanner's control suffix) was refused as "it has 15 characters; a bag number has 14" while the nurse saw 14. The
scan is now read as the nurse sees it (custody.checks.visible drops Unicode format and control characters) before it
is counted, and a code altered or forged still never passes: its check character or signature is verified on what is
left."""
from __future__ import annotations

import pytest

from mscbatch.core.identifiers import check_character
from mscbatch.core.label_token import make_token, make_token_url
from mscbatch.custody.checks import NOT_READ, scan_reference, visible

KEY = "test-label-key"
DIN = "X999926000123"
DIN14 = DIN + check_character(DIN)
TOKEN = make_token(DIN14, KEY)
INVISIBLE = ["\u200b", "\ufeff", "\u2060", "\u00ad", "\u200e", "\x1d", "\x04", "\r", "\x1e\x04"]


@pytest.mark.parametrize("mark", INVISIBLE)
def test_a_typed_din_with_an_invisible_character_reads_as_its_14(mark: str) -> None:
    for scanned in (DIN14 + mark, mark + DIN14, DIN14[:6] + mark + DIN14[6:]):
        assert scan_reference(scanned, KEY) == (DIN14, None), repr(scanned)


@pytest.mark.parametrize("mark", INVISIBLE)
def test_a_label_token_or_its_url_with_an_invisible_character_is_genuine(mark: str) -> None:
    assert scan_reference(TOKEN + mark, KEY) == (DIN14, None)
    assert scan_reference(mark + make_token_url("https://ward.example", DIN14, KEY) + mark, KEY) == (DIN14, None)


def test_a_code_128_read_with_a_scanner_suffix_is_read() -> None:
    assert scan_reference("=" + DIN + "00" + "\x1d", KEY) == (DIN14, None)
    assert scan_reference("\ufeff=" + DIN + "00\r", KEY) == (DIN14, None)


def test_the_characters_counted_are_those_the_nurse_sees() -> None:
    _ref, problem = scan_reference(DIN14[:12] + "\u200b\ufeff", KEY)  # 12 seen, 14 sent
    assert problem is not None and "it has 12 characters; a bag number has 14" in problem
    assert visible("WB-1234\u200b\ufeff\x1d") == "WB-1234"
    assert visible("G1234 17 654321 A") == "G1234 17 654321 A"  # spaces are the split's, kept here


@pytest.mark.parametrize("mark", INVISIBLE)
def test_an_altered_or_forged_code_still_never_passes(mark: str) -> None:
    wrong_k = next(k for k in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*" if k != DIN14[-1])
    ref, problem = scan_reference(DIN + wrong_k + mark, KEY)
    assert ref is None and "one of its characters is wrong" in problem
    ref, problem = scan_reference(DIN[:-1] + "9" + DIN14[-1] + mark, KEY)  # a digit changed, K kept
    assert ref is None or ref != DIN14
    forged = make_token(DIN14, "a-key-this-unit-never-used")
    ref, problem = scan_reference(forged + mark, KEY)
    assert ref is None and "not genuine" in problem
    bag_ref, signature = TOKEN.split(".")
    altered = f"{bag_ref}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}{mark}"
    ref, problem = scan_reference(altered, KEY)
    assert ref is None and "not genuine" in problem
    ref, problem = scan_reference(TOKEN[:-3] + mark, KEY)  # cut short: a misread, not the bag
    assert ref is None and problem == NOT_READ
    # a look-alike letter is not invisible: still a code altered, never the genuine one
    ref, problem = scan_reference(TOKEN.replace("I", "\u0131", 1) if "I" in TOKEN else TOKEN + "\u0131", KEY)
    assert ref is None
