"""Patient forms (Flask-WTF, CSRF). They parse input only; the services check every rule and their refusals
are shown next to the field they name."""
from __future__ import annotations

from wtforms import (
    BooleanField,
    HiddenField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from mscbatch.core.protocols import Protocol, format_cells_per_kg
from mscbatch.donors.forms import choices
from mscbatch.patients.models import SEX_LABELS
from mscbatch.patients.services import WEIGHT_CHECKED
from mscbatch.patients.weight_errors import REASON_MAX as WEIGHT_ERROR_REASON_MAX
from mscbatch.web.date_fields import TypedDateField, missing_date_words
from mscbatch.web.forms import FlaskForm

YES_NO = choices([("", "Not measured yet"), ("no", "No"), ("yes", "Yes")])
PASSWORD_FIELD = dict(validators=[DataRequired("Re-enter your password to sign.")],
                      render_kw={"autocomplete": "current-password"})


class PatientForm(FlaskForm):
    protocol_id = SelectField("Trial protocol", validators=[DataRequired("Choose the protocol.")])
    code = StringField("Trial patient code (leave empty to generate one)", validators=[Optional(), Length(max=40)])
    initials = StringField("Initials", validators=[DataRequired("Give the initials."), Length(max=10)])
    date_of_birth = TypedDateField("Date of birth", validators=[InputRequired(missing_date_words("the date of birth"))])
    sex = SelectField("Sex", choices=choices([("", "Choose…"), *SEX_LABELS.items()]),
                      validators=[DataRequired("Choose the sex.")])
    ward = StringField("Ward", validators=[DataRequired("Give the ward."), Length(max=80)])
    wristband_id = StringField("Wristband identifier (leave empty to generate one)",
                               validators=[Optional(), Length(max=60)])
    familial_donor_code = StringField("Familial donor code (SSc-BM; found by the typed patient code when empty)",
                                      validators=[Optional(), Length(max=20)])

    def set_protocols(self, protocols: dict[str, Protocol]) -> PatientForm:
        self.protocol_id.choices = choices([("", "Choose…")] + [
            (p.id, f"{p.short_name} ({p.trial_id}) v{p.version}") for p in protocols.values()])
        return self


class WeightForm(FlaskForm):
    # inputmode: a tablet shows its number keyboard (a StringField: a number refused is shown back as typed)
    weight_kg = StringField("Weight (kg)", validators=[DataRequired("Give the weight."), Length(max=10)],
                            render_kw={"inputmode": "decimal", "autocomplete": "off"})
    measured_on = TypedDateField("Measured on", validators=[
        InputRequired(missing_date_words("the date of the measurement"))])
    # needed for a weight far from a recent one, or implausible with none to compare (services.weight_check)
    weight_confirmed = BooleanField(WEIGHT_CHECKED)


class WeightErrorForm(FlaskForm):
    """Mark a weight entered in error (weight_errors.mark_entered_in_error judges the weight and the reason: one
    rule for the page and the API). The choices are the weights in use, set by the page; what is posted is read as
    a row id (web.forms.posted_id), never int() of any text."""
    weight_id = SelectField("Weight entered in error", validate_choice=False)
    reason = TextAreaField("Why this weight is wrong", render_kw={"maxlength": WEIGHT_ERROR_REASON_MAX, "rows": 2})
    password = PasswordField("Your password (electronic signature: the weight is no longer used)", **PASSWORD_FIELD)


def enrolment_form(protocol: Protocol) -> type[FlaskForm]:
    """One field per measurable criterion of the protocol, named after the core's parameter."""

    class EnrolmentForm(FlaskForm):
        on_date = TypedDateField("Date of the check", validators=[Optional()])

    for criterion in protocol.criteria:
        if criterion.is_boolean:
            setattr(EnrolmentForm, criterion.parameter, SelectField(criterion.text, choices=YES_NO, default=""))
        else:
            label = f"{criterion.text} [{criterion.unit}]"
            setattr(EnrolmentForm, criterion.parameter, StringField(label, validators=[Length(max=20)]))
    return EnrolmentForm


class EnrolForm(FlaskForm):
    check_id = HiddenField(validators=[DataRequired()])
    password = PasswordField("Your password (electronic signature: enrols the patient)", **PASSWORD_FIELD)


class EscalationForm(FlaskForm):
    stage_id = HiddenField(validators=[DataRequired()])
    chosen_cells_per_kg = SelectField("Level chosen for the next cohort", validators=[DataRequired("Choose a level.")])
    toxicity_review = TextAreaField("Toxicity review relied upon (reference, CTCAE summary)",
                                    validators=[DataRequired("Cite the toxicity review."), Length(max=2000)])
    decided_on = TypedDateField("Decided on", validators=[Optional()])
    password = PasswordField("Your password (electronic signature)", **PASSWORD_FIELD)

    def set_levels(self, levels: tuple) -> EscalationForm:  # type: ignore[type-arg]
        self.chosen_cells_per_kg.choices = choices([("", "Choose…")] + [
            (str(int(level)), format_cells_per_kg(level)) for level in levels])
        return self


class PrescribeForm(FlaskForm):
    level = HiddenField(validators=[DataRequired("Calculate the dose first: the dose level is missing.")])
    bag_ids = HiddenField(validators=[DataRequired("Calculate the dose first.")])
    planned_on = HiddenField()
    # the weight the dry run used: a newer one refuses the signature
    weight_id = HiddenField(validators=[DataRequired("Calculate the dose first: the weight it used is missing.")])
    repeat_course_reason = TextAreaField(
        "Reason for a repeat course (required: cells were already infused to this patient under this protocol)",
        validators=[Optional(), Length(max=2000)])
    password = PasswordField("Your password (electronic signature: prescribes and allocates the bags)",
                             **PASSWORD_FIELD)


#: the reason's label when the prescription page offers to close a completed course (nothing is cancelled)
CLOSING_NOTE = "Closing note (e.g. course completed as prescribed; patient's condition after the last infusion)"


#: a signed text's limit, as the API's (PrescriptionEndInSchema) and prescriptions.cancel: a reason the API takes is
#: not cut short on the page
CANCEL_REASON_MAX = 2000


class CancelForm(FlaskForm):
    reason = TextAreaField("Reason for cancelling or stopping", validators=[DataRequired(
        "Give a reason: it goes into the audit trail."), Length(
        max=CANCEL_REASON_MAX, message=f"The reason has at most {CANCEL_REASON_MAX} characters.")])
    # a clinical decision that sends the bags not given back to stock: signed like the prescription
    password = PasswordField("Your password (electronic signature: cancels the prescription or stops the course; "
                             "the bags not given go back to stock)", **PASSWORD_FIELD)

    def for_completed_course(self) -> CancelForm:
        """Closing a completed course: the field asks for a closing note, not a reason for cancelling."""
        self.reason.label.text = CLOSING_NOTE
        self.password.label.text = "Your password (electronic signature: closes the completed course)"
        self.reason.validators = [DataRequired("Write the closing note: it goes into the audit trail."), Length(
            max=CANCEL_REASON_MAX, message=f"The closing note has at most {CANCEL_REASON_MAX} characters.")
        ]  # this instance's own list (the class's is shared)
        return self


class WithdrawForm(FlaskForm):
    reason = TextAreaField("Reason for the withdrawal (e.g. consent withdrawn by the patient on ...)",
                           validators=[DataRequired("Give the reason for the withdrawal."), Length(max=2000)])
    withdrawn_on = TypedDateField("Withdrawn on (empty: today)", validators=[Optional()])
    password = PasswordField("Your password (electronic signature: withdraws the patient and stops the active "
                             "prescription)", **PASSWORD_FIELD)
