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
        return None
    if not current_user.is_authenticated:
        if request.path.startswith("/api/"):
            raise AuthenticationFailed("Send a valid API token: 'Authorization: Bearer <token>'.")
        return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))
    if rule.roles is not None and not current_user.has_role(*rule.roles):
        raise PermissionDenied("Your role does not allow this. It needs: " + ", ".join(sorted(rule.roles)) + ".")
    return None
