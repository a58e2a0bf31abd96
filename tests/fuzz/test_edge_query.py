"""Every query parameter a page or an API list reads (routes.query_keys: the view's keys, its helpers', a form
built from the query, the OpenAPI document's) x each edge value of hostile.EDGE_TEXT (dates out of Python's reach
once shifted by a day or a zone, ids beyond the database's integers, NaN, 1E+999999999, NUL...), as a role allowed
to read it, on both databases: never a 5xx, and a read writes nothing (checks.py)."""
from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import urlencode

from tests.fuzz.edge import candidate_urls, run
from tests.fuzz.hostile import EDGE_TEXT
from tests.fuzz.routes import query_keys, reads_query, routes
from tests.fuzz.site import ROLE_USERS, Site
from tests.fuzz.test_forms_fuzz import allowed
from tests.integration.test_access_matrix import EXPECTED_ACCESS, PUBLIC

# what the sweep must find (the review of issue 9 found these keys unfuzzed, and 500s behind some of them)
EXPECTED_KEYS = {
    "audit.events": {"from", "to", "actor", "entity_type", "entity_id", "before"},
    "lots.index": {"from", "to", "status", "product", "donor", "before"},
    "donors.index": {"source", "status", "q", "page"},
    "patients.index": {"protocol", "q"},
    "prescriptions.dose": {"level", "planned_on"},
    "lots_api.list_all": {"collected_from", "collected_to", "before"},
}


def test_each_query_key_takes_each_edge_value_without_a_5xx_or_a_write(site: Site) -> None:
    gets = [r for r in routes(site.app, {"GET"}) if r.endpoint != "static"]
    keyed = {r.endpoint: query_keys(site.app, r.endpoint, common=False) for r in gets}
    for endpoint, keys in EXPECTED_KEYS.items():
        assert set(keyed[endpoint]) >= keys, (endpoint, keyed[endpoint])
    # a view that reads the query in a way routes.py cannot follow would silently go unfuzzed: name it here instead
    unread = [r.endpoint for r in gets if reads_query(site.app, r.endpoint) and not keyed[r.endpoint]]
    assert not unread, f"query keys not found for {unread}: teach routes.query_keys how these views read them"
    clients = {role: site.client(role)[0] for role in ROLE_USERS}
    anonymous = site.app.test_client()
    failures: list[str] = []
    total = 0
    for route in gets:
        if not keyed[route.endpoint]:
            continue
        role = next((r for r in ROLE_USERS if allowed(route.endpoint, r)), None)
        client = anonymous if EXPECTED_ACCESS[route.endpoint] == PUBLIC or role is None else clients[role]
        headers = {"Authorization": f"Bearer {site.tokens[role]}"} if route.is_api and role else {}
        url = candidate_urls(site, route, {})[0]

        def send(query: str, client: Any = client, url: str = url, headers: dict[str, str] = headers) -> Any:
            return client.get(f"{url}?{query}", headers=headers)

        cases = [(f"GET {url}?{key}={label}", partial(send, urlencode({key: value})))
                 for key in keyed[route.endpoint] for label, value in EDGE_TEXT.items()]
        found, sent = run(site, route.endpoint, cases, read_only=True)
        failures += [f"[{role or 'anonymous'}] {f}" for f in found]
        total += sent
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)
