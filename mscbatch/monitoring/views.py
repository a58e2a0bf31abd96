"""The admin's monitoring page: the counters and the latest refusals of each kind, in plain words."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from mscbatch.auth.access import roles_required
from mscbatch.extensions import db
from mscbatch.monitoring import counters

bp = Blueprint("monitoring", __name__, url_prefix="/admin")


@bp.route("/monitoring")
@roles_required("admin")
def index() -> Any:
    return render_template("admin/monitoring.html", kinds=counters.KINDS, counts=counters.counts(db.session),
                           recent=counters.recent(db.session), limit=counters.RECENT,
                           by_kind=counters.by_kind(db.session))
