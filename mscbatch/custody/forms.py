"""Ward forms (Flask-WTF, CSRF). They parse input only; the services check every rule."""
from __future__ import annotations

from typing import Any

from markupsafe import Markup
from wtforms import (
    BooleanField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields import Label
from wtforms.validators import DataRequired, Length, Optional

from mscbatch.custody.infusions import END_REASON_MAX
from mscbatch.custody.models import GRADES, RETURN_DECISIONS
from mscbatch.donors.forms import choices
from mscbatch.web.date_fields import DateTimeSiteField
from mscbatch.web.forms import FlaskForm

SCAN = {"autocomplete": "off", "autocapitalize": "off", "spellcheck": "false"}


class WardForm(FlaskForm):
    """The ward page: what was scanned, and the one-tap action."""

    wristband = StringField("Patient wristband", validators=[Optional(), Length(max=120)], render_kw=SCAN)
    bag = StringField("Bag label (QR code, or the DIN with its check character)",
                      validators=[Optional(), Length(max=600)], render_kw=SCAN)
    location = StringField("Where (ward, room)", validators=[Optional(), Length(max=120)])
    reason = StringField("Reason (return or discard: required)", validators=[Optional(), Length(max=2000)])


class DispatchForm(FlaskForm):
    """The technician's dispatch, on the ward page below the scan form: its fields have ids of their own
    ("dispatch-bag"...), so that its labels name its own fields, not the scan form's "bag" and "location" (the posted
    names stay "bag", "location"...)."""

    bag = StringField("Bag label (QR code, or the DIN with its check character)", id="dispatch-bag",
                      validators=[DataRequired("Scan the bag."), Length(max=600)], render_kw=SCAN)
    courier = StringField("Courier", id="dispatch-courier",
                          validators=[DataRequired("Give the courier."), Length(max=120)])
    shipper = StringField("Dry shipper or container id", id="dispatch-shipper",
                          validators=[DataRequired("Give the shipper."), Length(max=120)])
    temperature_logger_id = StringField("Temperature logger id", id="dispatch-temperature_logger_id",
                                        validators=[DataRequired("Give the temperature logger id."), Length(max=60)])
    location = StringField("From (location)", id="dispatch-location", validators=[Optional(), Length(max=120)])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        csrf = getattr(self, "csrf_token", None)
        if csrf is not None:
            csrf.id = "dispatch-csrf_token"


class SecondPersonForm(FlaskForm):
    """Both people sign the check: the person who scanned (signed in) with their password, the second person with
    their user name and password."""

    checker_password = PasswordField("You, who scanned: your password",
                                     validators=[DataRequired("Give your password: you sign the check too.")],
                                     render_kw={"autocomplete": "off"})
    second_username = StringField("Second person: user name", validators=[DataRequired("Give the user name.")],
                                  render_kw={"autocomplete": "off", "autocapitalize": "off"})
    second_password = PasswordField("Second person: password", validators=[DataRequired("Give the password.")],
                                    render_kw={"autocomplete": "off"})


class StartForm(FlaskForm):
    """The start of the infusion: the patient's wristband and the label of the bag in hand scanned again at the
    bedside, just before the start (the service checks they are the patient and the bag of the confirmed check and
    says so in words when they are not). The bag field has an id of its own ("start-bag")."""

    wristband = StringField("Scan the patient's wristband again (on the patient's arm)",
                            validators=[Optional(), Length(max=120)], render_kw=dict(SCAN, autofocus=True))
    bag = StringField("Scan the label of the bag in your hand (QR code, or the DIN with its check character)",
                      id="start-bag", validators=[Optional(), Length(max=600)], render_kw=SCAN)


class UnitLabel(Label):
    """A field's label with its unit: "Volume infused (mL)" on the page. Its text stays the field's name ("Volume
    infused"), as the service's messages start ("Volume infused: ..."), so that the error summary says it once."""

    def __init__(self, field_id: str, text: str, unit: str) -> None:
        super().__init__(field_id, text)
        self.unit = unit

    def __call__(self, text: str | None = None, **kwargs: Any) -> Markup:
        return super().__call__(text or f"{self.text} ({self.unit})", **kwargs)


class EndForm(FlaskForm):
    volume_ml = StringField("Volume infused", validators=[DataRequired("Volume infused: give the mL given.")],
                            render_kw={"inputmode": "decimal"})
    # short, as the refusals name it ("Why (if different): ..."); the page's hint says when it is needed
    reason = StringField("Why (if different)",
                         validators=[Optional(), Length(max=END_REASON_MAX)])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.volume_ml.label = UnitLabel(self.volume_ml.id, "Volume infused", "mL")


class ReactionForm(FlaskForm):
    ctcae_term = StringField("CTCAE term", validators=[DataRequired("Give the CTCAE term."), Length(max=120)],
                             render_kw={"list": "ctcae-terms"})
    grade = SelectField("Grade", choices=choices([("", "Choose…")] + [(str(k), v) for k, v in GRADES.items()]),
                        validators=[DataRequired("Choose the grade.")])
    description = TextAreaField("What happened (free text)", validators=[Optional(), Length(max=4000)])
    onset_at = DateTimeSiteField("Onset (when the reaction began)", format=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"],
                                  validators=[Optional()])


class ReturnAssessmentForm(FlaskForm):
    """QA's signed assessment of a returned bag (custody.returns), on the bag's own page."""

    decision = RadioField("Decision", choices=choices(list(RETURN_DECISIONS.items())), validate_choice=False)
    logger_max_c = StringField("Warmest logger temperature",
                               validators=[Optional(), Length(max=20)], render_kw={"inputmode": "decimal"})
    intact = BooleanField("Bag, overwrap and label seen intact")
    rationale = TextAreaField("Rationale: what you checked (logger record, bag, label) and why",
                              validators=[Optional(), Length(max=2000)])
    password = PasswordField("Your password (electronic signature)", render_kw={"autocomplete": "off"})
