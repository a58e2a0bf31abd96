"""Pure properties of the label token (mscbatch/core/label_token.py): a code that is not exactly a genuine one,
up to letter case and surrounding whitespace, never verifies, and no input makes the parser fail otherwise."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mscbatch.core.label_token import TokenInvalid, make_token, make_token_url, verify_token
from tests.fuzz.forgeries import FOREIGN_KEY, forgeries

KEY = "test-label-key"
REF, OTHER = "X999926000006N", "X999926000007L"
TOKEN = make_token(REF, KEY)
FAST = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def test_the_genuine_code_verifies_in_every_form_a_scanner_types() -> None:
    for scanned in (TOKEN, TOKEN.lower(), f"  {TOKEN}\n", make_token_url("https://x.example/app", REF, KEY)):
        assert verify_token(scanned, KEY) == REF


@FAST
@given(forgeries(TOKEN, make_token(OTHER, KEY)))
@example(TOKEN[:-1]).via("the last signature character lost")
@example(f"{OTHER}.{TOKEN.split('.')[1]}").via("another bag's reference under this signature")
@example(make_token(REF, FOREIGN_KEY)).via("signed with another key")
def test_any_forgery_or_damage_is_refused(forged: str) -> None:
    with pytest.raises(TokenInvalid):
        verify_token(forged, KEY)


def test_every_truncation_is_refused() -> None:
    for length in range(len(TOKEN)):
        with pytest.raises(TokenInvalid):
            verify_token(TOKEN[:length], KEY)


@FAST
@given(st.one_of(st.text(), st.binary(), st.none(), st.integers(), st.lists(st.text(max_size=3), max_size=2)))
def test_the_parser_answers_any_input_with_a_reason_or_a_genuine_reference(scanned: object) -> None:
    try:
        ref = verify_token(scanned, KEY)  # type: ignore[arg-type]
    except TokenInvalid as invalid:
        assert invalid.reason
    else:
        assert make_token(ref, KEY) == "".join(str(scanned).split("/v/")[-1].split()).upper()
