"""The forms of the seeded site's pages as a browser sees them: every GET page (each real id of its URL) read as a
role allowed to see it, each <form method="post"> with the names and values it would send. The deterministic pass
(test_edge_forms.py, test_edge_json.py) starts from these bodies: the right prefixes, the fields a view makes from
configuration (the donor questionnaire, the enrolment criteria), the choices the view fills in, the hidden ids; and
the URL of a page that offers the form is one whose row accepts it (the lot in process for a passage, the open
OOS...)."""
from __future__ import annotations

from html.parser import HTMLParser
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from werkzeug.exceptions import HTTPException

from tests.fuzz.routes import Route, _build, _real_ids, _real_values, routes, string_values
from tests.fuzz.site import ROLE_USERS
from tests.fuzz.test_forms_fuzz import allowed

FILES = (".pdf", ".csv", ".png", ".svg", ".json", ".zpl")
IDS_PER_PARAMETER = 6


class Offered(NamedTuple):
    url: str
    body: dict[str, str]
    choices: frozenset[str]  # the names of its <select> and radio buttons


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[tuple[str, dict[str, str], set[str]]] = []
        self._form: dict[str, str] | None = None
        self._choices: set[str] = set()
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("method", "get").lower() == "post":
            self._form, self._choices = {}, set()
            self.forms.append((a.get("action", ""), self._form, self._choices))
        if self._form is None:
            return
        if tag == "option" and self._select and a.get("value"):
            if not self._form.get(self._select) or "selected" in a:  # the first real choice, or the chosen one
                self._form[self._select] = a["value"]
        name = a.get("name")
        if not name:
            return
        if tag == "input":
            kind = a.get("type", "text").lower()
            if kind == "radio":
                self._choices.add(name)
            if kind in ("checkbox", "radio"):
                if name not in self._form or "checked" in a:
                    self._form[name] = a.get("value", "y")
            elif kind != "file":
                self._form.setdefault(name, a.get("value", ""))
        elif tag == "button" and a.get("value"):
            self._form.setdefault(name, a["value"])
        elif tag == "select":
            self._select = name
            self._choices.add(name)
        elif tag == "textarea":
            self._textarea = name
            self._form.setdefault(name, "")

    def handle_data(self, data: str) -> None:
        if self._form is not None and self._textarea and data.strip():
            self._form[self._textarea] = data.strip()

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def _urls(site: Any, route: Route) -> list[str]:
    urls = [route.rule.rule] if not route.rule.arguments else []
    if route.rule.arguments:
        choices: list[list[Any]] = [[]]
        for name in route.rule.arguments:
            if route.rule.rule.count(f"<int:{name}>"):
                values: list[Any] = _real_ids(site, name)[:IDS_PER_PARAMETER]
            else:
                values = _real_values(site, name)[:IDS_PER_PARAMETER] or string_values(site.app, route, name)[:2]
            choices = [c + [(name, v)] for c in choices for v in values]
        urls = [_build(site.app, route, dict(c)) for c in choices]
    return urls


def page_forms(site: Any) -> dict[str, list[Offered]]:
    """POST endpoint -> every form the site's pages offer for it, in the order found."""
    clients = {role: site.client(role)[0] for role in ROLE_USERS}
    found: dict[str, list[Offered]] = {}
    adapter = site.app.url_map.bind("localhost")
    for route in routes(site.app, {"GET"}):
        if route.is_api or route.endpoint == "static" or route.rule.rule.endswith(FILES):
            continue
        role = next((r for r in ROLE_USERS if allowed(route.endpoint, r)), "technician")
        for url in _urls(site, route):
            response = clients[role].get(url)
            if response.mimetype != "text/html":
                continue
            parser = _Forms()
            parser.feed(response.get_data(as_text=True))
            for action, body, choices in parser.forms:
                target = urlsplit(action).path or url
                try:
                    endpoint, _ = adapter.match(target, method="POST")
                except HTTPException:
                    continue
                form = Offered(target, {k: v for k, v in body.items() if not k.endswith("csrf_token")},
                               frozenset(choices))
                if form not in found.setdefault(endpoint, []):
                    found[endpoint].append(form)
    return found

