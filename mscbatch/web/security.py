"""CSRF on every form, security headers on every response, the access check and the input guard before every
view."""
from __future__ import annotations

from flask import Flask, Response, request

from mscbatch.auth.access import enforce_access
from mscbatch.extensions import csrf
from mscbatch.web.input_guard import init_input_guard

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
       "form-action 'self'; frame-ancestors 'none'")


def init_security(app: Flask) -> None:
    csrf.init_app(app)

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
        if request.path.startswith("/api/") or "text/html" in response.content_type:
            response.headers.setdefault("Cache-Control", "no-store")
        return response
