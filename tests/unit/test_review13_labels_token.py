"""Review 13 (labels): a label code altered with a Unicode look-alike letter never verifies.

verify_token upper-cases the scanned code (a scanner with Caps Lock on still verifies), and Unicode upper-casing
turns the dotless "ı" into I and the long "ſ" into S: a code with one of them in place of I or S passed for the
genuine one, although no label prints such a character and no scanner reads one from a label."""
from __future__ import annotations

import pytest

from mscbatch.core.identifiers import make_din
from mscbatch.core.label_token import TokenInvalid, make_token, make_token_url, verify_token

KEY = b"test-label-key-0123456789abcdef"
BASE = "https://mscbatch.example.org"
LOOK_ALIKES = {"I": "\u0131", "S": "\u017f"}  # each upper-cases to the ASCII letter


def _genuine_with(letter: str) -> str:
    """A genuine bare token whose signature holds `letter`."""
    for sequence in range(1, 500):
        token = make_token(make_din("X9999", 26, sequence).typed, KEY)
        if letter in token.split(".")[1]:
            return token
    raise AssertionError(f"no signature with {letter}")


@pytest.mark.parametrize("letter", sorted(LOOK_ALIKES))
def test_a_signature_letter_replaced_by_its_unicode_look_alike_is_refused(letter: str) -> None:
    token = _genuine_with(letter)
    bag_ref, signature = token.split(".")
    assert verify_token(token, KEY) == bag_ref  # the genuine code verifies
    altered = f"{bag_ref}.{signature.replace(letter, LOOK_ALIKES[letter], 1)}"
    assert altered != token and altered.upper() == token
    with pytest.raises(TokenInvalid, match="never prints"):
        verify_token(altered, KEY)
    with pytest.raises(TokenInvalid, match="never prints"):
        verify_token(f"{BASE}/v/{altered}", KEY)  # the camera's URL form too


def test_a_bag_reference_with_a_look_alike_is_refused_and_the_ascii_code_still_verifies() -> None:
    url = make_token_url(BASE, "MSC-2026-0001-S0", KEY)
    assert verify_token(url, KEY) == "MSC-2026-0001-S0"
    assert verify_token(url.lower(), KEY) == "MSC-2026-0001-S0"  # letter case alone is no alteration
    with pytest.raises(TokenInvalid, match="never prints"):
        verify_token(url.replace("-S0.", "-\u017f0."), KEY)
