"""Every route to fuzz, read off the app's url map (a new route is fuzzed without anyone listing it), with the
names its view reads (the fields of the forms it builds, request.form / request.args keys) and hostile or real
values for its URL parameters."""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from flask_wtf import FlaskForm
from hypothesis import strategies as st
from sqlalchemy import text
from werkzeug.routing.converters import NumberConverter

from tests.fuzz.hostile import INJECTIONS, UNICODE

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
_FORM_CLASS = re.compile(r"\b([A-Z]\w*Form)\b")
_REQUEST_KEY = re.compile(r"request\.(form|args)\.(?:get|getlist)\(\s*[\"']([^\"']+)[\"']")
_LITERAL = re.compile(r"[\"']([a-z][a-z_-]{1,30})[\"']")
# URL parameter -> table of its real rows when the name alone does not say (user ids: the victim, see site.py)
PARAM_TABLES = {"result_id": ["donor_screening_result", "release_result"]}


@dataclass(frozen=True)
class Route:
    endpoint: str
    rule: Any
    method: str

    @property
    def is_api(self) -> bool:
        return self.rule.rule.startswith("/api/")

    def __str__(self) -> str:
        return f"{self.method} {self.rule.rule} ({self.endpoint})"


def routes(app: Any, methods: set[str]) -> list[Route]:
    found = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        found.extend(Route(rule.endpoint, rule, m) for m in sorted(rule.methods & methods))
    return found


def _view_source(app: Any, endpoint: str) -> tuple[str, dict[str, Any]]:
    return _source_of(inspect.unwrap(app.view_functions[endpoint]))


@cache  # the same view functions in every app
def _source_of(view: Any) -> tuple[str, dict[str, Any]]:
    try:
        return inspect.getsource(view), view.__globals__
    except (OSError, TypeError):
        return "", getattr(view, "__globals__", {})


def _form_classes(app: Any, endpoint: str) -> list[type[FlaskForm]]:
    """The FlaskForm classes the view names; all of its module's forms when it names none (a helper builds it)."""
    source, names = _view_source(app, endpoint)
    named = [names.get(n) for n in _FORM_CLASS.findall(source)]
    forms = [c for c in named if isinstance(c, type) and issubclass(c, FlaskForm)]
    if not forms:
        forms = [c for c in names.values()
                 if isinstance(c, type) and issubclass(c, FlaskForm) and c.__module__.startswith("mscbatch.")
                 and c.__name__ != "FlaskForm"]
    return forms


_FIELDS: dict[str, list[str]] = {}  # endpoint -> names (the same in every app)


def form_fields(app: Any, endpoint: str) -> list[str]:
    if endpoint not in _FIELDS:
        _FIELDS[endpoint] = _form_fields(app, endpoint)
    return _FIELDS[endpoint]


def _form_fields(app: Any, endpoint: str) -> list[str]:
    """The names a hostile body should fill: each form's fields (with the prefix the view gives the form)
    and every request.form / request.args key the view reads."""
    source, _ = _view_source(app, endpoint)
    prefixes = set(re.findall(r"prefix=[\"']([^\"']+)[\"']", source)) | {""}
    names: set[str] = set()
    for form in _form_classes(app, endpoint):
        with app.test_request_context():
            fields = [name for name, _ in form(meta={"csrf": False})._fields.items()]
        for prefix in prefixes:
            names.update(f"{prefix}-{name}" if prefix else name for name in fields)
    names.update(key for _, key in _REQUEST_KEY.findall(source))
    names.discard("csrf_token")
    return sorted(names)


def query_keys(app: Any, endpoint: str) -> list[str]:
    source, _ = _view_source(app, endpoint)
    return sorted({key for kind, key in _REQUEST_KEY.findall(source) if kind == "args"} | {"page", "before", "q"})


def _real_ids(site: Any, name: str) -> list[int]:
    if name == "user_id":
        return [site.victim_id]
    base = name.removesuffix("_id")
    tables = PARAM_TABLES.get(name) or [t for t in site.counts() if t == base or t.endswith("_" + base)]
    ids: list[int] = []
    with site._engine.connect() as connection:
        for table in tables:
            ids += [r[0] for r in connection.execute(text(f'SELECT id FROM "{table}" ORDER BY id LIMIT 6'))]
    return ids or [1]


def _real_values(site: Any, name: str) -> list[str]:
    """Values of a text parameter found in the database: a column of that name (protocol_id...)."""
    from sqlalchemy import inspect as inspect_db

    found: set[str] = set()
    with site._engine.connect() as connection:
        for table in site.counts():
            if name in {c["name"] for c in inspect_db(connection).get_columns(table)}:
                found.update(str(r[0]) for r in connection.execute(text(
                    f'SELECT DISTINCT "{name}" FROM "{table}" WHERE "{name}" IS NOT NULL LIMIT 5')))
    return sorted(found)


def url_strategy(site: Any, route: Route) -> st.SearchStrategy[str]:
    """The rule's URL with each parameter a real row id or value (3 times in 4: the request reaches the form),
    a hostile number, or hostile text."""
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for name in route.rule.arguments:
        converter = route.rule._converters[name]
        if isinstance(converter, NumberConverter):
            real: list[Any] = _real_ids(site, name)
            hostile: list[Any] = [0, 999_999, 2**31 - 1]
        else:
            source, _ = _view_source(site.app, route.endpoint)
            real = sorted(set(_real_values(site, name)) | set(_LITERAL.findall(source))) or ["x"]
            hostile = [v for v in INJECTIONS + UNICODE[5:] if v]
        # one list, the real values first and three times as likely (sampled_from draws an index)
        parts[name] = st.sampled_from(real * max(1, 3 * len(hostile) // len(real)) + hostile)
    return st.fixed_dictionaries(parts).map(lambda values: _build(site.app, route, values))


def _build(app: Any, route: Route, values: dict[str, Any]) -> str:
    from urllib.parse import quote

    url = route.rule.rule
    for name, value in values.items():
        url = re.sub(rf"<(?:[^:<>]+:)?{name}>", quote(str(value), safe="", errors="surrogatepass"), url)
    return url
