"""The first screen and the health check."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, render_template
from flask_login import current_user
from sqlalchemy import text

from mscbatch.auth.access import public
from mscbatch.database import reading
from mscbatch.extensions import db

bp = Blueprint("web", __name__)


@bp.route("/")
@public
def home() -> Any:
    return home_page()


def home_page(refusal: str | None = None, status: int = 200) -> Any:
    """The first screen; a clinician's lists the recalls reaching their patients that wait for their confirmation
    (recall.notices.open_notices_for); `refusal`: a refused confirmation, said above that list."""
    from mscbatch.recall.notices import open_notices_for

    db.session.rollback()
    return render_template("home.html", user=current_user, recall_notices=open_notices_for(db.session, current_user),
                           notice_refusal=refusal, work=technician_work()), status


def technician_work() -> dict[str, Any] | None:
    """A signed-in technician's work lists (lots.worklists: one statement each, the first few and how many in all);
    None for everyone else, whose home is unchanged."""
    if not (current_user.is_authenticated and current_user.has_role("technician")):
        return None
    from mscbatch.lots.worklists import bags_not_placed, bags_to_dispatch, lots_in_process

    with reading(db.session):  # a home page must not take (or wait for) SQLite's write lock
        return {"lots": lots_in_process(db.session), "unplaced": bags_not_placed(db.session),
                "dispatch": bags_to_dispatch(db.session)}


@bp.route("/healthz")
@public
def healthz() -> Any:
    try:
        with reading(db.session):  # a probe must not take (or wait for) SQLite's write lock
            # the audit chain's head: written by `mscbatch init`, needed by every write. A database that answers
            # SELECT 1 but was never initialised (or lost its tables) cannot serve a user: down, not ok
            head = db.session.execute(text("SELECT last_seq FROM audit_head WHERE id = 1")).first()
    except Exception:  # the point of a health check is to say "down" instead of raising
        return jsonify(status="down", database="unreachable or not initialised"), 503
    if head is None:
        return jsonify(status="down", database="not initialised (no audit chain head)"), 503
    return jsonify(status="ok", database="ok")
