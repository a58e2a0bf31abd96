"""A date field that says what was wrong with a typed date and gives the typed text back.

WTForms' DateField refused "31/02/2026" or "2026-13-45" with "Not a valid date value." (no field, no format) and
rendered it back in an <input type="date">, which a browser empties when its value is not an ISO date: the person
lost what they typed and was not told how to write it (review s36).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from wtforms import DateField, DateTimeLocalField
from wtforms.widgets import DateInput

from mscbatch.api.plain_numbers import ASCII_SPACES
from mscbatch.site import TWICE, happens_twice, zone_reading

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


class DateTimeSiteField(DateTimeLocalField):
    """A date and time of the site, also read with the zone's abbreviation after it ("2026-10-25T02:30 CET"): the
    one way to say which of an autumn time that comes twice is meant (site.site_time refuses it naming both). Once
    refused so, the field is shown as text, where the abbreviation can be typed (a date-time picker takes none)."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        typed = " ".join(valuelist).strip(ASCII_SPACES) if valuelist else ""
        clock, _space, zone = typed.rpartition(" ")
        if not (clock and zone.isascii() and zone.isalpha()):
            return super().process_formdata(valuelist)
        naive = None
        for fmt in self.strptime_format:
            try:
                naive = datetime.strptime(clock.strip(ASCII_SPACES).replace(" ", "T", 1), fmt)
                break
            except ValueError:
                continue
        self.data = zone_reading(naive, zone) if naive else None
        if self.data is None:
            raise ValueError(f"{self.label.text.split(' (')[0]}: {typed[:40]!r} is not a time of the site's zone; "
                             "type it as YYYY-MM-DDTHH:MM, followed by the zone only for a time that happens twice "
                             "(02:30 CET).")
        return None

    def _value(self) -> str:
        """A recorded time (aware, the site's) shown with its zone when its wall time happens twice, so that it is
        submitted again as the same instant (a correction form is filled with the recorded values)."""
        data = self.data
        if self.raw_data or not isinstance(data, datetime) or data.tzinfo is None:
            return str(super()._value())
        return f"{data:%Y-%m-%dT%H:%M}" + (f" {data.tzname()}" if happens_twice(data) else "")

    def __call__(self, **kwargs: Any) -> Any:
        if any(TWICE in str(error) for error in self.errors) or " " in self._value().strip():
            kwargs["type"] = "text"
        return super().__call__(**kwargs)
