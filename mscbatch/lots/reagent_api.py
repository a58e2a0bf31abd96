"""JSON API for reagent lots (in /api/v1/openapi.json): register a supplier's lot, list them, and link one to a cell
lot's manufacturing record. The same services and role rules as the pages: without these, an API client could
record a lot from collection to bags but never take it to quarantine, which needs its reagent lots
(lots.reagent_rules)."""
from __future__ import annotations

from typing import Any

from flask_login import current_user
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from mscbatch.api.base import ROW_ID, WholeNumber, problems
from mscbatch.auth.access import authenticated, roles_required
from mscbatch.extensions import db
from mscbatch.lots import reagents
from mscbatch.lots.models import ReagentUse
from mscbatch.lots.queries import get_lot, reagent_lots
from mscbatch.lots.reagent_lot_corrections import correct_reagent_lot
from mscbatch.lots.reagent_rules import REAGENT_TYPES

bp = Blueprint("reagents_api", __name__, url_prefix="/api/v1", description="Reagent lots and their use in cell lots")


class ReagentLotInSchema(Schema):
    reagent_type = fields.String(required=True, validate=validate.OneOf(list(REAGENT_TYPES)))
    name = fields.String(required=True, validate=validate.Length(max=120))
    supplier = fields.String(required=True, validate=validate.Length(max=120))
    lot_number = fields.String(required=True, validate=validate.Length(max=60))
    expiry_date = fields.Date(required=True)


class ReagentLotSchema(ReagentLotInSchema):
    id = WholeNumber(required=True)


class ReagentLotCorrectionInSchema(Schema):
    """The values to correct (each one left out is kept as registered) and the reason, kept in the audit trail."""

    name = fields.String(validate=validate.Length(max=120))
    supplier = fields.String(validate=validate.Length(max=120))
    lot_number = fields.String(validate=validate.Length(max=60))
    expiry_date = fields.Date()
    reason = fields.String(required=True, validate=validate.Length(max=500))


class ReagentUseSchema(Schema):
    id = WholeNumber(required=True)
    lot_id = WholeNumber(required=True)
    reagent_lot_id = WholeNumber(required=True)
    step_id = WholeNumber(allow_none=True)
    stage = fields.String(required=True)
    used_on = fields.Date(required=True)


class ReagentUseInSchema(Schema):
    reagent_lot_id = WholeNumber(required=True, validate=ROW_ID)
    used_on = fields.Date(required=True)
    step_id = WholeNumber(load_default=None, allow_none=True, validate=ROW_ID)


@bp.route("/reagent-lots")
@bp.response(200, ReagentLotSchema(many=True))
@problems(bp, 401)
@authenticated
def list_reagent_lots() -> Any:
    return reagent_lots(db.session)


@bp.route("/reagent-lots", methods=["POST"])
@bp.arguments(ReagentLotInSchema)
@bp.response(201, ReagentLotSchema)
@problems(bp, 401, 403, 409, 422)
@roles_required("technician")
def register(data: dict[str, Any]) -> Any:
    """Register a supplier's reagent lot once (409 naming the one registered when it exists under any type)."""
    return reagents.register_reagent_lot(db.session, current_user, **data)


@bp.route("/reagent-lots/<int:reagent_lot_id>/corrections", methods=["POST"])
@bp.arguments(ReagentLotCorrectionInSchema)
@bp.response(200, ReagentLotSchema)
@problems(bp, 401, 403, 404, 409, 422)
@roles_required("technician")
def correct(data: dict[str, Any], reagent_lot_id: int) -> Any:
    """Correct a reagent lot's name, supplier, lot number and/or expiry date typed wrong, with a reason (audited).
    409 while a recall of it is in force, when a cell lot that used it is released or closed, when the expiry would
    fall before a recorded use, or when the supplier lot is registered already; 422 when nothing changed."""
    return correct_reagent_lot(db.session, current_user, reagent_lot_id, **data)


@bp.route("/lots/<int:lot_id>/reagents")
@bp.response(200, ReagentUseSchema(many=True))
@problems(bp, 401, 404)
@authenticated
def list_uses(lot_id: int) -> Any:
    lot = get_lot(db.session, lot_id)
    return db.session.scalars(select(ReagentUse).where(ReagentUse.lot_id == lot.id).order_by(ReagentUse.id)).all()


@bp.route("/lots/<int:lot_id>/reagents", methods=["POST"])
@bp.arguments(ReagentUseInSchema)
@bp.response(201, ReagentUseSchema)
@problems(bp, 401, 403, 404, 409, 422)
@roles_required("technician")
def link(data: dict[str, Any], lot_id: int) -> Any:
    """Record that a reagent lot was used for this cell lot, at a step or (no step_id) at cryopreservation;
    refused when expired on the day of use, recalled, or the lot is past manufacturing."""
    return reagents.link_reagent(db.session, current_user, lot_id, data["reagent_lot_id"], used_on=data["used_on"],
                                 step_id=data["step_id"])
