"""Label pages: the print page of a lot (print one bag, the whole lot or an A4 sheet; print history) and the
public verification page a label's QR code opens (/v/<token>), which shows no patient data."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, render_template, request
from flask_login import current_user

from mscbatch.auth.access import public, roles_required
from mscbatch.errors import Conflict, DomainError
from mscbatch.extensions import db
from mscbatch.labelling import services
from mscbatch.labelling.forms import PrintForm
from mscbatch.labelling.services import PRINTERS
from mscbatch.lots.queries import bags_of, get_lot
from mscbatch.recall.queries import held_bag_ids
from mscbatch.settings import label_fallback_allowed
from mscbatch.web.forms import show_error

bp = Blueprint("labelling", __name__, url_prefix="/labels")
verify_bp = Blueprint("verify", __name__)


def label_base_url() -> str:
    """Where the QR code points: MSCBATCH_LABEL_BASE_URL (LABEL_BASE_URL, validated at start-up). Unset, the
    print request's own root only on a plain-HTTP development run (`make run` on 127.0.0.1): elsewhere the Host
    header a request came with (any client or proxy sets it) would be printed on labels that outlive it."""
    configured = current_app.config.get("LABEL_BASE_URL")
    if configured:
        return str(configured)
    if label_fallback_allowed(current_app.config):
        return request.url_root
    raise Conflict("No label was printed: the site's address for the labels' QR codes is not configured. Ask the "
                   "administrator to set MSCBATCH_LABEL_BASE_URL (e.g. https://mscbatch.example.org) and restart.")


def _page(lot_id: int, form: PrintForm | None = None, status: int = 200) -> Any:
    db.session.rollback()
    lot = get_lot(db.session, lot_id)
    bags = bags_of(db.session, lot_id)
    printable = lot.status in services.PRINTABLE_LOT_STATES
    bag_ids = [b.id for b in bags]
    return render_template(
        "labelling/lot.html", lot=lot, bags=bags, form=form or PrintForm(formdata=None),
        latest=services.latest_labels(db.session, bag_ids), relabel=services.relabel_after_correction(db.session, bag_ids),
        held=held_bag_ids(db.session, bag_ids), prints=services.prints_of_lot(db.session, lot_id),
        refused=services.label_refusals(db.session, lot, bags) if printable else {},
        printable=printable), status


@bp.route("/lots/<int:lot_id>")
@roles_required(*PRINTERS)
def lot_labels(lot_id: int) -> Any:
    return _page(lot_id)


@bp.route("/lots/<int:lot_id>/print", methods=["POST"])
@roles_required(*PRINTERS)
def print_lot(lot_id: int) -> Any:
    form = PrintForm()
    if not form.validate():
        return _page(lot_id, form, 422)
    try:
        printed = services.print_labels(
            db.session, current_user, lot_id, print_format=form.print_format.data or "lot",
            bag_id=form.bag_id.data, reason=form.reason.data or "", base_url=label_base_url(),
            key=current_app.config["LABEL_KEY"])
    except DomainError as error:
        show_error(form, error)
        return _page(lot_id, form, error.status)
    # a download, not a page: the form posts in its own tab (no target="_blank"), so a refusal shows there, on
    # its field, and a printed PDF is saved by the browser without leaving the labels page
    return Response(printed.pdf, mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{printed.filename}"', "X-Label-Print-Id": str(printed.print_id)})


@verify_bp.route("/v/<token>")
@public
def verify(token: str) -> Any:
    """What a phone camera opens from a label: valid or forged, DIN, product, lot status, expiry. No patient
    data (anyone can read a QR code). A forged or altered code answers 400; an unknown bag 404."""
    result = services.verify_label(db.session, token, current_app.config["LABEL_KEY"])
    status = 200
    if not result.valid:
        status = 404 if result.bag_ref and result.problem and result.problem.startswith("no bag") else 400
    signed_in = bool(getattr(current_user, "is_authenticated", False))
    response = Response(render_template("labelling/verify.html", v=result, signed_in=signed_in), status=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
