"""Every JSON write endpoint x each field of its documented body (nested ones too: the bags of a cryopreservation)
x each edge value of hostile.EDGE_JSON, spliced raw into an otherwise plausible body; and each of them as the whole
body. As a role allowed to write, on both databases (a NUL only fails on PostgreSQL): never a 5xx, and nothing
written on a refusal (checks.py)."""
from __future__ import annotations

import json
from functools import partial
from typing import Any

from tests.fuzz.edge import candidate_urls, choose, json_value, leaf_paths, offered_ids, run, splice
from tests.fuzz.hostile import EDGE_JSON
from tests.fuzz.pages import Offered
from tests.fuzz.routes import STATE_CHANGING, Route, openapi, routes
from tests.fuzz.site import ROLE_USERS, Site
from tests.fuzz.test_api_fuzz import request_schema
from tests.fuzz.test_forms_fuzz import allowed

# what other endpoints work on is used up by these: they run last (a refused start is recorded, by design)
LAST = ("lots_api.transition", "custody_api.start_infusion")


def test_each_json_field_takes_each_edge_value_cleanly(site: Site, scratch_site: Site,
                                                       offered_forms: dict[str, list[Offered]]) -> None:
    spec = openapi(site.app)
    offered = offered_forms
    seen, found_order = offered_ids(offered, site), list(offered)
    twins = {r.rule.rule: r.endpoint for r in routes(site.app, {"POST"}) if not r.is_api}

    def twin(route: Route) -> str:
        """The web form of the same use case (/api/v1/lots/<id>/harvest: /lots/<id>/harvest), if any."""
        return twins.get(route.rule.rule.removeprefix("/api/v1"), "")

    # in the order the pages offer their twins (a lot's isolation, passages, harvest, then its freezing), LAST last
    api = sorted((r for r in routes(site.app, STATE_CHANGING) if r.is_api), key=lambda r: (
        r.endpoint in LAST, found_order.index(twin(r)) if twin(r) in found_order else len(found_order)))
    assert {r.endpoint for r in api} >= {"custody_api.scan_verify", "lots_api.harvest", "patients_api.prescribe"}
    client, scratch = site.app.test_client(), scratch_site.app.test_client()
    failures: list[str] = []
    total = 0
    for route in api:
        role = next(r for r in ROLE_USERS if allowed(route.endpoint, r))
        headers = {"Authorization": f"Bearer {site.tokens[role]}", "Content-Type": "application/json"}
        schema = request_schema(spec, route)
        body = {n: json_value(site, spec, n, p) for n, p in schema.get("properties", {}).items()}

        def tried(url: str, body: Any, method: str = route.method, headers: dict[str, str] = headers) -> Any:
            return scratch.open(url, method=method, data=json.dumps(body), headers=headers)

        urls = ["/api/v1" + form.url for form in offered.get(twin(route), [])] + candidate_urls(site, route, seen)
        url, _ = choose([(u, body) for u in dict.fromkeys(urls)], tried)

        def send(data: str, url: str = url, method: str = route.method, headers: dict[str, str] = headers) -> Any:
            return client.open(url, method=method, data=data, headers=headers)

        def cases(url: str = url, body: dict[str, Any] = body, send: Any = send) -> Any:
            for path in [(), *leaf_paths(body)]:
                for label, raw in EDGE_JSON.items():
                    yield (f"POST {url} {'.'.join(map(str, path)) or '(body)'}={label}",
                           partial(send, splice(body, path, raw)))

        found, sent = run(site, route.endpoint, cases())
        failures += [f"[{role}] {f}" for f in found]
        total += sent
    assert total > 1500, total
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)
