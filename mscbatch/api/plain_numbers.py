"""Numbers as a person writes them, shared by the web forms and the JSON API: ASCII digits, at most one decimal
point; a minus sign in the API only where a value below zero exists (a storage temperature), on the pages where
the field's validators judge a value below zero in their own words (web.forms.FiniteDecimalField).

Python's Decimal() reads much more: "1_0" is 10, "١٢" (Arabic-Indic) and "１２" (full-width) are 12, "1e2" is
100, and spaces of any alphabet around the number are dropped. A technician typing "1_0" got 10 silently: a
wrong count or dose. Here such text is refused, naming the field and the rule, never guessed at. The rule itself
is core.numbers.is_plain_number (pure, shared with release.results); this module words it for the API."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import fields

# the rule itself is the core's, pure (core.numbers.is_plain_number); its names stay importable from here
from mscbatch.core.numbers import ASCII_SPACES, PLAIN_NUMBER, RULE, SIGNED_RULE, is_plain_number, rule_words
from mscbatch.errors import ValidationFailed

__all__ = ["ASCII_SPACES", "PLAIN_NUMBER", "RULE", "SIGNED_RULE", "PlainDecimal", "is_plain_number", "plain_text",
           "rule_words"]


def plain_text(value: Any) -> str | None:
    """The text a JSON value is read from: a string as sent, an integer or a float as written by str() (a float
    str() writes with an exponent, 1e-05, is refused like the text "1e-05"); None for anything else (true,
    lists, objects), which marshmallow's own "not a valid number" then refuses."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    return None


class PlainDecimal(fields.Decimal):
    """A marshmallow Decimal that takes only a plainly written number (see the module's docstring). Anything else
    is refused as the services refuse a value (ValidationFailed: a 422 problem whose detail is the message and
    whose errors name the request's own field, {"weight_kg": [...]}), in words naming the field (`label`, else
    its JSON name) and the rule. Sent back as a string, as every decimal of the API. `signed=True` lets a minus
    sign through (a temperature, or a volume the service reads "-0" as 0)."""

    def __init__(self, *args: Any, signed: bool = False, label: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("as_string", True)
        super().__init__(*args, **kwargs)
        self.signed = signed
        self.label = label

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = plain_text(value)
        if text is not None:
            if not is_plain_number(text, signed=self.signed):
                name = self.data_key or self.name or "value"
                raise ValidationFailed(f"{self.label or name}: {text[:40]!r} is not a plain number; "
                                       f"{rule_words(signed=self.signed)}.", field=name)
            value = text.strip(ASCII_SPACES)
        return super()._deserialize(value, attr, data, **kwargs)
