"""Putting a service's refusal next to the field it concerns."""
from __future__ import annotations

from flask_wtf import FlaskForm

from mscbatch.errors import DomainError


def show_error(form: FlaskForm, error: DomainError) -> None:
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
