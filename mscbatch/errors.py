"""Domain errors and how they reach a person: one place that turns them into HTTP answers.

Services raise DomainError subclasses with a plain message (and the field it concerns, when there is one).
Views catch them to re-show a form with the message next to the field; anything not caught becomes an HTML
error page, or an RFC 9457 problem document under /api/. A user never sees a stack trace.
"""
from __future__ import annotations

import logging
import sqlite3
import uuid
from typing import Any

from flask import Flask, Response, current_app, flash, g, jsonify, redirect, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError
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


def by_field(messages: Any) -> tuple[dict[str, list[str]], list[str]]:
    """webargs' refusals ({"json": {"bag_id": ["Not a valid integer."]}, "query": {...}}) in the shape of every
    other refusal of the API, {"bag_id": [...]}, and in words naming each field ("bag_id: Not a valid integer.");
    a refusal of a whole location (an undecodable body) is kept under that location's name."""
    fields: dict[str, list[str]] = {}
    for location, found in (messages.items() if isinstance(messages, dict) else [("body", messages)]):
        items = found.items() if isinstance(found, dict) else [(location, found)]
        for name, said in items:
            fields.setdefault(str(name), []).extend(_flat(said))
    return fields, [f"{name}: {message}" for name, said in fields.items() for message in said]


def _flat(said: Any) -> list[str]:
    """A field's messages as a list of words (a nested schema's are {sub-field: [...]}: "sub-field: ...")."""
    if isinstance(said, dict):
        return [f"{key}: {message}" for key, inner in said.items() for message in _flat(inner)]
    if isinstance(said, (list, tuple)):
        return [message for item in said for message in _flat(item)]
    return [str(said)]


def _error_page(status: int, title: str, detail: str) -> tuple[str, int]:
    return render_template("errors/error.html", status=status, title=title, detail=detail), status


#: PostgreSQL's SQLSTATEs for a transaction it ended because another one held what it needed at that moment:
#: deadlock_detected (two use cases locking the same rows in opposite orders), serialization_failure,
#: lock_not_available. Nothing of the ended transaction was kept, and the same request a moment later succeeds.
_BUSY_SQLSTATES = frozenset({"40P01", "40001", "55P03"})
_SQLITE_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})

BUSY_DETAIL = ("Someone else was changing the same records at that moment, so nothing was saved. "
               "Please try again.")


def database_busy(error: BaseException) -> bool:
    """True when the database refused a transaction for another one's locks (not for what it held): a 503 that
    says "try again", never a 500 that says something is broken."""
    # SQLite's refusal of BEGIN IMMEDIATE comes unwrapped: it is raised in the engine's begin event
    # (database.begin_immediate), where SQLAlchemy does not wrap driver errors
    cause = error.orig if isinstance(error, DBAPIError) else error
    if getattr(cause, "sqlstate", None) in _BUSY_SQLSTATES:
        return True
    return isinstance(cause, sqlite3.OperationalError) and \
        getattr(cause, "sqlite_errorcode", None) in _SQLITE_BUSY_CODES


def page_of_form(path: str) -> str | None:
    """The nearest address above `path` that a browser may open (GET): the page a POST-only address's form lives
    on (/ward/checks/3/confirm -> /ward/checks/3, /ward/check -> /ward). None when there is none."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    parts = path.rstrip("/").split("/")
    while len(parts) > 1:
        parts.pop()
        candidate = "/".join(parts) or "/"
        try:
            adapter.match(candidate, method="GET")
        except HTTPException:  # no such page, a page that takes no GET, or one spelled with a trailing slash
            continue
        return candidate
    return None


FORM_EXPIRED = ("This page was opened before you signed in again, or has been open too long. Nothing was saved. "
                "Go back, reload the page and type again.")
FORM_EXPIRED_BACK = ("Open the form again (sign in if you are asked to). What you typed is put back into it where "
                     "this browser kept it: check it, then send it again.")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain_error(error: DomainError) -> Any:
        if wants_problem_json():
            extra = {"errors": error.errors} if error.errors else {}
            return problem_response(error.status, error.title, error.message, **extra)
        return _error_page(error.status, error.title, error.message)

    @app.errorhandler(CSRFError)
    def _form_expired(error: CSRFError) -> Any:
        """A form sent from a page opened before the person signed in again (its CSRF token is of the old session),
        or with no token at all: a plain page, not Flask-WTF's bare "Bad Request". The API's answer is unchanged."""
        if wants_problem_json():
            return _http_error(error)
        from mscbatch.auth.access import same_site_page  # the auth package imports this module: imported here

        back = same_site_page(request.referrer)  # the page the form was on, where js/form-draft.js puts it back
        return render_template("errors/form_expired.html", status=400, title="Nothing was saved",
                               detail=FORM_EXPIRED, back=back, back_words=FORM_EXPIRED_BACK,
                               technical=error.description), 400

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Any:
        status = error.code or 500
        detail = error.description or error.name
        data = getattr(error, "data", None) or {}
        if wants_problem_json():
            extra: dict[str, Any] = {}
            title = error.name
            messages = data.get("messages") or data.get("errors")
            if messages:  # webargs / marshmallow validation: {location: {field: [msg]}}
                extra["errors"], said = by_field(messages)
                detail = " ".join(said) or "The request body or parameters are invalid."
                title = ValidationFailed.title if status == 422 else title
            response = problem_response(status, title, detail, **extra)
            for key, value in (data.get("headers") or {}).items():
                response.headers[key] = value
            return response
        if status == 405 and request.method == "GET":
            page = page_of_form(request.path)
            if page is not None:  # a refused form's address opened again (reload, restored tab): its page
                flash("That address only receives a form, so it cannot be opened: here is the page of that form.",
                      "info")
                return redirect(request.script_root + page, 303)
        return _error_page(status, error.name, detail)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Any:
        if "_login_user" not in g:  # the signed-in user was not loaded (the database failed first): the error
            # page's menu must not load it now, from the database that just failed
            g._login_user = current_app.login_manager.anonymous_user()  # type: ignore[attr-defined]
        if database_busy(error):
            log.warning("database busy, request refused: %s", error)
            response = problem_response(503, "Service Unavailable", BUSY_DETAIL) if wants_problem_json() \
                else app.make_response(_error_page(503, "Please try again", BUSY_DETAIL))
            response.headers["Retry-After"] = "1"
            return response
        incident = uuid.uuid4().hex[:12]
        log.exception("unhandled error, incident %s", incident)
        detail = f"Something went wrong on the server. Nothing was saved. Incident reference: {incident}."
        if wants_problem_json():
            return problem_response(500, "Internal Server Error", detail)
        return _error_page(500, "Internal error", detail)
