"""Every route to fuzz, read off the app's url map (a new route is fuzzed without anyone listing it), with the
names its view reads (the fields of the forms it builds, request.form / request.args keys, from the view's syntax
tree and its helpers'; the query parameters of the OpenAPI document for /api/v1) and hostile or real values for its
URL parameters."""
from __future__ import annotations

import ast
import inspect
import re
import textwrap
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


# query keys no view names but every list may read (pagination, search), fuzzed by the random sweep everywhere
COMMON_QUERY_KEYS = ("page", "before", "q")


def query_keys(app: Any, endpoint: str, common: bool = True) -> list[str]:
    """The query parameters the route reads: request.args / request.values keys of the view and of the helpers it
    calls (literal, a variable bound by a loop over literals, or a helper's parameter given literals by its callers),
    the fields of a form built from request.args, and for /api/v1 the query parameters of the OpenAPI document."""
    if endpoint not in _QUERY_KEYS:
        keys: set[str] = set()
        for function, tree in _reached(app, endpoint):
            keys |= _read_keys(function, tree, _reached(app, endpoint), {"args", "values"})
            keys |= set(_form_keys(function, tree, query=True))
        _QUERY_KEYS[endpoint] = keys | set(_documented_query(app, endpoint))
    return sorted(_QUERY_KEYS[endpoint] | (set(COMMON_QUERY_KEYS) if common else set()))


_QUERY_KEYS: dict[str, set[str]] = {}
_SPEC: list[dict[str, Any]] = []


def openapi(app: Any) -> dict[str, Any]:
    if not _SPEC:  # the same document in every app
        _SPEC.append(app.test_client().get("/api/v1/openapi.json").get_json())
    return _SPEC[0]


def openapi_path(rule: Any) -> str:
    path = rule.rule
    for name in rule.arguments:
        path = re.sub(rf"<(?:[^:<>]+:)?{name}>", f"{{{name}}}", path)
    return path


def _documented_query(app: Any, endpoint: str) -> list[str]:
    names = []
    for rule in app.url_map.iter_rules(endpoint):
        if not rule.rule.startswith("/api/"):
            continue
        for operation in openapi(app)["paths"].get(openapi_path(rule), {}).values():
            if isinstance(operation, dict):
                names += [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"]
    return names


def _reached(app: Any, endpoint: str) -> list[tuple[Any, ast.AST]]:
    """The view and the functions it calls, transitively, that are its module's own or read the request: where
    the names it reads are written (`_dose_page(...)` reads the level, `_date("from")` a date)."""
    view = inspect.unwrap(app.view_functions[endpoint])
    found: list[tuple[Any, ast.AST]] = []
    pending = [view]
    while pending:
        function = pending.pop()
        if any(function is f for f, _ in found):
            continue
        tree = _tree(function)
        if tree is None:
            continue
        found.append((function, tree))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                called = function.__globals__.get(node.func.id)
                if inspect.isfunction(called) and called.__module__.startswith("mscbatch.") and (
                        called.__module__ == view.__module__ or "request." in (_source(called) or "")):
                    pending.append(called)
    return found


@cache
def _source(function: Any) -> str | None:
    try:
        return textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        return None


@cache
def _tree(function: Any) -> ast.AST | None:
    source = _source(function)
    return None if source is None else ast.parse(source)


def _is_request(node: ast.AST, parts: set[str]) -> bool:
    """`request.args` (parts {"args"}), `request.form`..."""
    return (isinstance(node, ast.Attribute) and node.attr in parts and isinstance(node.value, ast.Name)
            and node.value.id == "request")


def _literals(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


def _read_keys(function: Any, tree: ast.AST, reached: list[tuple[Any, ast.AST]], parts: set[str]) -> set[str]:
    """Keys of request.<parts>.get / getlist / [...] in the function."""
    keys: set[str] = set()
    for node in ast.walk(tree):
        key = None
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("get", "getlist") and _is_request(node.func.value, parts) and node.args):
            key = node.args[0]
        elif isinstance(node, ast.Subscript) and _is_request(node.value, parts):
            key = node.slice
        if key is None:
            continue
        if _literals(key):
            keys.update(_literals(key))
        elif isinstance(key, ast.Name):
            keys |= _variable_values(function, tree, key.id) | _argument_values(function, key.id, reached)
    return keys


def _variable_values(function: Any, tree: ast.AST, name: str) -> set[str]:
    """Literals a loop or comprehension binds to `name`: `{k: request.args.get(k) for k in ("a", "b")}`, or
    `for k in FILTERS` with FILTERS a tuple of names declared in the module."""
    values: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.comprehension)) and isinstance(node.target, ast.Name) \
                and node.target.id == name:
            values.update(_literals(node.iter))
            if isinstance(node.iter, ast.Name):
                declared = function.__globals__.get(node.iter.id)
                if isinstance(declared, (tuple, list, frozenset, set)):
                    values.update(v for v in declared if isinstance(v, str))
    return values


def reads_query(app: Any, endpoint: str) -> bool:
    """Whether the view or a helper it calls reads the query string at all (then query_keys must find keys)."""
    return any(_is_request(node, {"args", "values"}) for _, tree in _reached(app, endpoint) for node in ast.walk(tree))


def _argument_values(function: Any, name: str, reached: list[tuple[Any, ast.AST]]) -> set[str]:
    """Literals the callers among `reached` pass for parameter `name` of `function`: `_date("from")`."""
    parameters = list(inspect.signature(function).parameters)
    if name not in parameters:
        return set()
    index, values = parameters.index(name), set()
    for _, tree in reached:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == function.__name__:
                if index < len(node.args):
                    values.update(_literals(node.args[index]))
                values.update(v for k in node.keywords if k.arg == name for v in _literals(k.value))
    return values


def _form_keys(function: Any, tree: ast.AST, query: bool) -> dict[str, Any]:
    """Field names (with the prefix the function gives the form) -> unbound field, of the forms the function builds
    from the request: from request.args (`query`), else from the posted body (no formdata=None)."""
    keys: dict[str, Any] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        form = function.__globals__.get(node.func.id)
        if not (isinstance(form, type) and issubclass(form, FlaskForm)):
            continue
        formdata = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "formdata"), None)
        if query != (formdata is not None and _is_request(formdata, {"args", "values"})):
            continue
        if not query and isinstance(formdata, ast.Constant) and formdata.value is None:
            continue  # a form shown, not read
        prefix = next((k.value.value for k in node.keywords if k.arg == "prefix" and isinstance(k.value, ast.Constant)),
                      "")
        keys.update({f"{prefix}-{name}" if prefix else name: field for name, field in _fields_of(form).items()})
    return keys


def _fields_of(form: type) -> dict[str, Any]:
    """The unbound fields of a form class and of its bases."""
    found: dict[str, Any] = {}
    for klass in reversed(form.__mro__):
        found.update({name: value for name, value in vars(klass).items() if hasattr(value, "field_class")})
    return found


def posted_fields(app: Any, endpoint: str) -> dict[str, Any]:
    """Exactly the names a state-changing view reads from the body -> their unbound field (None: a request.form
    key): the fields of each form it builds from the request, with the prefix it gives that form, and its literal
    request.form keys; and the broad form_fields when the view calls a function that makes its form class
    (the donor questionnaire, the enrolment criteria: pages.py reads those off the page)."""
    reached = _reached(app, endpoint)
    names: dict[str, Any] = {}
    for function, tree in reached:
        names.update(dict.fromkeys(_read_keys(function, tree, reached, {"form", "values"})))
        names.update(_form_keys(function, tree, query=False))
    if any(isinstance(node, ast.Call) and isinstance(node.func, ast.Call) for _, tree in reached for node in ast.walk(tree)):
        names.update({name: None for name in form_fields(app, endpoint) if name not in names})
    names.pop("csrf_token", None)
    return dict(sorted(names.items()))


def raw_form_keys(app: Any, endpoint: str) -> set[str]:
    """The body keys the view reads itself (request.form.get...), whatever its forms make of them."""
    reached = _reached(app, endpoint)
    return set().union(*(_read_keys(function, tree, reached, {"form", "values"}) for function, tree in reached))


def string_values(app: Any, route: Route, name: str) -> list[str]:
    """The values the view compares a text URL parameter with: `action == "roles"`, `action in ("a", "b")`."""
    values: list[str] = []
    for _, tree in _reached(app, route.endpoint):
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == name:
                for comparator in node.comparators:
                    values += [v for v in _literals(comparator) if v not in values]
    return values


def _real_ids(site: Any, name: str) -> list[int]:
    if name == "user_id":
        return [site.victim_id]
    base = name.removesuffix("_id")
    tables = PARAM_TABLES.get(name) or [t for t in site.counts() if t == base or t.endswith("_" + base)]
    ids: list[int] = []
    with site.engine.connect() as connection:
        for table in tables:
            ids += [r[0] for r in connection.execute(text(f'SELECT id FROM "{table}" ORDER BY id LIMIT 6'))]
    return ids or [1]


def _real_values(site: Any, name: str) -> list[str]:
    """Values of a text parameter found in the database: a column of that name (protocol_id...)."""
    found: set[str] = set()
    with site.engine.connect() as connection:
        for table in _tables_with_column(name):
            found.update(str(r[0]) for r in connection.execute(text(
                f'SELECT DISTINCT "{name}" FROM "{table}" WHERE "{name}" IS NOT NULL LIMIT 5')))
    return sorted(found)


@cache  # the metadata's tables: inspecting the 40 tables of the database at each call was slow
def _tables_with_column(name: str) -> tuple[str, ...]:
    from tests.reliability.support import TABLES

    return tuple(t.name for t in TABLES if name in t.columns)


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
