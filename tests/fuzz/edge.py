"""The deterministic pass: each field (form field, JSON field, query key) x each edge value of hostile.py, one field
at a time in a body that is otherwise plausible, so that the value gets past the form or the schema to the services
and the database. Bodies start from what the site's pages offer (pages.py) and from the OpenAPI schemas; what is
still empty is filled here by the field's type and name. Shared by test_edge_forms.py, test_edge_json.py and
test_edge_query.py; checks.py judges each answer (no 5xx, nothing written on a refusal)."""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from tests.fuzz.checks import problems
from tests.fuzz.pages import Offered
from tests.fuzz.routes import Route, _build, _real_ids, _real_values, string_values
from tests.fuzz.site import DEMO_PASSWORD, Site

# A day and a minute every record of the seeded site accepts: in the past in any time zone, after the demo's steps
YESTERDAY = datetime.now(UTC) - timedelta(days=1)
DAY, MINUTE = YESTERDAY.date().isoformat(), YESTERDAY.strftime("%Y-%m-%dT10:00")
NEW_PASSWORD = "an-unused-Passphrase-2026"
REASON = "Fuzz: an ordinary reason"
# field name (without a form's prefix) -> a value the services accept, where the type alone says too little
_BY_NAME: dict[str, Callable[[Site], Any]] = {
    "wristband": lambda site: site.ward.wristband,
    "bag": lambda site: site.ward.ready_token,
    "username": lambda site: "nurse2", "second_username": lambda site: "nurse2",
    "new_password": lambda site: NEW_PASSWORD,
    "initials": lambda site: "AB",
    "patient_code": lambda site: (_real_values(site, "code") or ["SLE-UC-001"])[0],
    **{name: (lambda site: REASON) for name in (
        "reason", "justification", "rationale", "investigation", "description", "comment", "notes")},
}
_NUMBERS = {"IntegerField", "DecimalField", "FloatField", "FiniteDecimalField", "IntegerRangeField"}


# text fields whose value must be one the site knows: the first found in a column of that name
_KNOWN = ("marker", "unit", "test_id", "product_id", "protocol_id", "ctcae_term")


def by_name(site: Site, name: str) -> Any:
    short = name.rsplit("-", 1)[-1]
    if short in _BY_NAME:
        return _BY_NAME[short](site)
    if short.endswith("password"):
        return DEMO_PASSWORD
    if short == "box_id":
        with site.engine.connect() as connection:
            return connection.execute(text("SELECT min(id) FROM storage_location WHERE kind = 'box'")).scalar()
    if short in _KNOWN:
        return next(iter(_real_values(site, short)), None)
    return None


def form_value(site: Site, name: str, field: Any) -> str:
    """A plausible value of a form field (unbound WTForms field, or None) that the page left empty."""
    named = by_name(site, name)
    if named is not None:
        return str(named)
    kind = field.field_class.__name__ if field is not None else ""
    if kind == "DateField":
        return DAY
    if kind.startswith("DateTime"):
        return MINUTE
    if kind in _NUMBERS:
        return "1"
    if kind == "BooleanField":
        return "y"
    if field is not None and "choices" in field.kwargs and not callable(field.kwargs["choices"]):
        values = [c[0] if isinstance(c, (tuple, list)) else c for c in field.kwargs["choices"] or ()]
        values = [v for v in values if v not in ("", None)]
        if values:
            return str(values[0])
    if name.endswith("_id"):
        return str(_real_ids(site, name.rsplit("-", 1)[-1])[0])
    return "1" if kind else "Fuzz 1"


def json_value(site: Site, spec: dict[str, Any], name: str, schema: dict[str, Any]) -> Any:
    """A plausible value of a documented JSON field."""
    schema = resolve(spec, schema)
    named = by_name(site, name)
    if named is not None:
        return named
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return next(v for v in schema["enum"] if v is not None)
    kind = schema.get("type", "string")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        return {n: json_value(site, spec, n, p) for n, p in schema.get("properties", {}).items()}
    if kind == "array":
        return [json_value(site, spec, "", schema.get("items", {}))]
    if kind == "integer":
        return _real_ids(site, name)[0] if name.endswith("_id") else 1
    if kind == "number":
        return 1
    if kind == "boolean":
        return True
    return {"date": DAY, "date-time": f"{MINUTE}:00Z", "decimal": "1"}.get(schema.get("format", ""), "Fuzz 1")


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON body a value can go: each field, and inside objects and lists, each of theirs."""
    if path:
        yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaf_paths(item, (*path, key))
    elif isinstance(value, list) and value:
        yield from leaf_paths(value[0], (*path, 0))


SPLICE = "@@fuzz-edge@@"


def splice(body: Any, path: tuple[Any, ...], raw: str) -> str:
    """The body as JSON text with the raw JSON `raw` at `path` (the whole body when path is empty)."""
    if not path:
        return raw
    copy = json.loads(json.dumps(body))
    holder = copy
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = SPLICE
    return json.dumps(copy).replace(json.dumps(SPLICE), raw)


def offered_ids(offered: dict[str, list[Offered]], site: Site) -> dict[str, Counter[str]]:
    """URL parameter -> how often each value appears in the URLs of the forms the pages offer (the lot in process
    is offered more forms than a released one): the rows that accept a request."""
    adapter = site.app.url_map.bind("localhost")
    seen: dict[str, Counter[str]] = {}
    for forms in offered.values():
        for form in forms:
            _, values = adapter.match(form.url, method="POST")
            for name, value in values.items():
                seen.setdefault(name, Counter())[str(value)] += 1
    return seen


def candidate_urls(site: Site, route: Route, seen: dict[str, Counter[str]], limit: int = 3) -> list[str]:
    """URLs of the route to try: each parameter the values the pages offer most, then real ones, then the ones the
    view compares it with."""
    values: dict[str, list[Any]] = {}
    for name in route.rule.arguments:
        found = [v for v, _ in seen.get(name, Counter()).most_common()]
        if f"<int:{name}>" in route.rule.rule:
            found += [str(i) for i in _real_ids(site, name)]
        else:
            found += _real_values(site, name) + string_values(site.app, route, name) + ["x"]
        values[name] = list(dict.fromkeys(found))[:limit]
    combinations: list[dict[str, Any]] = [{}]
    for name, choices in values.items():
        combinations = [{**c, name: v} for c in combinations for v in choices]
    return [_build(site.app, route, c) for c in combinations[:limit]]


def choose(candidates: list[tuple[str, Any]], send: Callable[[str, Any], Any]) -> tuple[str, Any]:
    """The (URL, plausible body) that goes furthest when sent to the scratch copy of the site: accepted, else
    refused by validation (its values were read), else refused by the state of the row (a patient already
    enrolled refuses a check before reading its values: every edge value would stop there)."""
    if len(candidates) < 2:
        return candidates[0]
    ranked = []
    for url, body in candidates:
        status = send(url, body).status_code
        if status < 400:
            return url, body
        ranked.append((status != 422, len(ranked), (url, body)))
    return min(ranked)[2]


def run(site: Site, endpoint: str, cases: Iterable[tuple[str, Callable[[], Any]]],
        read_only: bool = False) -> tuple[list[str], int]:
    """Send each case; the failures (one line each, naming the case) and the number of requests sent."""
    failures: list[str] = []
    state, sent = site.state(), 0
    for label, send in cases:
        before = state
        response = send()
        sent += 1
        state = site.state(before)
        found = problems(site, endpoint, response, before, state, read_only)
        if found:
            failures.append(f"{endpoint} {label}: {'; '.join(found)}"[:1500])
    return failures, sent


def reset_password(site: Site, username: str, password_hash: str) -> None:
    """Put back a password a plausible body changed (test_edge_forms.py, the password change)."""
    with site.engine.begin() as connection:
        connection.execute(text("UPDATE user_account SET password_hash = :h, must_change_password = false "
                                "WHERE username = :u"), {"h": password_hash, "u": username})
