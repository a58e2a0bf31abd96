"""Recall forms: start (origin, reason, signature), end (reason, signature), complete (closing note, signature),
discard a held bag (reason) and close a lookback under the donor's recall in force (note)."""
from __future__ import annotations

from typing import Any

from wtforms import PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import Length

from mscbatch.donors.forms import choices
from mscbatch.recall.models import NOTICE_HOW, QA_NOTICE_HOW, RECALL_SCOPES
from mscbatch.recall.services import MAX_REASON
from mscbatch.web.date_fields import DateTimeSiteField
from mscbatch.web.forms import FlaskForm


def one_line_break(text: Any) -> Any:
    """A browser sends each line break of a text area as CR LF, and counts it as one character for its maxlength:
    kept as LF, a reason typed up to the field's limit is not refused as longer than it."""
    return text.replace("\r\n", "\n") if isinstance(text, str) else text


def reason_length(what: str = "reason") -> Length:
    """At most MAX_REASON characters (the service refuses the same: services.reason_too_long)."""
    return Length(max=MAX_REASON, message=f"The {what} has at most %(max)d characters (this one has %(length)d). "
                                          "Nothing was signed.")


class StartRecallForm(FlaskForm):
    scope = SelectField("Recall from", choices=choices(list(RECALL_SCOPES.items())), default="donor")
    target = StringField("Donor code, lot number or reagent lot number ('#id' also works)")
    reason = TextAreaField("Reason (e.g. late positive marker, supplier notice)", filters=[one_line_break],
                           validators=[reason_length()])
    password = PasswordField("Your password (electronic signature)")


class EndRecallForm(FlaskForm):
    reason = TextAreaField("Why the recall is ended (found invalid)", filters=[one_line_break],
                           validators=[reason_length("reason for ending the recall")])
    password = PasswordField("Your password (electronic signature)")


class CompleteRecallForm(FlaskForm):
    note = TextAreaField("Closing note (at least 20 characters): how the recall's effectiveness was checked, and the "
                         "reconciliation of the bags delivered, recovered and destroyed")
    # its own id: the end form on the same page has a password field too
    password = PasswordField("Your password (electronic signature)", id="complete-password")


class DiscardHeldBagForm(FlaskForm):
    """One per held bag in stock on the recall's page (the template gives each reason field its own id)."""

    reason = StringField("Reason for discarding")


class CloseLookbackForm(FlaskForm):
    """One per open lookback whose donor a recall in force covers (recall/_lookbacks.html gives each note its id)."""

    note = TextAreaField("Why the recall in force covers this lookback")


class RecallNoticeForm(FlaskForm):
    """QA records that a patient's clinician was told (one per patient not yet notified on the recall's page, each
    field's id suffixed with the patient's id by the template)."""

    clinician = StringField("Clinician told (name)")
    how = SelectField("How", choices=choices([("", "choose")] + [(how, NOTICE_HOW[how]) for how in QA_NOTICE_HOW]),
                      validate_choice=False)
    told_at = DateTimeSiteField("When (site time)", format=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"])
    note = StringField("Note (optional)")
