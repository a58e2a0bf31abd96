"""What every template can use: the navigation for the user's roles, date formatting, and the summary of a
refused form shown at the top of every page (base.html)."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask
from flask_login import current_user
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup
from wtforms.form import BaseForm

from mscbatch.auth.models import ROLE_LABELS
from mscbatch.core.culture import format_cells
from mscbatch.core.identifiers import din_shown
from mscbatch.core.numbers import plain
from mscbatch.site import local_parts, site_config

# (label, endpoint, roles that see it); later capabilities add their entries here.
MAKERS = frozenset({"technician", "qa", "admin"})  # the cell-processing laboratory and its QA
CLINICAL = frozenset({"qa", "clinician", "nurse"})

# (label, endpoint, roles that see it), in the order of a cell's journey from donor to patient. The menu is
# a convenience: every route is authorised on the server (mscbatch.auth.access) whatever the menu shows.
NAVIGATION: list[tuple[str, str, frozenset[str] | None]] = [
    ("Home", "web.home", None),
    ("Donors", "donors.index", frozenset({"technician", "qa", "clinician", "admin"})),
    ("Lots", "lots.index", None),
    ("Release", "release.index", frozenset({"qa", "technician", "admin"})),
    ("Patients", "patients.index", CLINICAL),
    ("Ward", "custody.ward", frozenset({"nurse", "clinician", "technician"})),
    ("Returned bags", "custody.returned", frozenset({"qa"})),
    ("Recalls", "recall.index", frozenset({"qa", "clinician"})),
    ("Traceability", "trace.find", frozenset({"qa", "clinician"})),
    ("Storage", "storage.index", MAKERS),
    ("Reagents", "reagents.index", MAKERS),
    ("Check an identifier", "storage.identifiers", None),
    ("Exports", "interop.exports", None),
    ("API", "interop.api_docs", None),
    ("Audit trail", "audit.events", frozenset({"qa", "admin"})),
    ("Users", "auth.users", frozenset({"admin"})),
    ("Monitoring", "monitoring.index", frozenset({"admin"})),
    ("My account", "auth.account", None),
]


def navigation_for(user: Any) -> list[tuple[str, str]]:
    if not getattr(user, "is_authenticated", False):
        return []
    return [(label, endpoint) for label, endpoint, roles in NAVIGATION if roles is None or user.has_role(*roles)]


def utc(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return "" if value is None else f"{value:{fmt}} UTC"


def local(value: datetime | None, seconds: bool = False) -> Markup:
    """An instant as the pages say it: the site's local time first, its zone named, UTC beside it in brackets
    ("2026-12-05 21:48 CET (20:48 UTC)"), each part marked up. The words are site.local_parts', as the PDFs' and
    messages' (site.local_and_utc), so a page and its PDF never say an instant two ways."""
    if value is None:
        return Markup("—")
    return Markup('<span class="when"><span class="local">{}</span> <span class="utc hint">({})</span></span>').format(
        *local_parts(value, seconds))


@dataclass(frozen=True)
class SummaryItem:
    """One line of the error summary: the field's id to link to (None for a refusal of the whole form or a
    hidden field), its label and the message."""

    target: str | None
    label: str
    message: str

    @property
    def names_field(self) -> bool:
        """The message already starts with the field's name ("Second person: wrong password" for the field
        "Second person: password"): the label in front would say it twice."""
        head = self.label.split(":")[0].strip().lower()
        said, colon, _ = self.message.partition(":")  # or its own short name: "Weight: ..." for "Weight (kg)"
        said = said.strip().lower()
        return bool(head) and (self.message.lower().startswith(head) or (
            bool(colon) and len(said) >= 3 and head.startswith(said)))


#: fields a user cannot go to: their messages are listed without a link
_UNLINKABLE = frozenset({"HiddenField", "CSRFTokenField", "SubmitField"})


def _form_items(form: BaseForm) -> Iterator[SummaryItem]:
    for message in getattr(form, "form_errors", None) or []:
        yield SummaryItem(None, "", str(message))
    for field in form:
        yield from _field_items(field)


def _field_items(field: Any) -> Iterator[SummaryItem]:
    if field.type == "FormField":
        yield from _form_items(field.form)
        return
    if field.type == "FieldList":
        for entry in field.entries:
            yield from _field_items(entry)
        return
    errors = field.errors
    if isinstance(errors, Mapping):  # a sub-form's errors, already walked above
        return
    for message in errors or []:
        if isinstance(message, str):
            linkable = field.type not in _UNLINKABLE and bool(field.id)
            yield SummaryItem(field.id if linkable else None, "" if not linkable else str(field.label.text), message)


def _forms_in(value: Any, depth: int = 0) -> Iterator[BaseForm]:
    if isinstance(value, BaseForm):
        yield value
    elif depth == 0 and isinstance(value, Mapping):
        for item in value.values():
            yield from _forms_in(item, 1)
    elif depth == 0 and isinstance(value, (list, tuple)):
        for item in value:
            yield from _forms_in(item, 1)


def summary_items(variables: Mapping[str, Any]) -> list[SummaryItem]:
    """Every refusal a page is rendered with: the errors of each WTForms form among the template's variables
    (the form-level refusal a use case gave, mscbatch.web.forms.show_error, and each field's errors), and the
    messages of an optional `page_errors` list a view may pass. Found here so no template has to say it twice."""
    items: list[SummaryItem] = []
    seen_forms: set[int] = set()
    seen: set[tuple[str | None, str]] = set()
    for name, value in variables.items():
        if name == "page_errors":
            found = [SummaryItem(None, "", str(m)) for m in (value or []) if m]
        else:
            found = []
            for form in _forms_in(value):
                if id(form) not in seen_forms:
                    seen_forms.add(id(form))
                    found.extend(_form_items(form))
        for item in found:
            if (item.target, item.message) not in seen:
                seen.add((item.target, item.message))
                items.append(item)
    return items


@pass_context
def error_summary(context: Context) -> list[SummaryItem]:
    """For base.html: what the page refuses, to say at the top (issue #6: a refusal below the fold went unseen)."""
    return summary_items(context.get_all())


def donor_gate_reasons(lot: Any, gate: str | None = None) -> list[str]:
    """For the release page: why the donor gate does not say "approved" for this lot (issue #7: the page said "QA
    has not approved" of an approved donor whose samples do not cover this lot's collection day); `gate`: the gate
    the page already holds (nothing to judge when it says "approved"). The lot page has them in its record."""
    if gate == "approved":
        return []
    from mscbatch.extensions import db
    from mscbatch.lots.services import gate_and_reasons  # the lot pages import this module

    return gate_and_reasons(db.session, lot)[1]


def init_templating(app: Flask) -> None:
    app.jinja_env.filters["utc"] = utc
    app.jinja_env.filters["local"] = local
    app.jinja_env.filters["plain"] = plain  # 20 mL, not 2E+1 mL
    app.jinja_env.filters["cells"] = format_cells  # 125 x10^6, as the label writes it
    app.jinja_env.filters["din_shown"] = din_shown  # a bag named in words as its label names it, with K
    app.jinja_env.globals["ROLE_LABELS"] = ROLE_LABELS
    app.jinja_env.globals["error_summary"] = error_summary
    app.jinja_env.globals["donor_gate_reasons"] = donor_gate_reasons

    @app.context_processor
    def _navigation() -> dict[str, Any]:
        return {"navigation": navigation_for(current_user), "site_tz": site_config().tz}
