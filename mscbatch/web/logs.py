"""Logs: one handler on stderr (text or JSON lines), a request id per request, one access line per request.

Every record that goes through the handler carries the request id and the signed-in user's name (null outside
a request or before anyone signed in), so a warning logged deep in a service can be tied to its request.
What is logged is chosen here, never dumped: the path without its query string, the endpoint, the status and
the duration; never a form body, a password, a token or a CSRF token.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback
import uuid
from datetime import UTC, datetime
from typing import Any, TextIO

from flask import Flask, Response, g, has_request_context, request
from sqlalchemy import inspect

REQUEST_ID_HEADER = "X-Request-ID"
# A proxy's id is kept only when it is plainly an id: it is echoed in a header and written in every log line.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s %(user)s] %(name)s: %(message)s"
ACCESS = logging.getLogger("mscbatch.access")
# The attributes every LogRecord has; anything else on a record was passed as `extra=` by our code.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id", "user"}


def request_id_from(header: str | None) -> str:
    return header if header and SANE_REQUEST_ID.fullmatch(header) else uuid.uuid4().hex


def current_username() -> str | None:
    """The user Flask-Login already loaded for this request; never loads one (no query per log line). Nor does it
    reload the name: after a rolled-back use case the user's attributes are expired, and reading them would query a
    database that may be what just failed (the error handler's own log line would then fail too)."""
    if not has_request_context():
        return None
    user = g.get("_login_user")
    if not getattr(user, "is_authenticated", False):
        return None
    state = inspect(user, raiseerr=False)
    if state is None:
        return getattr(user, "username", None)
    return state.dict.get("username") or g.get(LOADED_USERNAME)


#: the signed-in user's name as the loaders read it (mscbatch.auth.loading), for the log lines after a rollback
LOADED_USERNAME = "mscbatch_username"


class RequestContextFilter(logging.Filter):
    """Adds request_id and user to every record the handler writes (a handler filter: it sees records of
    every logger, propagated ones included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id") if has_request_context() else None
        if not hasattr(record, "user"):
            record.user = current_username()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC ISO 8601), level, logger, message, request_id, user, the
    record's `extra` fields, and the traceback as one string field when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "user": getattr(record, "user", None),
        }
        line.update({key: value for key, value in vars(record).items() if key not in _STANDARD})
        if record.exc_info:
            line["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(line, default=str)


class UtcTextFormatter(logging.Formatter):
    """One line for a person: UTC time, level, [request id, user] ('-' when none), logger, message."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (stdlib)
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        context = {"request_id": getattr(record, "request_id", None), "user": getattr(record, "user", None)}
        record.__dict__.update({key: value or "-" for key, value in context.items()})
        try:
            return super().format(record)
        finally:  # other handlers (the JSON one, a test's) see the record as it was
            record.__dict__.update(context)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time of the write (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        """StreamHandler sets its stream at construction: ignored, the getter always answers sys.stderr."""


def make_handler(log_format: str, stream: TextIO | None = None) -> logging.Handler:
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else UtcTextFormatter(TEXT_FORMAT))
    handler.addFilter(RequestContextFilter())
    return handler


class WerkzeugRequestLines(logging.Filter):
    """The development server's own request line carries the query string: ours replaces it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "werkzeug" and str(record.msg).endswith('"%s" %s %s'))


def configure_logging(app: Flask) -> None:
    """One mscbatch handler on the root logger (replacing the one an earlier create_app installed)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "mscbatch", False)]:
        root.removeHandler(old)
    handler = make_handler(app.config["LOG_FORMAT"])
    handler.mscbatch = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(app.config["LOG_LEVEL"])
    logging.getLogger("alembic").setLevel(logging.WARNING)
    werkzeug = logging.getLogger("werkzeug")
    if not any(isinstance(f, WerkzeugRequestLines) for f in werkzeug.filters):
        werkzeug.addFilter(WerkzeugRequestLines())


def init_request_logging(app: Flask) -> None:
    """Registered before the access check, so that even a refused request has its id and access line."""

    @app.before_request
    def _start() -> None:
        g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        g.request_started = time.perf_counter()

    @app.after_request
    def _access(response: Response) -> Response:
        request_id = g.get("request_id") or request_id_from(None)
        response.headers[REQUEST_ID_HEADER] = request_id
        started = g.get("request_started")
        duration_ms = round((time.perf_counter() - started) * 1000, 1) if started is not None else None
        endpoint = request.endpoint
        ACCESS.info("%s %s %s %sms action=%s", request.method, request.path, response.status_code, duration_ms,
                    endpoint, extra={"method": request.method, "path": request.path, "endpoint": endpoint,
                                     "action": endpoint, "status": response.status_code,
                                     "duration_ms": duration_ms})
        return response
