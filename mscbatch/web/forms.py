"""The base of every web form (what a form reads from a request), safe ids from posted text, and putting a
service's refusal next to the field it concerns."""
from __future__ import annotations

from typing import Any

from flask import request
from flask_wtf import FlaskForm as _FlaskWtfForm
from flask_wtf.file import FileField
from flask_wtf.form import _Auto  # Flask-WTF's "read the request" marker (its formdata default)
from werkzeug.datastructures import CombinedMultiDict, MultiDict
from wtforms import DecimalField

from mscbatch.api.plain_numbers import ASCII_SPACES, is_plain_number, rule_words
from mscbatch.core.bounds import whole_number
from mscbatch.errors import DomainError


class FlaskForm(_FlaskWtfForm):
    """Flask-WTF's form, reading only what a browser's form sends (found by tests/fuzz): an uploaded file only
    into a file field (a file posted for a text field reached the validators as a FileStorage) and never a JSON
    body (Flask-WTF takes one: numbers, lists and objects in text fields). Both were 500s; JSON belongs to
    /api/v1."""

    class Meta(_FlaskWtfForm.Meta):
        def wrap_formdata(self, form: Any, formdata: Any) -> Any:
            if formdata is not _Auto:
                return formdata
            if not form.is_submitted():
                return None
            file_fields = {field.name for field in form if isinstance(field, FileField)}
            files = [(k, v) for k, v in request.files.items(multi=True) if k in file_fields]
            if files:
                return CombinedMultiDict((MultiDict(files), request.form))
            return request.form or None


class FiniteDecimalField(DecimalField):
    """WTForms' DecimalField takes "NaN" and "Infinity" as numbers; a service comparing them raised (a 500 on the
    storage form, issue 9 review). Here they are refused as not a number, like any other text. It also takes only a
    plainly written number (mscbatch.api.plain_numbers, as the API): Decimal() read "1_0" as 10, "١٢" as 12 and
    "1e2" as 100, a wrong count or dose typed without a warning. A minus sign is let through: the field's own
    validators and the services judge a value below zero in their words (a storage temperature is one)."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        typed = valuelist[0] if valuelist else None
        if isinstance(typed, str) and typed.strip():  # a blank is the required / optional validators' to judge
            if not is_plain_number(typed, signed=True):
                self.data = None
                raise ValueError(f"Not a plain number: {rule_words(signed=True)}.")
            valuelist = [typed.strip(ASCII_SPACES)]
        super().process_formdata(valuelist)
        if self.data is not None and not self.data.is_finite():
            self.data = None
            raise ValueError(self.gettext("Not a valid decimal value."))


def posted_id(text: Any) -> int:
    """A row id posted as text: 0 (no row) unless plain digits in 1..2**31-1 (int() of any text was a 500)."""
    return whole_number(str(text or "")) or 0


def show_error(form: _FlaskWtfForm, error: DomainError) -> None:
    placed = False
    for field_name, messages in (error.errors or {}).items():
        field = getattr(form, field_name, None)
        if field is not None and hasattr(field, "errors"):
            if not isinstance(field.errors, list):
                field.errors = list(field.errors)
            field.errors.extend(messages)
            placed = True
    if not placed:
        form.form_errors.append(error.message)
