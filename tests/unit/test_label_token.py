"""Signed QR tokens on bag labels: no patient data, forged / altered / truncated codes never verify."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mscbatch.core import label_token
from mscbatch.core.identifiers import make_din
from mscbatch.core.label_token import (
    SIGNATURE_CHARS,
    TokenInvalid,
    make_token,
    make_token_url,
    verify_token,
)

KEY = b"test-label-key-0123456789abcdef"
BASE = "https://mscbatch.example.org"
BAG = make_din("X9999", 26, 1).typed
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def test_token_url_round_trips_to_the_bag_reference() -> None:
    url = make_token_url(BASE, BAG, KEY)
    assert url.startswith(f"{BASE}/v/{BAG}.")
    assert len(url.rsplit(".", 1)[1]) == SIGNATURE_CHARS
    assert verify_token(url, KEY) == BAG


def test_bare_token_as_typed_by_a_keyboard_wedge_scanner_verifies() -> None:
    token = make_token(BAG, KEY)
    assert verify_token(token + "\r\n", KEY) == BAG
    assert verify_token("  " + token.lower(), KEY) == BAG  # Caps Lock / lower-case scanner setting


def test_base_url_with_a_path_and_trailing_slash_is_accepted() -> None:
    url = make_token_url("http://ward-host:8080/mscbatch/", "MSC-2026-0001-B0", KEY)
    assert url == f"http://ward-host:8080/mscbatch/v/{make_token('MSC-2026-0001-B0', KEY)}"
    assert verify_token(url, KEY) == "MSC-2026-0001-B0"


def test_token_holds_only_the_bag_reference_and_the_signature() -> None:
    token = make_token(BAG, KEY)
    assert token.split(".") == [BAG, token.split(".")[1]]


def test_a_token_signed_with_another_key_is_refused() -> None:
    with pytest.raises(TokenInvalid, match="does not match"):
        verify_token(make_token_url(BASE, BAG, b"another-key"), KEY)


def test_moving_a_signature_to_another_bag_is_refused() -> None:
    signature = make_token(BAG, KEY).split(".")[1]
    other = make_din("X9999", 26, 2).typed
    with pytest.raises(TokenInvalid, match="altered"):
        verify_token(f"{BASE}/v/{other}.{signature}", KEY)


@pytest.mark.parametrize("position", range(SIGNATURE_CHARS))
def test_changing_any_signature_character_is_refused(position: int) -> None:
    bag, signature = make_token(BAG, KEY).split(".")
    replacement = "A" if signature[position] != "A" else "B"
    altered = signature[:position] + replacement + signature[position + 1:]
    with pytest.raises(TokenInvalid):
        verify_token(f"{bag}.{altered}", KEY)


def test_every_truncation_of_the_url_is_refused() -> None:
    url = make_token_url(BASE, BAG, KEY)
    for length in range(len(url)):
        with pytest.raises(TokenInvalid):
            verify_token(url[:length], KEY)


@pytest.mark.parametrize(("text", "reason"), [
    ("", "empty"),
    ("   \n", "empty"),
    ("https://mscbatch.example.org/lots/12", "/v/"),
    ("G123417654321A", "expected <bag reference>.<signature>"),
    ("G123417654321A.", "no signature"),
    ("G123417654321A.ABC", "too short"),
    ("G123417654321A." + "A" * 40, "too long"),
    ("G123417654321A.ABCDEFGH!JKLMNOPQRSTUVWXYZ", "characters"),
    ("Mme Dupont.ABCDEFGHIJKLMNOPQRSTUVWXYZ", "characters"),
    ("a.b.c", "expected"),
    ("x" * 600, "too long"),
])
def test_malformed_codes_are_refused_with_a_plain_reason(text: str, reason: str) -> None:
    with pytest.raises(TokenInvalid) as caught:
        verify_token(text, KEY)
    assert reason in caught.value.reason


def test_the_signature_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = label_token.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(label_token.hmac, "compare_digest", spy)
    verify_token(make_token(BAG, KEY), KEY)
    assert len(calls) == 1


def test_bag_references_that_could_carry_patient_names_are_refused() -> None:
    with pytest.raises(ValueError, match="bag reference"):
        make_token_url(BASE, "Dupont Marie", KEY)
    with pytest.raises(ValueError, match="empty"):
        make_token(BAG, b"")
    with pytest.raises(ValueError, match="base URL"):
        make_token_url("mscbatch.example.org", BAG, KEY)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_random_text_never_verifies(text: str) -> None:
    with pytest.raises(TokenInvalid):
        verify_token(text, KEY)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=len(BAG) + SIGNATURE_CHARS), st.sampled_from(ALPHABET + "-*"))
def test_a_one_character_substitution_never_verifies(position: int, character: str) -> None:
    token = make_token(BAG, KEY)
    if position == len(BAG) or token[position] == character:
        return  # the separator, or no change at all
    altered = token[:position] + character + token[position + 1:]
    with pytest.raises(TokenInvalid):
        verify_token(altered, KEY)


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"\A[A-Z0-9][A-Z0-9*-]{0,39}\Z"))
def test_any_valid_bag_reference_round_trips(bag_ref: str) -> None:
    assert verify_token(make_token_url(BASE, bag_ref, KEY), KEY) == bag_ref
