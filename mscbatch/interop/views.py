"""Pages: the CSV exports for statisticians (/exports) and the API documentation (Swagger UI, vendored).

The API docs page lives at /docs/api, a page path, because browser sessions are ignored under /api/ (the API
takes bearer tokens only): /api/v1/docs redirects there, so the address a developer guesses works too. The
page's script is a static file (the CSP allows scripts from 'self' only, no inline script)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, redirect, render_template, url_for
from flask_login import current_user

from mscbatch.auth.access import authenticated, public, roles_required
from mscbatch.errors import PermissionDenied
from mscbatch.extensions import db
from mscbatch.interop import csv_exports
from mscbatch.interop.csv_exports import EXPORTS, RELEASE_READERS

bp = Blueprint("interop", __name__)


@bp.route("/exports")
@authenticated
def exports() -> Any:
    return render_template("interop/exports.html", exports=[e for e in EXPORTS.values() if e.allowed(current_user)],
                           refused=[e for e in EXPORTS.values() if not e.allowed(current_user)],
                           endpoints=DOWNLOADS)


def _download(name: str) -> Any:
    export = EXPORTS[name]
    if not export.allowed(current_user):
        raise PermissionDenied("Your role does not allow this export.")
    return csv_exports.csv_response(export, db.session)


@bp.route("/exports/lots.csv")
@authenticated
def export_lots() -> Any:
    return _download("lots")


@bp.route("/exports/bags.csv")
@authenticated
def export_bags() -> Any:
    return _download("bags")


@bp.route("/exports/release-results.csv")
@roles_required(*RELEASE_READERS)
def export_release_results() -> Any:
    return _download("release-results")


@bp.route("/exports/infusions.csv")
@roles_required(*csv_exports.INFUSION_READERS)
def export_infusions() -> Any:
    return _download("infusions")


DOWNLOADS = {"lots": "interop.export_lots", "bags": "interop.export_bags",
             "release-results": "interop.export_release_results", "infusions": "interop.export_infusions"}


EVIDENCE_READERS = ("qa", "admin")


@bp.route("/bags/<int:bag_id>/evidence.zip")
@roles_required(*EVIDENCE_READERS)
def bag_evidence(bag_id: int) -> Any:
    """The inspectors' evidence bundle of one bag (verify offline with `mscbatch evidence verify FILE.zip`)."""
    from mscbatch.interop.evidence import bag_evidence as build

    filename, body = build(db.session, bag_id, current_app.config["AUDIT_KEY"], current_user)
    return Response(body, mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.route("/docs/api")
@authenticated
def api_docs() -> Any:
    return render_template("interop/api_docs.html")


@bp.route("/api/v1/docs")
@public
def api_docs_redirect() -> Any:
    return redirect(url_for("interop.api_docs"))
