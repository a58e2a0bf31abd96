"""Every state-changing web form x each of its fields x each edge value of hostile.EDGE_TEXT, one field at a time in
the body the page offers (pages.py) with its empty fields filled plausibly (edge.py), so that the value gets past
the form to the services and the database. As a role allowed to post it, CSRF on, on both databases (a NUL only
fails on PostgreSQL): never a 5xx, and nothing written on a refusal (checks.py)."""
from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import text

from tests.conftest import PASSWORD, add_user
from tests.fuzz.edge import REASON, candidate_urls, choose, form_value, offered_ids, reset_password, run
from tests.fuzz.hostile import EDGE_CHOICE, EDGE_TEXT
from tests.fuzz.pages import Offered
from tests.fuzz.routes import STATE_CHANGING, Route, posted_fields, raw_form_keys, routes
from tests.fuzz.site import ROLE_USERS, Site, csrf_of
from tests.fuzz.test_forms_fuzz import ENDS_THE_SESSION, allowed
from tests.integration.test_access_matrix import EXPECTED_ACCESS, PUBLIC, SIGNED_IN

# The signed-in account's own forms (password change, tokens) are posted by an account of their own: a plausible
# body changes its password (put back after, edge.reset_password), and the demo users must keep theirs.
OWNER = "fuzz-owner"
# What other forms work on is used up by these (a cancelled prescription, a recalled lot, a lot moved on, a
# started infusion): they run last. The others run in the order the pages offer them (a lot's steps in order).
LAST = ("prescriptions.cancel", "recall.start", "recall.end", "lots.transition", "release.release_lot",
        "release.exceptional", "custody.start", "auth.user_action",
        # and these add a result row per accepted edge value (an analyst named NaN...), which the lot's release page
        # reads on every later refusal: 400 ms a request once a hundred are there
        "release.add_result", "release.add_panel")
# A second body for forms whose first choice leaves fields unused: a storage location's temperature limit is
# only read for a freezer or a tank (a NaN limit was a 500 there)
VARIANTS: dict[str, list[dict[str, str]]] = {"storage.create": [{"kind": "freezer"}]}


_CHOICE_FIELDS = {"SelectField", "RadioField", "SelectMultipleField"}


def _body(site: Site, route: Route, offered: Offered | None) -> tuple[dict[str, str], set[str]]:
    """The body to start from, and the names in it that are closed choices (hostile.EDGE_CHOICE)."""
    fields = posted_fields(site.app, route.endpoint)
    body = dict(offered.body if offered else {})
    for name, field in fields.items():
        if not body.get(name):
            body[name] = form_value(site, name, field)
    choices = set(offered.choices if offered else ()) | {
        name for name, field in fields.items()
        if field is not None and field.field_class.__name__ in _CHOICE_FIELDS and field.kwargs.get("validate_choice", True)}
    return body, choices - raw_form_keys(site.app, route.endpoint)


def _order(body: dict[str, str]) -> list[str]:
    """Free text last: a plausible body with an edge value in a free-text field is often accepted, and an accepted
    step (a harvest) cannot be recorded again for the values still to come."""
    return sorted(body, key=lambda name: body[name] in (REASON, "Fuzz 1"))


def test_each_form_field_takes_each_edge_value_cleanly(site: Site, scratch_site: Site,
                                                       offered_forms: dict[str, list[Offered]]) -> None:
    add_user(site.app, OWNER, ["technician"])
    add_user(scratch_site.app, OWNER, ["technician"])
    with site.engine.connect() as connection:
        owner_hash = connection.execute(text("SELECT password_hash FROM user_account WHERE username = :u"),
                                        {"u": OWNER}).scalar_one()
    offered = offered_forms
    seen = offered_ids(offered, site)
    found_order = list(offered)
    web = [r for r in routes(site.app, STATE_CHANGING) if not r.is_api and r.endpoint not in ENDS_THE_SESSION]
    web.sort(key=lambda r: (LAST.index(r.endpoint) if r.endpoint in LAST else -1,
                            found_order.index(r.endpoint) if r.endpoint in found_order else len(found_order)))
    assert {r.endpoint for r in web} >= {"lots.create", "storage.create", "prescriptions.prescribe", "custody.check"}
    clients: dict[str, tuple[Any, str]] = {}
    scratch_clients: dict[str, tuple[Any, str]] = {}
    failures: list[str] = []
    total = 0
    for route in web:
        access = EXPECTED_ACCESS[route.endpoint]
        role = OWNER if access == SIGNED_IN else "anonymous" if access == PUBLIC else next(
            r for r in ROLE_USERS if allowed(route.endpoint, r))
        if role not in clients:
            clients[role], scratch_clients[role] = _client(site, role), _client(scratch_site, role)
        candidates = [(form.url, _body(site, route, form)) for form in offered.get(route.endpoint, [])] or [
            (url, _body(site, route, None)) for url in candidate_urls(site, route, seen)]

        def tried(url: str, body: tuple[dict[str, str], set[str]], role: str = role) -> Any:
            client, csrf = scratch_clients[role]
            return client.post(url, data={"csrf_token": csrf, **body[0]})

        url, (body, choices) = choose(candidates, tried)
        bodies = [body] + [{**body, **variant} for variant in VARIANTS.get(route.endpoint, [])]

        def send(data: dict[str, str], url: str = url, role: str = role, endpoint: str = route.endpoint) -> Any:
            client, csrf = clients[role]
            response = client.post(url, data=urlencode([("csrf_token", csrf), *data.items()]),
                                   content_type="application/x-www-form-urlencoded")
            if endpoint == "auth.change_password" and response.status_code == 302:  # an edge value was a valid password
                reset_password(site, OWNER, owner_hash)
                clients[role] = _client(site, role)
            return response

        def cases(url: str = url, bodies: list[dict[str, str]] = bodies, choices: set[str] = choices,
                  send: Any = send) -> Any:
            for base in bodies:
                for name in _order(base):
                    for label, value in EDGE_TEXT.items():
                        if name in choices and label not in EDGE_CHOICE:
                            continue
                        yield f"POST {url} {name}={label} in {base}"[:400], partial(send, {**base, name: value})

        found, sent = run(site, route.endpoint, cases())
        failures += [f"[{role}] {f}" for f in found]
        total += sent
    assert total > 2000, total  # the sweep reached the forms (a broken crawl would leave few)
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)


def _client(site: Site, role: str) -> tuple[Any, str]:
    if role == OWNER:
        return site.client("technician", OWNER, PASSWORD)
    if role == "anonymous":
        client = site.app.test_client()
        return client, csrf_of(client.get("/login"))
    return site.client(role)
