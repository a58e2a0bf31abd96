"""What every template can use: the navigation for the user's roles, and date formatting."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask
from flask_login import current_user

from mscbatch.auth.models import ROLE_LABELS
from mscbatch.core.numbers import plain

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


def init_templating(app: Flask) -> None:
    app.jinja_env.filters["utc"] = utc
    app.jinja_env.filters["plain"] = plain  # 20 mL, not 2E+1 mL
    app.jinja_env.globals["ROLE_LABELS"] = ROLE_LABELS

    @app.context_processor
    def _navigation() -> dict[str, Any]:
        return {"navigation": navigation_for(current_user)}
