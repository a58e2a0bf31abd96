"""Every GET route (search and filter forms, pages, PDFs, exports; web and API) with hostile query strings and
hostile or real ids in the URL, as a role allowed to see it: never a 5xx or a stack trace, and a read writes
nothing at all (no row, no audit event)."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from hypothesis import strategies as st

from tests.fuzz.hostile import form_value
from tests.fuzz.routes import query_keys, routes, url_strategy
from tests.fuzz.site import ROLE_USERS, Site
from tests.fuzz.sweep import sweep
from tests.fuzz.test_forms_fuzz import allowed
from tests.integration.test_access_matrix import EXPECTED_ACCESS, PUBLIC

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
        role = next((r for r in ROLE_USERS if allowed(route.endpoint, r)), None)
        client = anonymous if EXPECTED_ACCESS[route.endpoint] == PUBLIC or role is None else clients[role]
        headers = {"Authorization": f"Bearer {site.tokens[role]}"} if route.is_api and role else {}
        request = st.tuples(url_strategy(site, route), _query(query_keys(site.app, route.endpoint)))

        def send(drawn: Any, c: Any = client, h: dict[str, str] = headers) -> Any:
            return c.get(f"{drawn[0]}?{drawn[1]}", headers=h)

        failures += [f"[{role or 'anonymous'}] {f}" for f in sweep(site, route.endpoint, request, send,
                                                                    EXAMPLES[site.kind], read_only=True)]
    assert not failures, "\n".join(failures)

