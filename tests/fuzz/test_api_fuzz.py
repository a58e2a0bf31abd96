"""Every state-changing JSON API route x every role (bearer token), with bodies drawn from the route's own
OpenAPI request schema: each documented field given a value of its type or of any other type (NaN and
Infinity as bare JSON tokens, huge integers, nested objects, NUL...), fields missing or unknown, bodies that
are not an object, not JSON, not UTF-8, or a form instead of JSON. Hostile and real ids in the URL.

test_openapi_fuzz.py (schemathesis) checks conformance to the document; this sweep checks what the document
does not say: as every role, a refusal writes nothing (checks.py)."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from hypothesis import strategies as st

from tests.fuzz.hostile import dumps, json_value, text_value
from tests.fuzz.routes import STATE_CHANGING, Route, routes, url_strategy
from tests.fuzz.site import ROLE_USERS
from tests.fuzz.sweep import examples, sweep
from tests.fuzz.test_forms_fuzz import allowed

_TYPED = {
    "string": lambda: text_value(),
    "integer": lambda: st.one_of(st.integers(-(2**40), 2**40), st.sampled_from([0, 1, 2, 3, 2**31 - 1, 2**31])),
    "number": lambda: st.floats(allow_nan=True, allow_infinity=True),
    "boolean": lambda: st.booleans(),
    "array": lambda: st.lists(json_value(), max_size=3),
    "object": lambda: st.dictionaries(st.text(max_size=8), json_value(), max_size=3),
}


_DATES = {"date": ["2026-01-15", "2025-12-31", "1900-01-01", "9999-12-31", "2026-02-30"],
          "date-time": ["2026-01-15T10:00:00Z", "2026-01-15T10:00:00", "2026-01-15T10:00:00+14:00",
                        "0001-01-01T00:00"]}


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def request_schema(spec: dict[str, Any], route: Route) -> dict[str, Any]:
    path = route.rule.rule
    for name in route.rule.arguments:
        path = path.replace(f"<int:{name}>", f"{{{name}}}").replace(f"<{name}>", f"{{{name}}}")
    operation = spec["paths"][path][route.method.lower()]
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    return _resolve(spec, content.get("schema", {}))


def _typed(spec: dict[str, Any], prop: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A value of the field's own type (hostile content), or one of its documented values."""
    prop = _resolve(spec, prop)
    kinds = prop.get("type", "string")
    kind = kinds[0] if isinstance(kinds, list) else kinds
    typed = _TYPED.get(kind, json_value)()
    if prop.get("format") in _DATES:
        typed = st.sampled_from(_DATES[prop["format"]]) | typed
    return st.one_of(typed, st.sampled_from(prop["enum"])) if prop.get("enum") else typed


def body_strategy(spec: dict[str, Any], schema: dict[str, Any]) -> st.SearchStrategy[tuple[str, Any]]:
    props = schema.get("properties", {})
    # every field, each of its own type: the request passes the schema and reaches the service with hostile text
    typed = st.fixed_dictionaries({n: _typed(spec, p) for n, p in props.items()})
    # any subset, each of its type or any other, and unknown fields
    document = st.fixed_dictionaries({}, optional={n: _typed(spec, p) | json_value() for n, p in props.items()})
    extra = st.dictionaries(st.text(max_size=10), json_value(), max_size=2)
    objects = st.tuples(document, extra).map(lambda pair: {**pair[1], **pair[0]})
    return st.one_of(
        st.tuples(st.just("json"), typed), st.tuples(st.just("json"), typed), st.tuples(st.just("json"), objects),
        st.tuples(st.just("json"), json_value()),  # a list, a number, null... where an object is expected
        st.tuples(st.just("raw"), st.binary(max_size=40) | st.sampled_from([b"{", b'{"a":', b"\xff\xfe{}", b""])),
        st.tuples(st.just("form"), document),  # a form body to a JSON endpoint
    )


def _send(client: Any, token: str, route: Route, drawn: tuple[str, tuple[str, Any]]) -> Any:
    url, (how, body) = drawn
    headers = {"Authorization": f"Bearer {token}"}
    if how == "json":
        return client.open(url, method=route.method, data=dumps(body), content_type="application/json",
                           headers=headers)
    if how == "raw":
        return client.open(url, method=route.method, data=body, content_type="application/json", headers=headers)
    pairs = [(k, v if isinstance(v, str) else dumps(v).decode("utf-8", "surrogatepass")) for k, v in body.items()]
    return client.open(url, method=route.method, content_type="application/x-www-form-urlencoded",
                       data=urlencode(pairs, encoding="utf-8", errors="surrogatepass"), headers=headers)


def test_every_api_route_refuses_hostile_json_cleanly_for_every_role(site: Any) -> None:
    spec = site.app.test_client().get("/api/v1/openapi.json").get_json()
    api = [r for r in routes(site.app, STATE_CHANGING) if r.is_api]
    assert len(api) >= 20 and {r.endpoint for r in api} >= {"custody_api.scan_verify", "lots_api.create"}
    client = site.app.test_client()  # cookies do not authenticate the API: one client, a token per role
    failures: list[str] = []
    strategies = {}
    for route in api:
        schema = request_schema(spec, route)  # none (an action without a body): any body is hostile
        strategies[str(route)] = st.tuples(url_strategy(site, route), body_strategy(spec, schema))
    for role in ROLE_USERS:
        for route in api:
            def send(drawn: Any, r: Route = route, t: str = site.tokens[role]) -> Any:
                return _send(client, t, r, drawn)

            failures += [f"[{role}] {f}" for f in sweep(
                site, route.endpoint, strategies[str(route)], send, examples(site, allowed(route.endpoint, role)))]
    assert not failures, "\n".join(failures)
