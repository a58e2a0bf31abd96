"""Storage pages (the tree, adding locations, the box grid) and the identifier check page."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from mscbatch.auth.access import authenticated, roles_required
from mscbatch.errors import DomainError
from mscbatch.extensions import db
from mscbatch.lots.forms import IdentifierForm, LocationForm
from mscbatch.lots.identifiers import bag_with_din, check_identifier
from mscbatch.lots.models import STORAGE_KINDS, StorageMove
from mscbatch.lots.queries import (
    box_grid,
    container_temperature,
    get_location,
    location_path,
    move_rows,
    storage_tree,
)
from mscbatch.lots.storage import checked_location, create_location, place_words
from mscbatch.lots.views import _read
from mscbatch.web.forms import posted_id, show_error

bp = Blueprint("storage", __name__)


def _tree_page(form: LocationForm, status: int = 200) -> Any:
    db.session.rollback()
    tree = storage_tree(db.session)
    form.parent_id.choices = [(0, "— (top level: a site)")] + [
        (loc.id, f"{'  ' * depth}{place_words(loc.kind, loc.name)}") for loc, depth, _n in tree if loc.kind != "box"]
    return render_template("lots/storage.html", tree=tree, form=form, kinds=STORAGE_KINDS,
                           place_words=place_words), status


@bp.route("/storage")
@authenticated
def index() -> Any:
    return _tree_page(LocationForm(formdata=None))


@bp.route("/storage/new", methods=["POST"])
@roles_required("technician")
def create() -> Any:
    form = LocationForm()
    form.parent_id.choices = [(posted_id(request.form.get("parent_id")), "")]
    # every problem at once, each on its field: the form's, then the services' checks of what was typed
    if _read(form, lambda problems: problems.check(lambda: checked_location(
            form.kind.data, form.name.data, form.temperature_max_c.data, form.rows.data, form.columns.data))) is None:
        return _tree_page(form, 422)
    try:
        location = create_location(db.session, current_user, kind=form.kind.data, name=form.name.data,
                                   parent_id=form.parent_id.data or None, temperature_max_c=form.temperature_max_c.data,
                                   rows=form.rows.data, columns=form.columns.data)
    except DomainError as error:
        show_error(form, error)
        return _tree_page(form, error.status)
    flash(f"{place_words(location.kind, location.name)} added.", "success")
    return redirect(url_for("storage.index"))


@bp.route("/storage/<int:location_id>")
@authenticated
def box(location_id: int) -> Any:
    location = get_location(db.session, location_id)
    path = location_path(db.session, location)
    grid = box_grid(db.session, location) if location.kind == "box" else []
    occupied = sum(1 for row in grid for cell in row if cell.bag)
    moves = []
    if location.kind == "box":
        from sqlalchemy import or_, select

        moves = move_rows(db.session, list(db.session.scalars(select(StorageMove).where(or_(
            StorageMove.to_box_id == location.id, StorageMove.from_box_id == location.id))
            .order_by(StorageMove.id.desc()).limit(20))))
    return render_template("lots/box.html", location=location, path=path, grid=grid, occupied=occupied,
                           temperature=container_temperature(db.session, location), moves=moves, kinds=STORAGE_KINDS,
                           title=place_words(location.kind, location.name))


@bp.route("/identifiers")
@authenticated
def identifiers() -> Any:
    form = IdentifierForm(request.args)
    result = check_identifier(form.text.data) if request.args.get("text") else None
    bag = bag_with_din(db.session, result.parts["din"]) if result and result.valid and result.kind == "din" else None
    return (render_template("lots/identifiers.html", form=form, result=result, bag=bag),
            200 if not result or result.valid else 422)
