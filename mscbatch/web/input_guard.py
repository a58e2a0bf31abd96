"""Input no database can store is refused before any view reads it: one check for every form, query and JSON body.

PostgreSQL text cannot hold a NUL character, and no UTF-8 encoder takes a lone surrogate (JSON can spell one,
"\\ud800"); the driver raised on either, deep inside a use case, and the person got a 500 instead of being told
what was wrong (issue 9 review: a NUL in the bedside wristband field, at sign-in, in a search box). A JSON body is
parsed here once with its failures caught: nested a thousand levels deep (RecursionError) or holding an integer of
thousands of digits (ValueError) it is refused as malformed JSON, where webargs let both through as a 500.
No scanner or keyboard types these characters, so a refusal names the field and says so; nothing is written.
"""
from __future__ import annotations

import json
from typing import Any

from flask import Flask, request

from mscbatch.errors import DomainError

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class UnstorableInput(DomainError):
    status = 400
    title = "Bad request"


def _problem(text: str) -> str | None:
    if "\x00" in text:
        return "holds a NUL character (\\x00)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a character that is not valid Unicode (a lone surrogate)"
    return None


def _refuse(where: str, name: str, problem: str) -> UnstorableInput:
    return UnstorableInput(f"{where} '{name[:60]}' {problem}, which no scanner or keyboard types and the database "
                           "cannot store. Nothing was saved: check the scanner or type the value again.",
                           field=name[:60] if where == "Field" else None)


def _check_pairs(where: str, pairs: Any) -> None:
    for key, value in pairs:
        for text in (key, value):
            problem = _problem(text) if isinstance(text, str) else None
            if problem:
                # a multipart part whose name werkzeug could not read is filed under the key None
                named = key if text is value and isinstance(key, str) else "(a field name)"
                raise _refuse(where, named, problem)


def _check_json(document: Any) -> None:
    """Every string of the document, keys included; iterative, so depth costs no recursion."""
    pending: list[tuple[str, Any]] = [("(body)", document)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            problem = _problem(value)
            if problem:
                raise _refuse("Field", path, problem)
        elif isinstance(value, dict):
            for key, item in value.items():
                problem = _problem(key)
                if problem:
                    raise _refuse("Field", "(a field name)", problem)
                pending.append((key if path == "(body)" else f"{path}.{key}", item))
        elif isinstance(value, list):
            pending.extend((f"{path}[{i}]", item) for i, item in enumerate(value))


def _json_body() -> Any:
    raw = request.get_data(cache=True)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)[:120]
        raise UnstorableInput(f"The request body is not valid JSON ({reason}). Nothing was saved.") from None


class NotJson(DomainError):
    status = 415
    title = "Unsupported media type"


def refuse_unstorable_input() -> None:
    _check_pairs("Query parameter", request.args.items(multi=True))
    if request.method not in _BODY_METHODS:
        return
    if request.path.startswith("/api/") and request.mimetype and not request.is_json:
        # every API body is JSON: a body sent as text/plain or a form read as empty, and was refused as "missing
        # data" for fields that were there (API integrator's review)
        raise NotJson(f"The request body is {request.mimetype}, not JSON: send it with the header Content-Type: "
                      "application/json. Nothing was saved.")
    if request.is_json:
        _check_json(_json_body())
    else:
        _check_pairs("Field", request.form.items(multi=True))


def init_input_guard(app: Flask) -> None:
    app.before_request(refuse_unstorable_input)
