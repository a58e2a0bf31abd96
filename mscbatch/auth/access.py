"""Who may reach which route: a rule on every view, enforced in one place, deny by default.

Views are marked with @public, @authenticated or @roles_required(...). A before_request hook reads the mark;
a route with no mark is refused (and the role-matrix test fails), so a new route can't be left open by
forgetting a decorator.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, current_app, flash, g, redirect, request, url_for
from flask_login import current_user
from werkzeug.exceptions import HTTPException

from mscbatch.errors import AuthenticationFailed, PermissionDenied

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Access:
    public: bool = False
    roles: frozenset[str] | None = None  # None with public=False: any signed-in user

    def describe(self) -> str:
        if self.public:
            return "public"
        return "signed-in" if self.roles is None else "roles: " + ", ".join(sorted(self.roles))


def _mark(view: Any, access: Access) -> Any:
    view.access = access
    return view


def public(view: F) -> F:
    return _mark(view, Access(public=True))


def authenticated(view: F) -> F:
    return _mark(view, Access())


def roles_required(*roles: str) -> Callable[[F], F]:
    return lambda view: _mark(view, Access(roles=frozenset(roles)))


# Endpoints registered by libraries, not by us.
LIBRARY_PUBLIC_ENDPOINTS = {"static", "api-docs.openapi_json"}
# What a signed-in user whose password an administrator chose may reach: the page where they change it, signing in
# and out, and what is no page (static files, the health check).
PASSWORD_CHANGE_ENDPOINTS = frozenset({"auth.account", "auth.change_password", "auth.login", "auth.logout",
                                       "web.healthz", *LIBRARY_PUBLIC_ENDPOINTS})


def access_rule(app: Flask, endpoint: str, method: str = "GET") -> Access | None:
    if endpoint in LIBRARY_PUBLIC_ENDPOINTS:
        return Access(public=True)
    view = app.view_functions.get(endpoint)
    rule = getattr(view, "access", None)
    view_class = getattr(view, "view_class", None)
    if rule is None and view_class is not None:
        handler = getattr(view_class, method.lower(), None)
        rule = getattr(handler, "access", None) or getattr(view_class, "access", None)
    return rule


def enforce_access() -> Any:
    if request.endpoint is None:
        return None  # 404 / 405: the error handlers answer
    rule = access_rule(current_app, request.endpoint, request.method)
    if rule is None:
        current_app.logger.error("route %s has no access rule: refused", request.endpoint)
        raise PermissionDenied("This page has no access rule and is refused by default.")
    if rule.public:
        return _to_password_change() if _password_must_change() else None
    if not current_user.is_authenticated:
        if request.path.startswith("/api/"):
            scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() == "bearer" and secret.strip():
                if g.get("api_token_refusal") == "locked":  # a genuine token: its holder is told why
                    raise AuthenticationFailed("This API token's account is locked after too many wrong passwords: "
                                               "ask an administrator to unlock it. The token works again once it is "
                                               "unlocked.")
                raise AuthenticationFailed("This API token is not valid: unknown, revoked or expired, or its account "
                                           "is disabled. Create a new one on My account.")
            raise AuthenticationFailed("Send a valid API token: 'Authorization: Bearer <token>'.")
        return signed_out_redirect()
    if _password_must_change():
        return _to_password_change()
    if rule.roles is not None and not current_user.has_role(*rule.roles):
        raise PermissionDenied(f"Your role does not allow this. {_roles_needed(rule.roles)}")
    return None


def _roles_needed(roles: Any) -> str:
    """The roles a page needs, in the words the users page and the header use (never the codes)."""
    from mscbatch.auth.models import ROLE_LABELS, ROLES

    labels = [ROLE_LABELS.get(role, role) for role in sorted(roles, key=lambda r: (ROLES.index(r) if r in ROLES
                                                                                   else len(ROLES), r))]
    if len(labels) == 1:
        return f"It needs the role {labels[0]}."
    return "It needs one of these roles: " + ", ".join(labels) + "."


def _ended_words(reason: str) -> str:
    from mscbatch.auth.services import RESET_SESSION_END  # here, as _roles_needed imports: access stays light

    config = current_app.config
    if reason == "idle timeout":
        return f"Your session ended after {config['IDLE_TIMEOUT_MINUTES']} minutes without activity."
    if reason == "absolute timeout":
        hours = config["ABSOLUTE_TIMEOUT_MINUTES"] / 60
        return f"Your session ended: a session lasts at most {hours:g} hours."
    if reason == "logout":
        return "You were signed out (in another window or tab)."
    if reason == RESET_SESSION_END:
        return ("Your session was ended: an administrator reset this account's password. Use the temporary password "
                "they gave you.")
    return f"Your session was ended ({reason})."


def same_site_page(url: str | None) -> str | None:
    """The path of a page of this site a browser can open again (the Referer of a form sent: not a result shown
    by a POST, such as a bedside check's, nor the sign-in page), or None."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.netloc != request.host or not parts.path.startswith("/") or parts.path.startswith("//"):
        return None
    try:
        endpoint, _args = current_app.url_map.bind(request.host).match(parts.path, method="GET")
    except HTTPException:
        return None
    if endpoint in ("auth.login", "auth.logout"):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def signed_out_redirect() -> Any:
    """To the sign-in page, back to this page after it. A browser whose session just ended is told why; when it was
    sending a form, that the form was NOT saved (no use case ran), so that a nurse who typed two passwords and
    tapped Sign knows to do it again, from the page the form was on."""
    ended = g.get("session_ended")
    if request.method == "GET":
        if ended:
            flash(f"{_ended_words(ended)} Sign in again to go on.", "error")
        return redirect(url_for("auth.login", next=request.full_path))
    # "unsaved": shown as an error, and marked for js/form-draft.js, which puts the words typed back into the form
    if ended:
        flash(f"{_ended_words(ended)} What you were doing was NOT saved: sign in again, then do it again.", "unsaved")
    else:
        flash("You are not signed in: what you sent was NOT saved. Sign in, then do it again.", "unsaved")
    return redirect(url_for("auth.login", next=same_site_page(request.referrer)))


def _password_must_change() -> bool:
    """A signed-in user whose password an administrator chose (who could act as them), or whose password grew older
    than PASSWORD_MAX_AGE_DAYS since the sign-in (an API token is used without one: ageing is judged here too), away
    from the password page."""
    if request.endpoint in PASSWORD_CHANGE_ENDPOINTS or not current_user.is_authenticated:
        return False
    from mscbatch.auth.services import password_too_old  # as _ended_words imports: access stays light

    return bool(getattr(current_user, "must_change_password", False)) or password_too_old(current_user)


def _to_password_change() -> Any:
    if request.path.startswith("/api/"):
        from mscbatch.auth.services import password_too_old  # as _ended_words imports: access stays light

        if password_too_old(current_user):
            raise PermissionDenied("This account's password is too old: its owner must change it on My account (in "
                                   "the browser) before the API accepts the account's tokens.")
        raise PermissionDenied("An administrator chose this account's password: its owner must change it on My "
                               "account (in the browser) before the API accepts the account's tokens.")
    return redirect(url_for("auth.account"))
