"""Who may reach which route: a rule on every view, enforced in one place, deny by default.

Views are marked with @public, @authenticated or @roles_required(...). A before_request hook reads the mark;
a route with no mark is refused (and the role-matrix test fails), so a new route can't be left open by
forgetting a decorator.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, current_app, redirect, request, url_for
from flask_login import current_user

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
            raise AuthenticationFailed("Send a valid API token: 'Authorization: Bearer <token>'.")
        return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))
    if _password_must_change():
        return _to_password_change()
    if rule.roles is not None and not current_user.has_role(*rule.roles):
        raise PermissionDenied("Your role does not allow this. It needs: " + ", ".join(sorted(rule.roles)) + ".")
    return None


def _password_must_change() -> bool:
    """A signed-in user whose password an administrator chose (who could act as them), away from the password page."""
    return (request.endpoint not in PASSWORD_CHANGE_ENDPOINTS and current_user.is_authenticated
            and bool(getattr(current_user, "must_change_password", False)))


def _to_password_change() -> Any:
    if request.path.startswith("/api/"):
        raise PermissionDenied("An administrator chose this account's password: its owner must change it on My "
                               "account (in the browser) before the API accepts the account's tokens.")
    return redirect(url_for("auth.account"))
