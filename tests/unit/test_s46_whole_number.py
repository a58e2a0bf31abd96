"""core.bounds.whole_number: a number typed in a query string or posted as an id. Session 45's paging read the
patients list's `before` and the ward list's `page` with isdigit() then int(), and 5 000 digits were a 500 (int()
raises past Python's 4 300-digit limit)."""
from __future__ import annotations

import pytest

from mscbatch.core.bounds import MAX_ROW_ID, whole_number


@pytest.mark.parametrize(("text", "expected"), [
    ("1", 1), (" 42 ", 42), ("007", 7), (str(MAX_ROW_ID), MAX_ROW_ID),
    ("0", None), ("", None), ("-1", None), ("+1", None), ("1.0", None), ("1e3", None), ("²", None), ("١", None),
    (str(MAX_ROW_ID + 1), None), ("1" + "0" * 5000, None), ("9" * 11, None),
])
def test_a_whole_number_is_plain_digits_within_its_range(text: str, expected: int | None) -> None:
    assert whole_number(text) == expected


def test_the_largest_allowed_sets_the_range_and_the_digits() -> None:
    assert whole_number("100000", largest=100_000) == 100_000
    assert whole_number("100001", largest=100_000) is None
    assert whole_number("0000001", largest=100_000) is None  # more digits than the largest has: never int()'d
