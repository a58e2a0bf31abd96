"""Domain errors and how they reach a person: one place that turns them into HTTP answers.

Services raise DomainError subclasses with a plain message (and the field it concerns, when there is one).
Views catch them to re-show a form with the message next to the field; anything not caught becomes an HTML
error page, or an RFC 9457 problem document under /api/. A user never sees a stack trace.
"""
from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class DomainError(Exception):
    """A refusal with a message meant for the user. `field` names the form field when there is one."""

    status = 400
    title = "Request refused"

    def __init__(self, message: str, *, field: str | None = None, errors: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.errors = errors or ({field: [message]} if field else {})


class ValidationFailed(DomainError):
    status = 422
    title = "Invalid input"


class NotFound(DomainError):
    status = 404
    title = "Not found"


class PermissionDenied(DomainError):
    status = 403
    title = "Not allowed"


class Conflict(DomainError):
    """The record's state does not allow this now (state machine, concurrent change, duplicate)."""

    status = 409
    title = "Conflict"


class RecordLocked(Conflict):
    title = "Record locked"


class AuthenticationFailed(DomainError):
    status = 401
    title = "Authentication failed"


def wants_problem_json() -> bool:
    return request.path.startswith("/api/")


def problem_response(status: int, title: str, detail: str, **extra: Any) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail,
            "instance": request.path, **extra}
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def _error_page(status: int, title: str, detail: str) -> tuple[str, int]:
    return render_template("errors/error.html", status=status, title=title, detail=detail), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain_error(error: DomainError) -> Any:
        if wants_problem_json():
            extra = {"errors": error.errors} if error.errors else {}
            return problem_response(error.status, error.title, error.message, **extra)
        return _error_page(error.status, error.title, error.message)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Any:
        status = error.code or 500
        detail = error.description or error.name
        data = getattr(error, "data", None) or {}
        if wants_problem_json():
            extra: dict[str, Any] = {}
            messages = data.get("messages") or data.get("errors")
            if messages:  # webargs / marshmallow validation: {location: {field: [msg]}}
                extra["errors"] = messages
                detail = "The request body or parameters are invalid; see errors."
            response = problem_response(status, error.name, detail, **extra)
            for key, value in (data.get("headers") or {}).items():
                response.headers[key] = value
            return response
        return _error_page(status, error.name, detail)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Any:
        incident = uuid.uuid4().hex[:12]
        log.exception("unhandled error, incident %s", incident)
        detail = f"Something went wrong on the server. Nothing was saved. Incident reference: {incident}."
        if wants_problem_json():
            return problem_response(500, "Internal Server Error", detail)
        return _error_page(500, "Internal error", detail)
