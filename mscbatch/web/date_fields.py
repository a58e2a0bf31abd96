"""A date field that says what was wrong with a typed date and gives the typed text back.

WTForms' DateField refused "31/02/2026" or "2026-13-45" with "Not a valid date value." (no field, no format) and
rendered it back in an <input type="date">, which a browser empties when its value is not an ISO date: the person
lost what they typed and was not told how to write it (review s36).
"""
from __future__ import annotations

from typing import Any

from wtforms import DateField
from wtforms.widgets import DateInput

FORMAT_WORDS = "type it as YYYY-MM-DD (e.g. 2026-02-28)"
_SHOWN_MAX = 30  # a pasted paragraph is not repeated whole in the message


def missing_date_words(what: str) -> str:
    """The words of a required date left empty. A browser's date input sends a date that does not exist (typed
    2026-02-30) or one only partly typed as empty, so "Give the date." alone told a person who had typed one nothing:
    the words also say that it must be a real date and how to write it."""
    return f"Give {what}: a real date, one that exists on the calendar; {FORMAT_WORDS}."


def typed_text(field: Any) -> str:
    return " ".join(v for v in (field.raw_data or []) if isinstance(v, str)).strip()


class _TypedDateInput(DateInput):
    """A date input; once it holds text that is not a date, a text input, so the browser keeps that text on the
    page (an <input type="date"> shows an invalid value as empty)."""

    def __call__(self, field: Any, **kwargs: Any) -> Any:
        if field.data is None and typed_text(field):
            kwargs.setdefault("type", "text")
            kwargs.setdefault("placeholder", "YYYY-MM-DD")
        return super().__call__(field, **kwargs)


class TypedDateField(DateField):
    """A YYYY-MM-DD date. A blank is left to the field's Optional / InputRequired validator; any other text that
    is not a date is refused naming the field, the text and the format: "Consent date: '31/02/2026' is not a
    date; type it as YYYY-MM-DD (e.g. 2026-02-28)"."""

    widget = _TypedDateInput()

    def process_formdata(self, valuelist: list[Any]) -> None:
        typed = " ".join(v for v in valuelist if isinstance(v, str)).strip() if valuelist else ""
        if not typed:
            self.data = None
            return
        try:
            super().process_formdata([typed])
        except ValueError:
            self.data = None
            shown = typed if len(typed) <= _SHOWN_MAX else typed[:_SHOWN_MAX] + "…"
            raise ValueError(f"{self.label.text}: '{shown}' is not a date; {FORMAT_WORDS}") from None
