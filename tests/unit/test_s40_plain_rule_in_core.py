"""The plain-number rule is one pure function of the core (core.numbers.is_plain_number): the JSON API's PlainDecimal
(api.plain_numbers) and a release result (release.results._refuse_unplain) both call it, each with its own words,
unchanged. The core stays pure: core.numbers imports the standard library only."""
from __future__ import annotations

import ast
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from mscbatch.api import plain_numbers
from mscbatch.core import numbers
from mscbatch.core.release_spec import ReleaseTest
from mscbatch.errors import ValidationFailed
from mscbatch.release import results


def test_the_core_rule_is_pure():
    """core.numbers imports the standard library only (no Flask, marshmallow, SQLAlchemy, nor mscbatch's own
    modules that reach them)."""
    tree = ast.parse(Path(numbers.__file__).read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def test_the_api_and_the_results_call_the_one_rule():
    assert plain_numbers.is_plain_number is numbers.is_plain_number
    assert results.is_plain_number is numbers.is_plain_number
    assert (plain_numbers.RULE, plain_numbers.SIGNED_RULE) == (numbers.RULE, numbers.SIGNED_RULE)
    assert plain_numbers.rule_words(signed=True) == numbers.SIGNED_RULE


@pytest.mark.parametrize("text", ["1e2", "inf", "nan", "0x10", "1_0", "１２", "+5"])
def test_a_result_and_the_api_refuse_what_the_rule_refuses(text, monkeypatch):
    assert not numbers.is_plain_number(text, signed=True)
    test = ReleaseTest(id="viability", name="Viability", kind="minimum", unit="percent", group="release",
                       method="trypan blue", blocking=True, min=Decimal(70))
    with pytest.raises(ValidationFailed) as refused:
        results._refuse_unplain(test, text, "value")
    assert refused.value.message == (f"Viability: {text!r} is not a plain number; write it with digits 0-9 and at most "
                                     "one decimal point, such as 92.5 (no exponent such as 1e2, no underscore, no "
                                     "other characters). Nothing was recorded.")
    with pytest.raises(ValidationFailed) as refused:
        plain_numbers.PlainDecimal(label="Volume (mL)").deserialize(text)
    assert refused.value.message == f"Volume (mL): {text!r} is not a plain number; {numbers.RULE}."
    # the rule decides: one that took everything would let both through
    monkeypatch.setattr(results, "is_plain_number", lambda _text, *, signed: True)
    results._refuse_unplain(test, text, "value")
