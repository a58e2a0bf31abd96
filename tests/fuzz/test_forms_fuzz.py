"""Every state-changing web route x every role, with Hypothesis-drawn form bodies and a VALID CSRF token:
random and huge text, NaN / inf / huge numbers, unicode (NUL, lone surrogates sent as invalid UTF-8), lists
for single fields, missing fields, SQL / HTML / template injection, files where none is expected; hostile and
real ids in the URL. See checks.py for what each answer must satisfy."""
from __future__ import annotations

from io import BytesIO
from typing import Any
from urllib.parse import urlencode

from hypothesis import strategies as st

from tests.fuzz.hostile import dumps, form_value, json_value, text_value
from tests.fuzz.routes import STATE_CHANGING, Route, form_fields, routes, url_strategy
from tests.fuzz.site import ROLE_USERS
from tests.fuzz.sweep import examples, sweep
from tests.integration.test_access_matrix import EXPECTED_ACCESS, PUBLIC, SIGNED_IN

ENDS_THE_SESSION = {"auth.logout"}
# 500s this sweep found, fixed in the product, replayed first on every run: endpoint -> (url, how, body)
FOUND: dict[str, list[tuple[str, str, Any]]] = {
    # a file posted for a text field reached the validators / argon2 as a FileStorage (web/forms.py FlaskForm)
    "auth.change_password": [("/account/password", "file", {"current_password": "x", "new_password": "y"})],
    # a JSON body to a web form: Flask-WTF took it, numbers and lists into text fields (web/forms.py FlaskForm)
    "donors.register": [("/donors/new", "json", {"initials": 5}), ("/donors/new", "json", [0, "a"])],
    "lots.passage": [("/lots/1/passages", "json", "\x0b")],
    # int() of a posted id before validation (web/forms.py posted_id)
    "lots.deviation": [("/lots/1/deviations", "form", {"deviation-step_id": "abc"})],
    "lots.reagent": [("/lots/1/reagents", "form", {"reagent-reagent_lot_id": "1.5", "reagent-step_id": "x"})],
    "lots.store": [("/lots/1/store", "form", {"store-bag_id": "\r\n"})],
    "storage.create": [("/storage/new", "form", {"parent_id": "nan"})],
    "patients.enrol": [("/patients/1/enrol", "form", {"check_id": "01/02/2026", "password": "x"})],
    # Decimal.quantize() of a 5000-digit volume (custody/infusions.py _volume)
    "custody.end": [("/ward/infusions/1/end", "form", {"volume_ml": "9" * 5000})],
}


def body_strategy(fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Any subset of the view's fields (missing ones included), hostile values, and a few unknown keys."""
    known = st.fixed_dictionaries({}, optional={name: form_value() for name in fields})
    unknown = st.dictionaries(st.text(min_size=1, max_size=12), text_value(), max_size=2)
    return st.tuples(known, unknown).map(lambda pair: {**pair[1], **pair[0]})


def json_body_strategy(fields: list[str]) -> st.SearchStrategy[Any]:
    """A JSON body where a form is expected (Flask-WTF reads one): any types, or not an object at all."""
    return st.one_of(st.fixed_dictionaries({}, optional={name: json_value() for name in fields}), json_value())


def request_strategy(site: Any, route: Route) -> st.SearchStrategy[tuple[str, str, Any]]:
    """(url, how the body is sent, body): mostly an urlencoded form, else multipart with a file, or JSON."""
    fields = form_fields(site.app, route.endpoint)
    url, body = url_strategy(site, route), body_strategy(fields)
    return st.one_of(st.tuples(url, st.sampled_from(["form", "form", "file"]), body),
                     st.tuples(url, st.just("json"), json_body_strategy(fields)))


def allowed(endpoint: str, role: str) -> bool:
    rule = EXPECTED_ACCESS[endpoint]
    return rule in (PUBLIC, SIGNED_IN) or role in rule  # type: ignore[operator]


def _send(client: Any, csrf: str, route: Route, drawn: tuple[str, str, Any]) -> Any:
    url, how, body = drawn
    if how == "json":  # the CSRF token in its header, as Flask-WTF reads it for a JSON request
        return client.open(url, method=route.method, data=dumps(body), content_type="application/json",
                           headers={"X-CSRFToken": csrf})
    pairs = [("csrf_token", csrf)] + [(k, v) for k, v in body.items() if k != "csrf_token"]
    if how == "file":  # multipart, with a file in the first field: werkzeug encodes the rest (valid UTF-8 only)
        data: dict[str, Any] = {k: _valid_utf8(v) for k, v in pairs}
        name = next((k for k, _ in pairs[1:]), "attachment")
        data[name] = (BytesIO(b"%PDF-1.4\x00\xff" * 50), "../../evil\x00.pdf")
        return client.open(url, method=route.method, data=data, content_type="multipart/form-data")
    encoded = urlencode(pairs, doseq=True, encoding="utf-8", errors="surrogatepass")
    return client.open(url, method=route.method, data=encoded, content_type="application/x-www-form-urlencoded")


def _valid_utf8(value: Any) -> Any:
    if isinstance(value, list):
        return [_valid_utf8(v) for v in value]
    return value.encode("utf-8", "replace").decode("utf-8")


def test_every_form_route_refuses_hostile_bodies_cleanly_for_every_role(site: Any) -> None:
    web = [r for r in routes(site.app, STATE_CHANGING) if not r.is_api]
    assert len(web) >= 40 and {r.endpoint for r in web} >= {"custody.check", "auth.login", "lots.create"}
    failures: list[str] = []
    strategies = {str(route): request_strategy(site, route) for route in web}  # built once: Hypothesis checks each
    for role in ROLE_USERS:
        client, csrf = site.client(role)
        for route in web:
            # a valid sign-out ends the client's session (its job): it gets a client of its own
            use = site.client(role) if route.endpoint in ENDS_THE_SESSION else (client, csrf)
            def send(drawn: Any, r: Route = route, u: tuple[Any, str] = use) -> Any:
                return _send(u[0], u[1], r, drawn)

            failures += [f"[{role}] {f}" for f in sweep(
                site, route.endpoint, strategies[str(route)], send, examples(site, allowed(route.endpoint, role)),
                explicit=tuple(FOUND.get(route.endpoint, ())))]
        assert client.get("/account").status_code == 200, f"the {role} client was signed out by the sweep"
    assert not failures, "\n".join(failures)
