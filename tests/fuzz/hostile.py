"""Hypothesis strategies for hostile input: what a careless or malicious client sends to a form or the API.

Values are text (a form body has nothing else) or, for JSON, any type; the plausible values (a demo
wristband, dates, decimals, small ids) make some requests pass the form's first checks so that the services'
own validation is fuzzed too.
"""
from __future__ import annotations

import json
from functools import cache
from typing import Any

from hypothesis import strategies as st

# Markers that must never come back unescaped (HTML) or evaluated (Jinja: 12345*6789 = 83810205).
SCRIPT = "<script>alert('fz')</script>"
TEMPLATE = "{{ 12345*6789 }}"
TEMPLATE_EVALUATED = "83810205"
INJECTIONS = [
    "' OR 1=1--", "'; DROP TABLE lot;--", '" OR ""="', "1; SELECT pg_sleep(0)", SCRIPT, TEMPLATE,
    "{% for x in range(9) %}x{% endfor %}", "${7*7}", "../../../../etc/passwd", "%s%s%s%n", "\\x00",
    "javascript:alert(1)", "<img src=x onerror=alert(1)>", "${jndi:ldap://x}", "__proto__", "null", "None",
]
NUMBERISH = ["NaN", "nan", "inf", "-inf", "Infinity", "-0", "1e309", "-1", "0", "1e-400", "9" * 40,
             str(2**31), str(2**63), str(-(2**63) - 1), "0x10", "1_000", "١٢٣", "½", "1,5", " 1 ", "+1", ".5"]
UNICODE = ["\x00", "a\x00b", "\ud800", "\udfff", "\u202e", "\ufeff", "\u200b", "ß", "İ", "𝔘𝔫𝔦", "😀" * 10,
           "\r\n", "\t", " ", "", "\x1b[31m", "Ω" * 300]
PLAUSIBLE = ["1", "2", "3", "0.5", "12.5", "62.5", "100", "2026-01-01", "2026-01-01T10:00", "2025-12-31 23:59",
             "01/02/2026", "WB-100234", "X999926000005P", "X9999260000050", "on", "y", "true", "confirm",
             "release", "reject", "conditional", "technician", "mL", "Box A1", "A1", "P1"]
# (no signed-in user's name: wrong passwords typed for it would lock the account and end the sweep's session)
HUGE = ["x" * 100_000, "9" * 5_000, "<" * 20_000, "\x00" * 1_000]


@cache  # one strategy object: Hypothesis validates each new one, slowly
def text_value() -> st.SearchStrategy[str]:
    """One form value: hostile or plausible text, random unicode, or a huge string."""
    return st.one_of(
        st.sampled_from(INJECTIONS + NUMBERISH + UNICODE + PLAUSIBLE),
        st.text(max_size=40),
        st.text(st.characters(codec="utf-8"), max_size=12),
        st.integers(-(2**70), 2**70).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.sampled_from(HUGE),
    )


@cache
def form_value() -> st.SearchStrategy[Any]:
    """A form field: one value, or a list (the key repeated: a wrong type for a single-valued field)."""
    return st.one_of(text_value(), text_value(), st.lists(text_value(), min_size=0, max_size=3))


@cache
def json_scalar() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(), st.booleans(), text_value(),
        st.integers(-(2**70), 2**70), st.sampled_from([0, -1, 2**31 - 1, 2**31, 2**63, 10**30]),
        st.floats(allow_nan=True, allow_infinity=True),  # NaN and Infinity as bare JSON tokens
    )


@cache
def json_value() -> st.SearchStrategy[Any]:
    return st.recursive(json_scalar(), lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=6)


def dumps(value: Any) -> bytes:
    """JSON as Python writes it: NaN and Infinity included (Python's own json.loads accepts them)."""
    return json.dumps(value, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass")


# The deterministic pass (test_edge_*.py): every value below in every field, one field at a time, the others
# plausible so that the value reaches the services. Each names a class of 500 found before (issue 9 review).
EDGE_TEXT = {
    "NUL inside text": "a\x00b",  # PostgreSQL text cannot hold it: the driver raised deep in a use case
    "1E+999999999": "1E+999999999",  # a Decimal whose formatting or quantize() overflows
    "NaN": "NaN",  # Decimal("NaN"): any comparison raises
    "Infinity": "Infinity",  # compares, but int() and quantize() of it raise
    "2^31": str(2**31),  # one past PostgreSQL INTEGER
    "2^63": str(2**63),  # one past BIGINT
    "10^5000": "1" + "0" * 5000,  # past Python's 4300-digit int() limit
    "0001-01-01": "0001-01-01",  # a day a date picker takes, which a time zone or a day's shift moves out of range
    "9999-12-31": "9999-12-31",
    "0001-01-01T00:00": "0001-01-01T00:00",  # the same as a form's local date and time
    "9999-12-31T23:59": "9999-12-31T23:59",
}  # (a date and time with its zone, 0001-01-01T00:00:00+14:00, is no form's or query's format: EDGE_JSON has it)
# a <select> or radio button takes only its choices (WTForms refuses any other value before the view runs): unless
# the view reads it itself, it gets the NUL (refused for every field) and 2^63 (a choice coerced by int()) only
EDGE_CHOICE = ("NUL inside text", "2^63")
# The same as raw JSON text, spliced into a body as a client may write it (json.dumps refuses a 5000-digit integer),
# and what only JSON can say: a lone surrogate escape, bare NaN and Infinity, a number past float, deep nesting.
EDGE_JSON = {
    "NUL inside text": '"a\\u0000b"',
    "lone surrogate": '"\\ud800"',  # no UTF-8 encoder takes it
    "10^5000": "1" + "0" * 5000,  # json.loads raises ValueError past 4300 digits
    "1E+999999999 number": "1E+999999999",  # Python reads inf
    "1E+999999999 text": '"1E+999999999"',
    "NaN": "NaN", "Infinity": "Infinity", '"NaN"': '"NaN"', '"Infinity"': '"Infinity"',
    "2^31": str(2**31), "2^63": str(2**63),
    "0001-01-01": '"0001-01-01"', "9999-12-31": '"9999-12-31"',
    "0001-01-01T00:00:00+14:00": '"0001-01-01T00:00:00+14:00"', "9999-12-31T23:59:59-14:00": '"9999-12-31T23:59:59-14:00"',
    "10000 levels": "[" * 10_000 + "]" * 10_000,  # RecursionError in json.loads
}
