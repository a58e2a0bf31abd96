"""CSRF on every form, security headers on every response, the access check and the input guard before every
view."""
from __future__ import annotations

from flask import Flask, Response, request
from flask_login import current_user

from mscbatch.auth.access import enforce_access
from mscbatch.extensions import csrf
from mscbatch.web.input_guard import init_input_guard

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
       "form-action 'self'; frame-ancestors 'none'")


def init_security(app: Flask) -> None:
    csrf.init_app(app)

    app.before_request(_no_favicon)  # before the access check: a browser asks for it on every page, signed in or not
    app.before_request(enforce_access)  # after the request id (mscbatch.web.logs), before every view
    init_input_guard(app)  # after the access check: who may not call a view is not told about its input

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Permissions-Policy"] = "camera=(self), microphone=(), geolocation=()"
        if request.is_secure or app.config.get("HTTPS"):
            response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        if not _cacheable(request.path):
            # every page and download (dose sheets, certificates, exports, evidence bundles) holds patient or GMP
            # data: a shared ward tablet's browser must not keep a copy on disk after sign-out
            response.headers["Cache-Control"] = "no-store"
        if response.status_code == 401 and request.path.startswith("/api/"):
            _bearer_challenge(response)
        return response


def _cacheable(path: str) -> bool:
    """The application's own static files and the favicon hold no record: the only responses a browser may keep."""
    return path.startswith("/static/") or path == "/favicon.ico"


def _no_favicon() -> Response | None:
    """Browsers ask for /favicon.ico on every page: "no icon" (204, cached a day) instead of a 404 in the logs on
    each. Answered here rather than by a route, so the URL map (and its access matrix) holds pages only."""
    if request.path != "/favicon.ico" or request.method not in ("GET", "HEAD"):
        return None
    response = Response(status=204)
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


def _bearer_challenge(response: Response) -> None:
    """RFC 6750 section 3: a 401 for want of a valid token says how to authenticate; with error="invalid_token"
    when a bearer token was sent and authenticates nobody. A 401 to a request whose token is valid is a refused
    e-signature (a wrong password typed to sign): no challenge, since a new token would not help."""
    if current_user.is_authenticated:
        return
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    challenge = 'Bearer realm="mscbatch"'
    if scheme.lower() == "bearer" and secret.strip():
        challenge += ', error="invalid_token", error_description="unknown, revoked or expired token"'
    response.headers["WWW-Authenticate"] = challenge
