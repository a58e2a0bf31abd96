"""Reagent lot pages: the register (with expired lots marked) and one reagent lot with every cell lot that
used it (where a reagent recall starts)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user

from mscbatch.auth.access import authenticated, roles_required
from mscbatch.errors import DomainError, NotFound
from mscbatch.extensions import db
from mscbatch.lots.forms import ReagentLotCorrectionForm, ReagentLotForm
from mscbatch.lots.models import REAGENT_TYPES, ReagentLot
from mscbatch.lots.queries import lots_using_reagent, reagent_lots
from mscbatch.lots.reagent_lot_corrections import (
    correct_reagent_lot,
    reagent_lot_corrections,
    shown_fingerprint,
)
from mscbatch.lots.reagents import reagent_recalls_in_force, register_reagent_lot
from mscbatch.site import site_today
from mscbatch.web.forms import show_error

bp = Blueprint("reagents", __name__, url_prefix="/reagents")


def _list(form: ReagentLotForm, status: int = 200) -> Any:
    db.session.rollback()
    reagents = reagent_lots(db.session)
    # a reagent lot under recall is said on the register too, not only in the lot record's drop-downs (s39 re-walk)
    recalled = reagent_recalls_in_force(db.session, [r.id for r in reagents])
    return render_template("lots/reagents.html", reagents=reagents, form=form, types=REAGENT_TYPES,
                           today=site_today(), recalled=recalled), status


@bp.route("")
@authenticated
def index() -> Any:
    return _list(ReagentLotForm(formdata=None))


@bp.route("", methods=["POST"])
@roles_required("technician")
def create() -> Any:
    form = ReagentLotForm()
    if not form.validate_on_submit():
        return _list(form, 422)
    try:
        row = register_reagent_lot(db.session, current_user, reagent_type=form.reagent_type.data, name=form.name.data,
                                   supplier=form.supplier.data, lot_number=form.lot_number.data,
                                   expiry_date=form.expiry_date.data)
    except DomainError as error:
        show_error(form, error)
        return _list(form, error.status)
    flash(f"Reagent lot {row.supplier} {row.lot_number} registered.", "success")
    return redirect(url_for("reagents.index"))


@bp.route("/<int:reagent_lot_id>")
@authenticated
def detail(reagent_lot_id: int) -> Any:
    return _detail(reagent_lot_id, None)


def _detail(reagent_lot_id: int, refused: ReagentLotCorrectionForm | None, status: int = 200) -> Any:
    """The reagent lot, the cell lots that used it, its corrections and (a technician) the correction form,
    prefilled with what is registered, or `refused`: a refused correction shown with its errors."""
    db.session.rollback()
    reagent = db.session.get(ReagentLot, reagent_lot_id)
    if reagent is None:
        raise NotFound(f"No reagent lot with id {reagent_lot_id}.")
    form = refused or ReagentLotCorrectionForm(prefix="fix", formdata=None, name=reagent.name,
                                               supplier=reagent.supplier, lot_number=reagent.lot_number,
                                               expiry_date=reagent.expiry_date, shown=shown_fingerprint(reagent))
    return render_template("lots/reagent.html", reagent=reagent, uses=lots_using_reagent(db.session, reagent.id),
                           types=REAGENT_TYPES, today=site_today(), fix_form=form, fixing=refused is not None,
                           corrections=reagent_lot_corrections(db.session, reagent.id)), status


@bp.route("/<int:reagent_lot_id>/correction", methods=["POST"])
@roles_required("technician")
def correct(reagent_lot_id: int) -> Any:
    form = ReagentLotCorrectionForm(prefix="fix")
    if not form.validate_on_submit():
        return _detail(reagent_lot_id, form, 422)
    try:
        row = correct_reagent_lot(db.session, current_user, reagent_lot_id, name=form.name.data,
                                  supplier=form.supplier.data, lot_number=form.lot_number.data,
                                  expiry_date=form.expiry_date.data, reason=form.reason.data,
                                  shown=form.shown.data or "")
    except DomainError as error:
        if error.status == 404:
            raise
        if error.field == "shown":  # the page was stale: shown again as it is now, the form filled afresh
            flash(error.message, "error")
            return redirect(url_for("reagents.detail", reagent_lot_id=reagent_lot_id, _anchor="reagent-lot-fix"))
        show_error(form, error)
        return _detail(reagent_lot_id, form, error.status)
    flash(f"Reagent lot {row.supplier} {row.lot_number} corrected. The old values and your reason are in the audit "
          "trail.", "success")
    return redirect(url_for("reagents.detail", reagent_lot_id=row.id))
