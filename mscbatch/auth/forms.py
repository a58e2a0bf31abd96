"""Forms for sign-in, accounts and tokens (Flask-WTF: every form carries a CSRF token)."""
from __future__ import annotations

from wtforms import (
    HiddenField,
    Label,
    PasswordField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from mscbatch.auth.models import ROLE_LABELS, ROLES
from mscbatch.web.forms import FlaskForm


class MultiCheckboxField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def role_field(label: str = "Roles") -> MultiCheckboxField:
    return MultiCheckboxField(label, choices=[SelectChoice(r, ROLE_LABELS[r]) for r in ROLES],
                              validators=[DataRequired("Choose at least one role.")])


class LoginForm(FlaskForm):
    username = StringField("User name", validators=[DataRequired("Enter your user name.")],
                           render_kw={"autocomplete": "username", "autocapitalize": "none"})
    password = PasswordField("Password", validators=[DataRequired("Enter your password.")],
                             render_kw={"autocomplete": "current-password"})


class PasswordChangeForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired("Enter your current password.")])
    new_password = PasswordField("New password", validators=[DataRequired("Enter a new password.")])


class ApiTokenForm(FlaskForm):
    name = StringField("What is the token for?", validators=[DataRequired("Give the token a name."),
                                                             Length(max=80)])
    # a token outlives the session: the open screen alone must not be enough to make one. Labelled as the refusal
    # names it ("Password: wrong password..."), so the page's summary says the field once
    password = PasswordField("Password", validators=[DataRequired("Enter your password to create a token.")],
                             render_kw={"autocomplete": "current-password"})
    # the id of the owner's newest token when the page was shown: the same form sent again (a reload of the answer)
    # finds a newer one and makes no second token (services.create_api_token_confirmed)
    newest_token = HiddenField()


class EmptyForm(FlaskForm):
    """A form with only the CSRF token, for one-button actions."""


class UserCreateForm(FlaskForm):
    username = StringField("User name", validators=[DataRequired("Enter a user name."), Length(max=60)])
    # labelled as the service's refusals name them ("Full name: ...", "Password: ..."): the page's summary of
    # refusals then says each field once; the hints say that the name is printed and the password a first one
    full_name = StringField("Full name", validators=[DataRequired("Enter the full name."), Length(max=120)])
    password = PasswordField("Password", validators=[DataRequired("Enter an initial password.")])
    roles = role_field()
    # the roles granted here are grants like any other (set_roles asks why): the audit trail keeps the why
    reason = TextAreaField("Reason", validators=[DataRequired("Give a reason: it goes into the audit trail."),
                                                 Length(max=500)])


class ReasonForm(FlaskForm):
    reason = TextAreaField("Reason", validators=[DataRequired("Give a reason: it goes into the audit trail."),
                                                 Length(max=500)])


class RolesForm(ReasonForm):
    roles = role_field()
    reason = TextAreaField("Reason for changing the roles",
                           validators=[DataRequired("Give a reason: it goes into the audit trail."), Length(max=500)])


class PasswordResetForm(ReasonForm):
    # the administrator types it and tells it to the owner, who must choose their own at the next sign-in
    password = PasswordField("Temporary password", validators=[DataRequired("Enter a temporary password.")],
                             render_kw={"autocomplete": "new-password"})


RESET_PASSWORD = "reset-password"
#: the account actions of a user's page, each a form of its own with a reason, and the label of that reason: a
#: locked account's page shows the Unlock, the Disable and the Reset password form side by side, and a screen
#: reader's list of fields (or a person scanning the page) must tell which reason is which
ACCOUNT_ACTION_REASONS = {
    "unlock": "Reason for unlocking this account",
    "disable": "Reason for disabling this account",
    "enable": "Reason for enabling this account",
    RESET_PASSWORD: "Reason for resetting the password",
}
ACCOUNT_ACTIONS = tuple(ACCOUNT_ACTION_REASONS)


def action_form(action: str, **kwargs: object) -> ReasonForm:
    """The form of one account action, with its own field ids and its own reason label: a reason, and for the
    password reset the temporary password too. `kwargs` as for a form (formdata=None: an empty one)."""
    form_class = PasswordResetForm if action == RESET_PASSWORD else ReasonForm
    form = own_ids(form_class(**kwargs), action)
    form.reason.label = Label(form.reason.id, ACCOUNT_ACTION_REASONS[action])
    return form


def own_ids(form: ReasonForm, action: str) -> ReasonForm:
    """The form of one account action, given field ids of its own, so that each form's label names the field of
    its own form (the Roles form has a reason too, id "reason"). The posted names stay "reason", "password" and
    "csrf_token"."""
    for field in form:
        if field.name == "csrf_token":
            field.id = f"{action}-csrf_token"
        else:
            field.id = f"{action}-{field.name}"
            field.label = Label(field.id, field.label.text)
    return form
