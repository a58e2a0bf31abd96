"""JSON API for bags, storage and identifier parsing (in /api/v1/openapi.json)."""
from __future__ import annotations

from typing import Any

from flask_login import current_user
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import Session

from mscbatch.api.base import DB_INT, DIN_13, ROW_ID, WholeNumber, problems
from mscbatch.api.plain_numbers import PlainDecimal
from mscbatch.auth.access import authenticated, roles_required
from mscbatch.extensions import db
from mscbatch.lots.identifiers import bag_with_din, check_identifier
from mscbatch.lots.models import STORAGE_KINDS, Bag, StorageLocation
from mscbatch.lots.queries import (
    bag_status,
    box_grid,
    container_temperature,
    get_bag,
    get_location,
    get_lot,
    position_label,
    storage_tree,
)
from mscbatch.lots.storage import create_location, store_bag

bp = Blueprint("storage_api", __name__, url_prefix="/api/v1", description="Bags, storage and identifiers")


class BagSchema(Schema):
    id = WholeNumber(required=True)
    lot_id = WholeNumber(required=True)
    bag_number = WholeNumber(required=True)
    bag_count = WholeNumber(required=True)
    division = fields.String(required=True)
    din = fields.String(required=True, metadata={"description": DIN_13})
    check_character = fields.String(required=True, metadata={"description": "ISO 7064 MOD 37-2 K"})
    product_code = fields.String(required=True)
    volume_ml = PlainDecimal(as_string=True, required=True)
    cells_per_ml = WholeNumber(required=True)
    total_cells = WholeNumber(required=True)
    dmso_percent = PlainDecimal(as_string=True, required=True)
    expires_at = fields.AwareDateTime(required=True)
    status = fields.String(required=True, metadata={"description": "custody state of the bag itself"})
    effective_status = fields.String(required=True, metadata={"description": "with its lot's disposition"})
    usable = fields.Boolean(required=True)
    box_id = WholeNumber(allow_none=True)
    position = fields.String(allow_none=True)


def bag_data(session: Session, bag: Bag) -> dict[str, Any]:
    lot = get_lot(session, bag.lot_id)
    effective = bag_status(bag, lot)
    box = session.get(StorageLocation, bag.box_id) if bag.box_id else None
    data = {name: getattr(bag, name) for name in BagSchema().fields if hasattr(bag, name)}
    data.update(effective_status=effective.status, usable=effective.usable,
                position=position_label(box, bag.position) if box else None)
    return data


class LocationSchema(Schema):
    id = WholeNumber(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(list(STORAGE_KINDS)))
    name = fields.String(required=True)
    parent_id = WholeNumber(allow_none=True)
    temperature_max_c = PlainDecimal(signed=True, as_string=True, allow_none=True)
    rows = WholeNumber(allow_none=True)
    columns = WholeNumber(allow_none=True)
    depth = WholeNumber()
    bags = WholeNumber(metadata={"description": "bags stored in a box"})


class LocationInSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(list(STORAGE_KINDS)))
    name = fields.String(required=True)
    parent_id = WholeNumber(load_default=None, validate=ROW_ID)
    temperature_max_c = PlainDecimal(signed=True, load_default=None, as_string=True, metadata={
        "description": "°C, freezers and tanks: -200 to -20, at most 1 decimal"})
    rows = WholeNumber(load_default=None, validate=DB_INT)
    columns = WholeNumber(load_default=None, validate=DB_INT)


class PositionSchema(Schema):
    position = WholeNumber(required=True)
    label = fields.String(required=True)
    bag_id = WholeNumber(allow_none=True)
    din = fields.String(allow_none=True, metadata={"description": DIN_13})
    lot_number = fields.String(allow_none=True)


class BoxSchema(Schema):
    location = fields.Nested(LocationSchema, required=True)
    temperature_max_c = PlainDecimal(signed=True, as_string=True, allow_none=True)
    positions = fields.List(fields.Nested(PositionSchema), required=True)


#: as the storage page (lots/forms.py StoreBagForm): a 5 MB reason was stored
MOVE_REASON_MAX = 500


class StoreInSchema(Schema):
    box_id = WholeNumber(required=True, validate=ROW_ID)
    position = WholeNumber(required=True, validate=DB_INT, metadata={"description": "1..rows x columns, row by row"})
    reason = fields.String(load_default="", validate=validate.Length(max=MOVE_REASON_MAX, error=(
        "at most {max} characters, as on the storage page; shorten it.")), metadata={
        "description": f"required to move a stored bag; at most {MOVE_REASON_MAX} characters"})


class IdentifierInSchema(Schema):
    text = fields.String(required=True, validate=validate.Length(max=40))


class IdentifierSchema(Schema):
    text = fields.String(required=True)
    kind = fields.String(required=True)
    valid = fields.Boolean(required=True)
    message = fields.String(required=True, metadata={"description": "exactly what is wrong, or what it is"})
    parts = fields.Dict(keys=fields.String(), values=fields.String())
    bag_id = WholeNumber(allow_none=True)


@bp.route("/bags/<int:bag_id>")
@bp.response(200, BagSchema)
@problems(bp, 401, 404)
@authenticated
def get_one_bag(bag_id: int) -> Any:
    return bag_data(db.session, get_bag(db.session, bag_id))


@bp.route("/bags/<int:bag_id>/storage", methods=["POST"])
@bp.arguments(StoreInSchema)
@bp.response(200, BagSchema)
@problems(bp, 401, 403, 404, 409, 422)
@roles_required("technician")
def store(data: dict[str, Any], bag_id: int) -> Any:
    """Place or move a bag (409 if the position is occupied)."""
    store_bag(db.session, current_user, bag_id, data["box_id"], data["position"], data["reason"])
    return bag_data(db.session, get_bag(db.session, bag_id))


@bp.route("/storage")
@bp.response(200, LocationSchema(many=True))
@problems(bp, 401)
@authenticated
def tree() -> Any:
    return [dict({k: getattr(loc, k) for k in ("id", "kind", "name", "parent_id", "temperature_max_c", "rows",
                                                "columns")}, depth=depth, bags=bags)
            for loc, depth, bags in storage_tree(db.session)]


@bp.route("/storage", methods=["POST"])
@bp.arguments(LocationInSchema)
@bp.response(201, LocationSchema)
@problems(bp, 401, 403, 404, 409, 422)
@roles_required("technician")
def add_location(data: dict[str, Any]) -> Any:
    return create_location(db.session, current_user, **data)


@bp.route("/storage/<int:location_id>")
@bp.response(200, BoxSchema)
@problems(bp, 401, 404)
@authenticated
def box(location_id: int) -> Any:
    location = get_location(db.session, location_id)
    cells = [cell for row in (box_grid(db.session, location) if location.kind == "box" else []) for cell in row]
    return {"location": location, "temperature_max_c": container_temperature(db.session, location),
            "positions": [{"position": c.position, "label": c.label, "bag_id": c.bag.id if c.bag else None,
                           "din": c.bag.din if c.bag else None, "lot_number": c.lot.lot_number if c.lot else None}
                          for c in cells]}


@bp.route("/identifiers/parse", methods=["POST"])
@bp.arguments(IdentifierInSchema)
@bp.response(200, IdentifierSchema)
@problems(bp, 401, 422)
@authenticated
def parse_identifier(data: dict[str, Any]) -> Any:
    """Validate a typed or scanned DIN (with K) or product code; `valid` false with the exact problem."""
    result = check_identifier(data["text"])
    bag = bag_with_din(db.session, result.parts["din"]) if result.valid and result.kind == "din" else None
    return {"text": result.text, "kind": result.kind, "valid": result.valid, "message": result.message,
            "parts": result.parts, "bag_id": bag.id if bag else None}
