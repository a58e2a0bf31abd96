"""Sign-in, sign-out, the user's own account (password, API tokens) and user administration."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from mscbatch.auth import services
from mscbatch.auth.access import authenticated, public, roles_required
from mscbatch.auth.forms import (
    ACCOUNT_ACTIONS,
    RESET_PASSWORD,
    ApiTokenForm,
    EmptyForm,
    LoginForm,
    PasswordChangeForm,
    ReasonForm,
    RolesForm,
    UserCreateForm,
    action_form,
)
from mscbatch.auth.loading import client_address, policy
from mscbatch.auth.models import API_TOKEN_LAST_USED, ROLES, ApiToken, User
from mscbatch.database import utcnow
from mscbatch.errors import AuthenticationFailed, DomainError
from mscbatch.extensions import db
from mscbatch.web.forms import posted_id, show_error

bp = Blueprint("auth", __name__)


@bp.app_context_processor
def _password_age() -> dict[str, Any]:
    """For the account pages: whether an account's password is past the maximum age, and that age."""
    return {"password_too_old": services.password_too_old, "password_max_age_days": services.password_max_age_days}


def _safe_next(target: str | None) -> str:
    """A path of this site to go back to after signing in, else the home page. A control character is refused, not
    cleaned: "/<tab>/evil.example" left the redirect's Location as "//evil.example" (the tab dropped), which takes
    the browser to another site (an open redirect from a link to the sign-in page)."""
    if (target and target.startswith("/") and not target.startswith("//")
            and "\\" not in target  # browsers read "/\evil.example" as "//evil.example"
            and not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in target)):
        return target
    return url_for("web.home")


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> Any:
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user, token = services.authenticate(db.session, form.username.data, form.password.data, policy(),
                                                client_address())
        except services.SigninThrottled as error:  # refused unchecked: nothing counted, nothing audited
            # above the form, not under the password: it is not the password that is refused (re-walk, session 38)
            form.form_errors.append(error.message)
            response = current_app.make_response((render_template("auth/login.html", form=form), 429))
            response.headers["Retry-After"] = str(error.minutes * 60)
            return response
        except AuthenticationFailed as error:
            form.password.errors.append(error.message)
            return render_template("auth/login.html", form=form), 401
        # a browser already signed in (a ward tablet passed to the next nurse): its session ends here, signed out in
        # the trail, not left open on the server with no record of when it ended
        services.end_session(db.session, session.get("sid"))
        session.clear()
        session["sid"] = token
        login_user(user)
        flash(f"Signed in as {user.full_name}.", "success")
        return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form), 400 if form.errors else 200


def _left_running() -> list[Any]:
    """The infusions the nurse or clinician signing out started and that still run (custody.ward_list): none for
    the other roles, who start none. A read that fails says none: signing out is never refused for it."""
    if not (current_user.is_authenticated and current_user.has_role("nurse", "clinician")):
        return []
    # imported here: auth does not depend on custody at import
    from mscbatch.custody.ward_list import running_started_by

    try:
        return running_started_by(db.session, current_user.id)
    except SQLAlchemyError:
        db.session.rollback()
        current_app.logger.exception("sign-out: the running infusions could not be read; signed out without them")
        return []


@bp.route("/logout", methods=["POST"])
@public
def logout() -> Any:
    # an infusion the nurse started still runs: said once, before the session ends, with its page one tap away (a
    # shift left with an infusion nobody knew was theirs). "Sign out anyway" posts again with confirmed=1: never a
    # trap. Nothing running: one click, as before.
    if request.form.get("confirmed") != "1":
        running = _left_running()
        if running:
            return render_template("auth/sign_out_running.html", running=running)
    services.end_session(db.session, session.get("sid"))
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


def _account_page(password_form: PasswordChangeForm | None = None, token_form: ApiTokenForm | None = None,
                  new_token: str | None = None) -> str:
    # each token with its last use (unmapped bookkeeping, see ApiToken), for the owner to revoke stale ones
    tokens = db.session.execute(select(ApiToken, API_TOKEN_LAST_USED).where(ApiToken.user_id == current_user.id)
                                .order_by(ApiToken.created_at.desc())).all()
    token_form = token_form or ApiTokenForm()
    # the form's key: the newest token as this page shows it (a form sent again finds a newer one)
    token_form.newest_token.data = str(max((token.id for token, _used in tokens), default=0))
    return render_template("auth/account.html", password_form=password_form or PasswordChangeForm(),
                           own_password_too_old=services.password_too_old(current_user),
                           token_form=token_form, revoke_form=EmptyForm(), tokens=tokens,
                           new_token=new_token, now=utcnow(),
                           token_lifetime_days=services.API_TOKEN_LIFETIME.days)


def _signed_out_by_lockout(error: DomainError) -> Any:
    """The wrong password just locked the account (its sessions are ended): sign this screen out too."""
    logout_user()
    session.clear()
    flash(error.message, "error")
    return redirect(url_for("auth.login"))


@bp.route("/account", methods=["GET"])
@authenticated
def account() -> Any:
    return _account_page()


@bp.route("/account/password", methods=["POST"])
@authenticated
def change_password() -> Any:
    form = PasswordChangeForm()
    if form.validate_on_submit():
        try:
            services.change_password(db.session, current_user, form.current_password.data, form.new_password.data,
                                     current_app.config["PASSWORD_HASH_PROFILE"])
        except DomainError as error:
            if isinstance(error, services.WrongPassword) and error.locked:
                return _signed_out_by_lockout(error)
            show_error(form, error)
        else:
            logout_user()
            session.clear()
            flash("Password changed. Every session was ended and every API token revoked: sign in again with the "
                  "new password.", "success")
            return redirect(url_for("auth.login"))
    return _account_page(password_form=form), 422


@bp.route("/account/tokens", methods=["POST"])
@authenticated
def create_token() -> Any:
    form = ApiTokenForm()
    new_token = None
    status = 422
    if form.validate_on_submit():
        try:
            _token, new_token = services.create_api_token_confirmed(
                db.session, current_user, form.name.data, form.password.data,
                # absent (a client other than the page): no form to send twice
                posted_id(form.newest_token.data) if form.newest_token.data else None)
            status = 201
        except services.FormAlreadyUsed as error:  # a reload of the answer: the page again, by GET, no secret
            flash(error.message, "warning")
            return redirect(url_for("auth.account"), 303)
        except DomainError as error:
            if isinstance(error, services.WrongPassword) and error.locked:
                return _signed_out_by_lockout(error)
            show_error(form, error)
    # made: an empty form (its name left in the box invited a second token of that name)
    return _account_page(token_form=ApiTokenForm(formdata=None) if new_token else form, new_token=new_token), status


@bp.route("/account/tokens/<int:token_id>/revoke", methods=["POST"])
@authenticated
def revoke_token(token_id: int) -> Any:
    if EmptyForm().validate_on_submit():
        token = services.revoke_api_token(db.session, current_user, token_id)
        flash(f"Token '{token.name}' ({token.prefix}…) revoked: scanners using it are refused from now on.",
              "success")
    return redirect(url_for("auth.account"))


# ---- administration -------------------------------------------------------------------------------------

@bp.route("/admin/users", methods=["GET", "POST"])
@roles_required("admin")
def users() -> Any:
    form = UserCreateForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = services.create_user(db.session, current_user, username=form.username.data,
                                        full_name=form.full_name.data, password=form.password.data,
                                        roles=form.roles.data, reason=form.reason.data,
                                        hash_profile=current_app.config["PASSWORD_HASH_PROFILE"])
        except DomainError as error:
            show_error(form, error)
            status = 422
        else:
            flash(f"User {user.username} created.", "success")
            return redirect(url_for("auth.user_detail", user_id=user.id))
    elif form.errors:
        status = 422
        if "csrf_token" not in form.errors:  # a field left empty: the rules of the others are said with it
            _add_problems(form, services.new_user_problems(
                db.session, username=form.username.data or "", full_name=form.full_name.data or "",
                password=form.password.data or "", roles=form.roles.data or []))
    all_users = db.session.scalars(select(User).order_by(User.username)).all()
    return render_template("auth/users.html", form=form, users=all_users), status


def _add_problems(form: Any, problems: dict[str, list[str]]) -> None:
    """The service's refusals of the fields the form itself let through (one answer names every field)."""
    for name, messages in problems.items():
        field = getattr(form, name)
        if not field.errors:
            field.errors = list(messages)


def _user_page(user: User, roles_form: RolesForm | None = None, refused: ReasonForm | None = None,
               refused_action: str = "", status: int = 200) -> Any:
    """A user's page: the Roles form and one reason form per account action, each with its own field ids; a refused
    form is shown again, with its errors, in its own place only."""
    forms = {action: action_form(action, formdata=None) for action in ACCOUNT_ACTIONS}
    if refused is not None:
        forms[refused_action] = refused
    return render_template("auth/user_detail.html", user=user,
                           roles_form=roles_form or RolesForm(formdata=None, roles=sorted(user.role_names)),
                           reason_forms=forms), status


@bp.route("/admin/users/<int:user_id>", methods=["GET"])
@roles_required("admin")
def user_detail(user_id: int) -> Any:
    return _user_page(services.get_user(db.session, user_id))


@bp.route("/admin/users/<int:user_id>/<action>", methods=["POST"])
@roles_required("admin")
def user_action(user_id: int, action: str) -> Any:
    user = services.get_user(db.session, user_id)
    if action != "roles" and action not in ACCOUNT_ACTIONS:
        return render_template("errors/error.html", status=404, title="Not found",
                               detail=f"Unknown action '{action}'."), 404
    form = RolesForm() if action == "roles" else action_form(action)
    status = 422  # a form refused; a refusal by the rules keeps its own status (409 for a state, 403 for a right)
    was_locked, was_enabled, roles_before = user.locked_out_at is not None, user.is_enabled, user.role_names
    if form.validate_on_submit():
        try:
            if action == "roles":
                services.set_roles(db.session, current_user, user_id, form.roles.data, form.reason.data)
            elif action in ("enable", "disable"):
                services.set_enabled(db.session, current_user, user_id, action == "enable", form.reason.data)
            elif action == RESET_PASSWORD:
                services.reset_password(db.session, current_user, user_id, form.password.data, form.reason.data,
                                        current_app.config["PASSWORD_HASH_PROFILE"])
            else:
                services.unlock(db.session, current_user, user_id, form.reason.data)
        except DomainError as error:
            show_error(form, error)
            status = error.status
        else:
            if action == RESET_PASSWORD:
                flash(_reset_done(user.username, was_locked), "success")
            else:
                flash(*_action_done(user, action, was_enabled, roles_before))
            return redirect(url_for("auth.user_detail", user_id=user_id))
    elif action == RESET_PASSWORD and "csrf_token" not in form.errors:  # a field left empty: say the other's rule
        _add_problems(form, services.password_reset_problems(user.username, form.password.data or "",
                                                             form.reason.data or ""))
    if isinstance(form, RolesForm):
        return _user_page(user, roles_form=form, status=status)
    return _user_page(user, refused=form, refused_action=action, status=status)


def _action_done(user: User, action: str, was_enabled: bool, roles_before: frozenset[str]) -> tuple[str, str]:
    """What the action changed, in words, and the flash's kind: 'info' when nothing changed (a second click)."""
    name = user.username
    if action == "roles":
        held = services.role_list([r for r in ROLES if r in user.role_names])
        if user.role_names == roles_before:
            return f"{name}'s roles were already: {held}. Nothing changed.", "info"
        return f"{name}'s roles are now: {held}.", "success"
    if action in ("enable", "disable"):
        if was_enabled == (action == "enable"):
            return f"{name} was already {action}d: nothing changed.", "info"
        if action == "enable":
            return f"{name} is enabled: they can sign in again.", "success"
        return (f"{name} is disabled: they cannot sign in. Their open sessions were ended and their API tokens "
                "revoked.", "success")
    return f"{name} is unlocked: they can sign in again.", "success"


def _reset_done(username: str, was_locked: bool) -> str:
    return (f"{username}: password reset{', account unlocked' if was_locked else ''}. Tell them the temporary "
            "password in person: at their next sign-in they must choose their own before anything else. Their open "
            "sessions were ended and their API tokens revoked.")
