"""Every GET route (search and filter forms, pages, PDFs, exports; web and API) with hostile query strings on the
keys its view reads (routes.query_keys: the view's and its helpers' keys, a form built from the query, the OpenAPI
document's query parameters) and hostile or real ids in the URL, as every role allowed to see it and as one that
is not: never a 5xx or a stack trace, and a read writes nothing at all (no row, no audit event).
test_edge_query.py sends each edge value to each key; this sweep mixes them at random."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from hypothesis import strategies as st

from tests.fuzz.hostile import form_value
from tests.fuzz.routes import query_keys, routes, url_strategy
from tests.fuzz.site import ROLE_USERS, Site
from tests.fuzz.sweep import SCALE, sweep
from tests.fuzz.test_forms_fuzz import allowed
from tests.integration.test_access_matrix import EXPECTED_ACCESS, PUBLIC

# examples per (route, role allowed to read it); a refused role gets one: the access check answers before the view
EXAMPLES = {"sqlite": 2, "postgresql": 1}


def _query(keys: list[str]) -> st.SearchStrategy[str]:
    values = st.fixed_dictionaries({}, optional={k: form_value() for k in keys})
    return values.map(lambda q: urlencode(q, doseq=True, encoding="utf-8", errors="surrogatepass"))


def test_every_page_answers_hostile_query_strings_without_writing(site: Site) -> None:
    gets = [r for r in routes(site.app, {"GET"}) if r.endpoint != "static"]
    assert len(gets) >= 50
    failures: list[str] = []
    clients = {role: site.client(role)[0] for role in ROLE_USERS}
    anonymous = site.app.test_client()
    for route in gets:
        request = st.tuples(url_strategy(site, route), _query(query_keys(site.app, route.endpoint)))
        if EXPECTED_ACCESS[route.endpoint] == PUBLIC:
            readers: list[tuple[str | None, int]] = [(None, EXAMPLES[site.kind])]
        else:
            readers = [(r, EXAMPLES[site.kind]) for r in ROLE_USERS if allowed(route.endpoint, r)]
            # one refused: a role without access, or nobody signed in where every role may read
            readers += ([(r, 1) for r in ROLE_USERS if not allowed(route.endpoint, r)] or [(None, 1)])[:1]
        for role, count in readers:
            client = anonymous if role is None else clients[role]
            headers = {"Authorization": f"Bearer {site.tokens[role]}"} if route.is_api and role else {}

            def send(drawn: Any, c: Any = client, h: dict[str, str] = headers) -> Any:
                return c.get(f"{drawn[0]}?{drawn[1]}", headers=h)

            failures += [f"[{role or 'anonymous'}] {f}" for f in sweep(
                site, route.endpoint, request, send, round(count * SCALE), read_only=True)]
    assert not failures, "\n".join(failures)
