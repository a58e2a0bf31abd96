"""JSON API for lots and their manufacturing record (in /api/v1/openapi.json): the same services and role
rules as the pages. Cell counts are whole cells (integers), volumes and percentages decimal strings."""
from __future__ import annotations

from typing import Any

from flask_login import current_user
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from mscbatch.api.base import DB_INT, ROW_ID, JsonBoolean, QueryWholeNumber, WholeNumber, problems
from mscbatch.api.plain_numbers import PlainDecimal
from mscbatch.auth.access import authenticated, roles_required
from mscbatch.core.culture import BagPlan
from mscbatch.core.states import LOT
from mscbatch.errors import ValidationFailed
from mscbatch.extensions import db
from mscbatch.lots import bags as bag_services
from mscbatch.lots import services, steps
from mscbatch.lots.models import LOT_STATUSES, TISSUE_UNITS
from mscbatch.lots.queries import LotFilters, bags_of, get_lot, list_lots, lot_filter_errors
from mscbatch.lots.services import SIGNED_TARGETS
from mscbatch.lots.storage_api import BagSchema, bag_data

bp = Blueprint("lots_api", __name__, url_prefix="/api/v1/lots", description="Lots, process steps, harvest and bags")



def Cells(**kwargs: Any) -> fields.Integer:  # noqa: N802 (reads as a field type)
    """Whole cells; at most a 64-bit BIGINT, so that an absurd count is a 422 instead of a database overflow."""
    return WholeNumber(validate=validate.Range(max=2**63 - 1), **kwargs)


class LotSchema(Schema):
    id = WholeNumber(required=True)
    lot_number = fields.String(required=True)
    product_id = fields.String(required=True)
    product_name = fields.String(required=True)
    product_class = fields.String(required=True)
    donor_id = WholeNumber(required=True)
    donor_gate = fields.String(required=True, attribute="gate_now", validate=validate.OneOf(
        ["approved", "pending", "ineligible"]), metadata={"description": (
            "The donor gate NOW, judged at the lot's collection day: approved | pending (no QA approval in force, "
            "e.g. reopened by new information) | ineligible. Follows the donor after the lot started.")})
    donor_gate_at_start = fields.String(required=True, attribute="donor_gate", validate=validate.OneOf(
        ["approved", "pending"]), metadata={"description": "approved | pending: what the donor gate said when the lot "
                                                            "was started (kept for the record; not the gate now)"})
    eligibility_pending = fields.Boolean(required=True, metadata={"description": (
        "True while the donor gate now is not approved (pending or ineligible): the lot cannot be released")})
    status = fields.String(required=True, validate=validate.OneOf(LOT_STATUSES))
    collection_at = fields.AwareDateTime(required=True)
    collection_site = fields.String(required=True)
    tissue_amount = PlainDecimal(as_string=True, required=True)
    tissue_unit = fields.String(required=True)
    harvested_at = fields.AwareDateTime(allow_none=True)
    harvest_total_cells = Cells(allow_none=True)
    harvest_viability_percent = PlainDecimal(as_string=True, allow_none=True)
    harvest_viable_cells = Cells(allow_none=True)
    frozen_at = fields.AwareDateTime(allow_none=True)
    expires_at = fields.AwareDateTime(allow_none=True)


class LotInSchema(Schema):
    donor_id = WholeNumber(required=True, validate=ROW_ID)
    product_id = fields.String(required=True)
    collection_at = fields.AwareDateTime(required=True, metadata={"description": "ISO 8601 with offset"})
    collection_site = fields.String(required=True)
    tissue_amount = PlainDecimal(required=True, as_string=True, metadata={"description": "at most 2 decimals"})
    tissue_unit = fields.String(required=True, validate=validate.OneOf(list(TISSUE_UNITS)))
    same_collection_as_existing = JsonBoolean(load_default=False, metadata={
        "description": "true: deliberately another lot from a collection (same donor, date and time) that already "
                       "has a lot; without it such a lot is refused (409) naming the existing lot"})


class LotListSchema(Schema):
    items = fields.List(fields.Nested(LotSchema), required=True)
    next_before = WholeNumber(allow_none=True, metadata={"description": "pass as `before` for the next page"})


class LotQuerySchema(Schema):
    status = fields.String(load_default="", validate=validate.OneOf(["", *LOT_STATUSES]))
    product = fields.String(load_default="")
    donor = fields.String(load_default="", metadata={"description": "donor code"})
    collected_from = fields.Date(load_default=None)
    collected_to = fields.Date(load_default=None)
    before = QueryWholeNumber(load_default=None, validate=ROW_ID, metadata={"description": "keyset: lots with a smaller id"})


class StepSchema(Schema):
    id = WholeNumber(required=True)
    kind = fields.String(required=True)
    passage_number = WholeNumber(allow_none=True)
    performed_on = fields.Date(required=True)
    seeded_cells = Cells(allow_none=True)
    harvested_cells = Cells(allow_none=True)
    viability_percent = PlainDecimal(as_string=True, allow_none=True)
    days_in_culture = PlainDecimal(as_string=True, allow_none=True)
    population_doublings = PlainDecimal(signed=True, as_string=True, allow_none=True)
    cumulative_pd = PlainDecimal(signed=True, as_string=True, allow_none=True)
    warnings = fields.String()
    notes = fields.String()


#: free text as long as the lot pages take it (lots/forms.py): a 5 MB reason was stored and put in the audit trail
NOTES_MAX = 2000
REASON_MAX = 500


def at_most(limit: int) -> validate.Length:
    """The length rule in words; the problem document puts the field's name before them ("reason: at most ...")."""
    return validate.Length(max=limit, error="at most {max} characters, as on the lot page; shorten it.")


#: decimals beyond a column's scale are refused (422 naming the field), never rounded
VIABILITY = {"description": "percentage, 0 to 100, at most 2 decimals"}


class PassageInSchema(Schema):
    passage_number = WholeNumber(required=True, validate=DB_INT)
    performed_on = fields.Date(required=True)
    seeded_cells = Cells(required=True)
    harvested_cells = Cells(required=True)
    viability_percent = PlainDecimal(required=True, as_string=True, metadata=VIABILITY)
    days_in_culture = PlainDecimal(load_default=None, as_string=True, metadata={
        "description": "more than 0, at most 365, at most 1 decimal"})
    notes = fields.String(load_default="", validate=at_most(NOTES_MAX))


class IsolationInSchema(Schema):
    performed_on = fields.Date(required=True)
    notes = fields.String(load_default="", validate=at_most(NOTES_MAX))


class HarvestInSchema(Schema):
    harvested_at = fields.AwareDateTime(required=True)
    total_cells = Cells(required=True)
    viability_percent = PlainDecimal(required=True, as_string=True, metadata=VIABILITY)


class BagPlanSchema(Schema):
    volume_ml = PlainDecimal(required=True, as_string=True, metadata={"description": "at most 2 decimals"})
    cells_per_ml = Cells(required=True)
    dmso_percent = PlainDecimal(required=True, as_string=True, metadata={"description": "at most 2 decimals"})


class CryoInSchema(Schema):
    frozen_at = fields.AwareDateTime(required=True)
    bags = fields.List(fields.Nested(BagPlanSchema), required=True, validate=validate.Length(min=1, max=26))
    basis = fields.String(load_default="viable", validate=validate.OneOf(["viable", "total"]))


#: the targets this unsigned endpoint moves a lot to (those a technician or QA reaches without a signature:
#: quarantine, expired); the signed dispositions (services.SIGNED_TARGETS) are QA's e-signed use cases
PLAIN_TARGETS = [target for target in LOT.states if target not in SIGNED_TARGETS
                 and any(target in moves and moves[target] & {"technician", "qa"} for moves in LOT.transitions.values())]


class _PlainTarget(validate.OneOf):
    """OneOf the plain targets, which the OpenAPI document lists as the enum; a signed disposition (released,
    conditional_release, rejected, recalled) passes on to the service, which refuses it by name (409 "needs QA's
    electronic signature", 403 for a role that may never), rather than a bare "must be one of"."""

    def __call__(self, value: Any) -> Any:
        return value if value in SIGNED_TARGETS else super().__call__(value)


class TransitionInSchema(Schema):
    target = fields.String(required=True, validate=_PlainTarget(PLAIN_TARGETS), metadata={"description": (
        "quarantine (technician: the lot leaves culture) or expired (QA). released, conditional_release, rejected "
        "and recalled are not plain state changes: QA signs them electronically (the release and recall "
        "capabilities); sent here they are refused, 409 for QA, 403 for other roles")})
    reason = fields.String(required=True, validate=at_most(REASON_MAX))


@bp.route("")
@bp.arguments(LotQuerySchema, location="query")
@bp.response(200, LotListSchema)
@problems(bp, 401)
@authenticated
def list_all(args: dict[str, Any]) -> Any:
    errors = lot_filter_errors(  # the page's rules, under the API's parameter names
        db.session, args["status"], args["product"], args["collected_from"], args["collected_to"])
    if errors:
        names = {"to": "collected_to", "from": "collected_from"}
        raise ValidationFailed("; ".join(errors.values()),
                               errors={names.get(key, key): [words] for key, words in errors.items()})
    page = list_lots(db.session, LotFilters(status=args["status"], product_id=args["product"], donor_code=args["donor"],
                                            collected_from=args["collected_from"], collected_to=args["collected_to"]),
                     before=args["before"])
    return {"items": [lot for lot, _code in page.lots], "next_before": page.next_before}


@bp.route("", methods=["POST"])
@bp.arguments(LotInSchema)
@bp.response(201, LotSchema)
@problems(bp, 401, 403, 404, 409, 422)
@roles_required("technician")
def create(data: dict[str, Any]) -> Any:
    """Start a lot (donor gate: 409 for an ineligible donor; a pending donor gives eligibility_pending). 409 when the
    donor already has a lot of the same collection date and time (unless same_collection_as_existing) and, for a
    cord donor, when the collection day differs from that of its lots (a cord is collected once)."""
    return services.create_lot(db.session, current_user, services.LotDetails(**data))


@bp.route("/<int:lot_id>")
@bp.response(200, LotSchema)
@problems(bp, 401, 404)
@authenticated
def get(lot_id: int) -> Any:
    return get_lot(db.session, lot_id)


@bp.route("/<int:lot_id>/steps")
@bp.response(200, StepSchema(many=True))
@problems(bp, 401, 404)
@authenticated
def list_steps(lot_id: int) -> Any:
    return steps.steps_of(db.session, get_lot(db.session, lot_id).id)


@bp.route("/<int:lot_id>/isolation", methods=["POST"])
@bp.arguments(IsolationInSchema)
@bp.response(201, StepSchema)
@problems(bp, 401, 403, 404, 409, 422)
@roles_required("technician")
def add_isolation(data: dict[str, Any], lot_id: int) -> Any:
    return steps.record_isolation(db.session, current_user, lot_id, **data)


@bp.route("/<int:lot_id>/passages", methods=["POST"])
@bp.arguments(PassageInSchema)
@bp.response(201, StepSchema)
@problems(bp, 401, 403, 404, 409, 422)
@roles_required("technician")
def add_passage(data: dict[str, Any], lot_id: int) -> Any:
    """Record passage Pn; 409 beyond the product's passage / cumulative PD limit, `warnings` at the warning level."""
    return steps.record_passage(db.session, current_user, lot_id, steps.PassageDetails(**data))


@bp.route("/<int:lot_id>/harvest", methods=["POST"])
@bp.arguments(HarvestInSchema)
@bp.response(200, LotSchema)
@problems(bp, 401, 403, 404, 409, 422)
@roles_required("technician")
def harvest(data: dict[str, Any], lot_id: int) -> Any:
    return steps.record_harvest(db.session, current_user, lot_id, **data)


@bp.route("/<int:lot_id>/cryopreservation", methods=["POST"])
@bp.arguments(CryoInSchema)
@bp.response(201, BagSchema(many=True))
@problems(bp, 401, 403, 404, 409, 422)
@roles_required("technician")
def cryopreserve(data: dict[str, Any], lot_id: int) -> Any:
    """Freeze into bags (422 if they would hold more cells than the harvest); each bag gets a DIN."""
    plans = [BagPlan(**bag) for bag in data["bags"]]
    rows = bag_services.cryopreserve(db.session, current_user, lot_id, frozen_at=data["frozen_at"], bags=plans,
                                     basis=data["basis"])
    return [bag_data(db.session, bag) for bag in rows]


@bp.route("/<int:lot_id>/bags")
@bp.response(200, BagSchema(many=True))
@problems(bp, 401, 404)
@authenticated
def list_bags(lot_id: int) -> Any:
    return [bag_data(db.session, bag) for bag in bags_of(db.session, get_lot(db.session, lot_id).id)]


@bp.route("/<int:lot_id>/transitions", methods=["POST"])
@bp.arguments(TransitionInSchema)
@bp.response(200, LotSchema)
@problems(bp, 401, 403, 404, 409, 422)
@roles_required("technician", "qa")
def transition(data: dict[str, Any], lot_id: int) -> Any:
    """Unsigned state changes (e.g. to quarantine); release and rejection need QA's signature (issue 5)."""
    return services.transition_lot(db.session, current_user, lot_id, data["target"], data["reason"])
