"""Release forms: one result, the flow-cytometry panel, a correction, signatures (password re-entered)."""
from __future__ import annotations

from collections.abc import Iterable

from flask_wtf.file import FileField
from wtforms import (
    PasswordField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional

from mscbatch.core.oos_causes import ASSIGNABLE_CAUSES
from mscbatch.core.release_spec import MILLION_CELLS, ReleaseTest
from mscbatch.donors.forms import choices
from mscbatch.release.models import ASSESSMENT_OUTCOMES
from mscbatch.release.specs import FLOW_PANEL

# the longest signed text of these forms: the browser stops there; the services refuse a longer one all the same
# (texts.too_long: 422 naming the field)
from mscbatch.release.texts import SIGNED_TEXT_MAX_CHARS
from mscbatch.web.date_fields import TypedDateField
from mscbatch.web.forms import FlaskForm


class _Common(FlaskForm):
    analyst = StringField("Analyst")
    tested_on = TypedDateField("Test date", validators=[Optional()])
    method = StringField("Method (blank: the specification's)")
    instrument = StringField("Instrument")
    reagent_lot = StringField("Reagent lot")
    attachment = FileField("Attachment (PDF, CSV, TXT, PNG, JPEG, FCS; at most 5 MB)")


#: the unit select's value for each unit of a specification's tests (core.release_spec.UNITS): a count is typed in
#: millions, as the spec's limits and every other count form ("200" whole cells was a trap, an OOS); a result word
#: is "none", never the empty value, which is "not chosen" (an endotoxin result met "%" by default: refused)
UNIT_CHOICE = {"percent": "%", "cells": MILLION_CELLS, "EU/mL": "EU/mL", "none": "none"}
#: a test's unit as the unit select words it, for a refusal that names it
UNIT_WORDS = {"percent": "%", "cells": MILLION_CELLS, "EU/mL": "EU/mL", "none": "no unit (a result word)"}
NO_UNIT_CHOSEN = "— choose the unit —"
NO_TEST_CHOSEN = "— choose the test —"


def spec_test_choices(tests: Iterable[ReleaseTest]) -> list[SelectChoice]:
    """The specification's tests, none chosen; each option carries its test's unit (data-unit) for the page's script
    (static/js/result-unit.js) to choose it in the unit select."""
    return [SelectChoice("", NO_TEST_CHOSEN)] + [
        SelectChoice(t.id, f"{t.name} ({t.limit_text})", render_kw={"data-unit": UNIT_CHOICE.get(t.unit, "")})
        for t in tests]


class ResultForm(_Common):
    test_id = SelectField("Test")
    value = StringField("Value")
    unit = SelectField("Unit", choices=choices([("", NO_UNIT_CHOSEN), ("%", "%"), (MILLION_CELLS, MILLION_CELLS),
                                                ("EU/mL", "EU/mL"), ("none", "no unit (a result word)")]))


class PanelForm(_Common):
    pass


for _field, _test, _label in FLOW_PANEL:
    setattr(PanelForm, _field, StringField(f"{_label} (% positive)"))


class CorrectionForm(FlaskForm):
    value = StringField("Corrected value")
    unit = StringField(f"Unit (%, {MILLION_CELLS}, EU/mL, or empty for a result word)")
    reason = TextAreaField("Reason for the correction", render_kw={"maxlength": SIGNED_TEXT_MAX_CHARS})


class SignForm(FlaskForm):
    password = PasswordField("Your password (electronic signature)")


class ReleaseForm(SignForm):
    conditional_tests = SelectMultipleField("Conditional release: tests still pending", choices=[])
    justification = TextAreaField("Justification (conditional release: why the pending tests may wait) or reason "
                                  "(rejection)", render_kw={"maxlength": SIGNED_TEXT_MAX_CHARS})
    # its own field: a conditional release's justification is about the pending tests, never about the count
    count_justification = TextAreaField("Justification of the viable cell count above the harvest (why the count "
                                        "stands)", render_kw={"maxlength": SIGNED_TEXT_MAX_CHARS})


#: the cause select's first option: no laboratory cause found (the OOS can then only be confirmed)
NO_CAUSE_CHOSEN = "— none found (confirm: the failure stands) —"


class OosForm(SignForm):
    investigation = TextAreaField("Investigation and conclusion",
                                  render_kw={"maxlength": SIGNED_TEXT_MAX_CHARS})
    # required to invalidate (release.oos.invalidate_oos), not to confirm: the list and its words are
    # core.oos_causes's
    # the label's first words are the refusal's ("Assignable cause: ..."): the page's error summary then says it once
    assignable_cause = SelectField("Assignable cause: the laboratory cause found (required to invalidate)",
                                   choices=choices([("", NO_CAUSE_CHOSEN), *ASSIGNABLE_CAUSES.items()]))
    retest_result_id = SelectField("Retest result (to invalidate)", coerce=int, choices=[])
    # declared again, last: the page shows it last, and its refusals are listed in the page's order
    password = PasswordField("Your password (electronic signature)")


class ExceptionalForm(SignForm):
    patient_code = StringField("Patient code")
    justification = TextAreaField("Clinical justification", render_kw={"maxlength": SIGNED_TEXT_MAX_CHARS})


class AssessmentForm(SignForm):
    outcome = RadioField("Outcome", choices=choices(list(ASSESSMENT_OUTCOMES.items())))
    rationale = TextAreaField("Rationale: what was checked, why the lot's bags are or are not affected",
                              render_kw={"maxlength": SIGNED_TEXT_MAX_CHARS})
