"""Donor forms (Flask-WTF, CSRF): registration, results, questionnaire, QA decision. They parse input only;
every rule is checked by the services, whose refusals are shown next to the field they name."""
from __future__ import annotations

from typing import Any

from wtforms import HiddenField, PasswordField, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional, ValidationError

from mscbatch.core.donor_rules import RuleSet
from mscbatch.donors.models import DONOR_TYPE_LABELS, MEANINGS, RELATIONSHIP_LABELS, SEX_LABELS, SOURCE_LABELS
from mscbatch.web.date_fields import TypedDateField
from mscbatch.web.forms import FlaskForm


def choices(pairs: Any) -> list[SelectChoice]:
    """(value, label) pairs as WTForms choices."""
    return [SelectChoice(value, label) for value, label in pairs]


TRI_STATE = choices([("", "Not recorded yet"), ("yes", "Yes"), ("no", "No")])
RESULT_CHOICES = choices([("negative", "Negative"), ("positive", "Positive"), ("indeterminate", "Indeterminate")])
ANSWER_CHOICES = choices([("no", "No"), ("yes", "Yes"), ("unknown", "Unknown")])


def marker_label(name: str, method: str) -> str:
    """A marker as the lists name it: its name, then its method unless the name says it already ("HIV PCR (NAT)",
    "HIV NAT": never "HIV PCR (NAT) (NAT)")."""
    return name if method.lower() in name.lower() else f"{name} ({method})"


class ResultRadioField(RadioField):
    """The result choice; an unknown value is refused naming the field and the values allowed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # rendered by macros.field as a radio group (a fieldset with its legend, each radio beside its label, as the
        # QA decision's "Meaning of your signature"), which it recognises by the field's type
        self.type = "RadioField"

    def pre_validate(self, form: Any) -> None:
        if self.data and self.data not in {c.value for c in RESULT_CHOICES}:  # nothing chosen: InputRequired says so
            raise ValidationError(f"Result: choose negative, positive or indeterminate ({str(self.data)[:20]!r} is not one).")


class MarkerSelectField(SelectField):
    """The marker choice: a marker outside the donor's rule set is refused naming the rule set and the marker (e.g.
    Anti-HEV posted for a cord donor), not with WTForms' "Not a valid choice"."""

    rule_set: RuleSet | None = None

    def pre_validate(self, form: Any) -> None:
        if not self.data or self.data in {c.value for c in self.choices or []}:  # nothing: DataRequired says so
            return
        posted = str(self.data)[:40]
        from mscbatch.donors.queries import rule_sets  # the queries read the models: imported when called

        known = next((m for rs in rule_sets().values() for m in rs.markers if m.id == posted), None)
        name = known.name if known is not None else repr(posted)
        under = (f"rule set {self.rule_set.id} v{self.rule_set.version} ({self.rule_set.protocol})"
                 if self.rule_set is not None else "this donor's rule set")
        raise ValidationError(f"Marker: {name} is not tested under {under}; choose one of its markers.")


def tri_state(value: str | None) -> bool | None:
    return {"yes": True, "no": False}.get(value or "")


def tri_state_value(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


def _tri(label: str) -> SelectField:
    return SelectField(label, choices=TRI_STATE, default="")


class DonorForm(FlaskForm):
    rule_set_id = SelectField("Tissue source and protocol", validators=[DataRequired("Choose the protocol.")])
    donor_type = SelectField("Donor type", choices=choices(DONOR_TYPE_LABELS.items()), default="unrelated")
    relationship = SelectField("Relationship to the intended recipient (familial donors)",
                               choices=choices([("", "—"), *RELATIONSHIP_LABELS.items()]), default="")
    recipient_code = StringField("Intended recipient's trial patient code (familial donors)",
                                 validators=[Optional(), Length(max=40)])
    initials = StringField("Donor initials", validators=[Optional(), Length(max=10)])
    date_of_birth = TypedDateField("Date of birth", validators=[Optional()])
    sex = SelectField("Sex", choices=choices([("", "Not recorded yet"), *SEX_LABELS.items()]), default="")
    weight_kg = StringField("Weight (kg)", validators=[Optional(), Length(max=8)])
    consent_signed = _tri("Informed consent signed")
    consent_date = TypedDateField("Consent date", validators=[Optional()])
    social_security = _tri("Affiliated to social security")
    childbearing_potential = _tri("Woman of childbearing potential")
    contraception = _tri("On effective contraception")
    retest_180_days_negative = _tri("Negative retest 180 days after donation documented")
    planned_collection_date = TypedDateField("Planned collection (donation) date", validators=[Optional()])

    def set_rule_sets(self, rule_sets: dict[str, RuleSet]) -> DonorForm:
        self.rule_set_id.choices = choices([("", "Choose…")] + [
            (rs.id, f"{SOURCE_LABELS[rs.tissue_source]}: {rs.protocol} (rule set {rs.id} v{rs.version})")
            for rs in rule_sets.values()])
        #: the rule sets whose extended sample window a negative 180-day retest opens: the only ones the retest
        #: field is shown for (the others' rules ignore it)
        #: per rule set, the optional fields its rules use (weight, social security, childbearing potential and
        #: contraception): the others are not shown for a donor of that rule set (a cord mother has no weight rule)
        self.used_fields = {rs.id: used_fields(rs) for rs in rule_sets.values()}
        self.retest_rule_sets = {rs.id: rs for rs in rule_sets.values()
                                 if rs.sample_window.extended and rs.sample_window.extended.accept_retest_180_days}
        return self


#: the donor fields shown only for a rule set with a rule that reads them
RULE_FIELDS = ("weight_kg", "social_security", "childbearing_potential", "contraception")


def used_fields(rule_set: RuleSet) -> set[str]:
    """The optional donor fields (RULE_FIELDS) the rule set's rules read: the form asks only these, and the donor
    page lists only these (with any value recorded)."""
    kinds = {fact.kind for fact in rule_set.required_facts}
    used = {"weight_kg"} if any(limit.quantity == "weight" for limit in rule_set.limits) else set()
    if "social_security" in kinds:
        used.add("social_security")
    if "contraception" in kinds:
        used.update({"childbearing_potential", "contraception"})
    return used


class DonorEditForm(DonorForm):
    reason = TextAreaField("Reason for the correction", validators=[DataRequired(
        "Give a reason: it goes into the audit trail."), Length(max=500)])
    #: services.details_digest of the details the page showed: a page opened before a colleague's correction is
    #: refused instead of putting the old values back
    seen = HiddenField()


class ResultForm(FlaskForm):
    marker = MarkerSelectField("Marker", validators=[DataRequired("Choose the marker.")])
    result = ResultRadioField("Result", choices=RESULT_CHOICES, validators=[InputRequired("Choose the result.")])
    sample_date = TypedDateField("Sample date", validators=[InputRequired("Give the sample date.")])
    lab_reference = StringField("Laboratory report reference", validators=[
        DataRequired("Give the laboratory reference."), Length(max=60)])

    def set_markers(self, rule_set: RuleSet) -> ResultForm:
        self.marker.choices = choices([("", "Choose…")] + [(m.id, marker_label(m.name, m.method)) for m in rule_set.markers])
        self.marker.rule_set = rule_set
        return self


class CorrectionForm(ResultForm):
    reason = TextAreaField("Reason for the correction", validators=[DataRequired(
        "Give a reason: it goes into the audit trail."), Length(max=500)])
    seen = HiddenField()  # services.result_digest of the result the page showed


class QACorrectionForm(CorrectionForm):
    """QA's correction of a result that reopened the donor's approval (late news): signed."""

    password = PasswordField("Your password (electronic signature)",
                             validators=[DataRequired("Re-enter your password to sign.")],
                             render_kw={"autocomplete": "current-password"})


class CloseLookbackForm(FlaskForm):
    note = TextAreaField("Closing note (what was checked, and why nothing needs recalling)", validators=[
        DataRequired("Write the closing note: it goes into the audit trail."), Length(max=2000)])


def questionnaire_form(rule_set: RuleSet, data: dict[str, Any] | None = None) -> FlaskForm:
    """One yes / no / unknown question with its detail per exclusion question of the rule set."""

    class QuestionnaireForm(FlaskForm):
        reason = TextAreaField("Reason (only when you change earlier answers)", validators=[Length(max=500)])
        seen = HiddenField()  # services.questionnaire_digest of the answers the page showed

    for question in rule_set.questions:
        setattr(QuestionnaireForm, f"q_{question.id}", RadioField(question.text, choices=ANSWER_CHOICES,
                                                                  validators=[Optional()]))
        # the question named in the label: the page's error summary lists "Detail: ..." of 13+ questions otherwise
        setattr(QuestionnaireForm, f"d_{question.id}", StringField(
            f"Detail of '{question.text.rstrip('?')}'",
            validators=[Length(max=500, message="at most %(max)d characters (you typed %(length)d)")]))
    return QuestionnaireForm(data=data) if data is not None else QuestionnaireForm()


class DecisionForm(FlaskForm):
    meaning = RadioField("Meaning of your signature", choices=choices((m, m) for m in MEANINGS),
                         validators=[InputRequired("Choose the meaning of your signature.")])
    comment = TextAreaField("Comment (required to sign 'Donor ineligible' against the checklist; to approve a "
                            "donor awaiting a risk assessment: the documented risk assessment)",
                            validators=[Length(max=2000)])
    password = PasswordField("Your password (electronic signature)",
                             validators=[DataRequired("Re-enter your password to sign.")],
                             render_kw={"autocomplete": "current-password"})
    #: the fingerprint of the screening shown on the page (decisions.screening_digest): a signature given on a page
    #: that no longer shows the screening is refused
    screening = HiddenField()


class ReopenForm(FlaskForm):
    reason = TextAreaField("Reason for reopening", validators=[DataRequired(
        "Give a reason: it goes into the audit trail."), Length(max=500)])
