"""The sign-in form and every password field (e-signatures, the second person of the bedside check, password
change), found from the forms' PasswordFields: hostile passwords and user names (huge, NUL, lists, JSON types)
are refused with a 4xx, never a 5xx, and never sign anyone in; only the audited refusals are written."""
from __future__ import annotations

from hypothesis import strategies as st
from wtforms import PasswordField

from tests.fuzz.hostile import HUGE, form_value, text_value
from tests.fuzz.routes import STATE_CHANGING, _form_classes, routes, url_strategy
from tests.fuzz.site import ROLE_USERS, VICTIM, Site, csrf_of
from tests.fuzz.sweep import sweep
from tests.fuzz.test_forms_fuzz import _send, allowed, body_strategy, form_fields

EXAMPLES = {"sqlite": 8, "postgresql": 2}


def _password_fields(site: Site, endpoint: str) -> list[str]:
    names = []
    for form in _form_classes(site.app, endpoint):
        with site.app.test_request_context():
            names += [f.short_name for f in form(meta={"csrf": False}) if isinstance(f, PasswordField)]
    return [n for n in form_fields(site.app, endpoint) if n.rsplit("-", 1)[-1] in names]


def test_the_sign_in_form_refuses_hostile_credentials(site: Site) -> None:
    client = site.app.test_client()
    csrf = csrf_of(client.get("/login"))
    credentials = st.fixed_dictionaries({}, optional={
        "username": st.one_of(text_value(), st.sampled_from([VICTIM, VICTIM.upper() + " "]),
                              st.lists(text_value())),
        "password": st.one_of(form_value(), st.sampled_from(HUGE))})
    request = st.tuples(st.just("/login"), st.sampled_from(["form", "form", "file"]), credentials)
    route = next(r for r in routes(site.app, {"POST"}) if r.endpoint == "auth.login")
    failures = sweep(site, "auth.login", request, lambda drawn: _send(client, csrf, route, drawn),
                     EXAMPLES[site.kind] * 4)
    assert not failures, "\n".join(failures)
    assert client.get("/account").status_code == 302, "a hostile sign-in opened a session"


def test_every_password_field_refuses_hostile_passwords(site: Site) -> None:
    guarded = [r for r in routes(site.app, STATE_CHANGING)
               if not r.is_api and _password_fields(site, r.endpoint)]
    endpoints = {r.endpoint for r in guarded}
    assert endpoints >= {"donors.decide", "release.release_lot", "custody.confirm", "auth.change_password"}
    failures: list[str] = []
    for route in guarded:
        role = next(r for r in ROLE_USERS if allowed(route.endpoint, r))
        client, csrf = site.client(role)
        hostile = st.fixed_dictionaries({name: st.one_of(form_value(), st.sampled_from(HUGE))
                                         for name in _password_fields(site, route.endpoint)})
        body = st.tuples(body_strategy(form_fields(site.app, route.endpoint)), hostile).map(
            lambda pair: {**pair[0], **pair[1]})
        request = st.tuples(url_strategy(site, route), st.sampled_from(["form", "form", "file"]), body)
        failures += [f"[{role}] {f}" for f in sweep(
            site, route.endpoint, request, lambda drawn, r=route, c=client, t=csrf: _send(c, t, r, drawn),
            EXAMPLES[site.kind])]
    assert not failures, "\n".join(failures)
