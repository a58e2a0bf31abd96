"""Recall forms: start (origin, reason, signature), end (reason, signature), complete (closing note, signature),
discard a held bag (reason) and close a lookback under the donor's recall in force (note)."""
from __future__ import annotations

from wtforms import PasswordField, SelectField, StringField, TextAreaField

from mscbatch.donors.forms import choices
from mscbatch.recall.models import RECALL_SCOPES
from mscbatch.web.forms import FlaskForm


class StartRecallForm(FlaskForm):
    scope = SelectField("Recall from", choices=choices(list(RECALL_SCOPES.items())), default="donor")
    target = StringField("Donor code, lot number or reagent lot number ('#id' also works)")
    reason = TextAreaField("Reason (e.g. late positive marker, supplier notice)")
    password = PasswordField("Your password (electronic signature)")


class EndRecallForm(FlaskForm):
    reason = TextAreaField("Why the recall is ended (found invalid)")
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
