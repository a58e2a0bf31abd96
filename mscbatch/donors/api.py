"""JSON API for donors, their screening results and their eligibility (in /api/v1/openapi.json).

Same services and same role rules as the pages; identity fields (initials, date of birth) are null for roles
that may not see them (mscbatch.donors.queries.IDENTITY_ROLES)."""
from __future__ import annotations

from typing import Any

from flask_login import current_user
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from mscbatch.api.base import QueryWholeNumber, WholeNumber, problems
from mscbatch.api.plain_numbers import PlainDecimal
from mscbatch.auth.access import authenticated, roles_required
from mscbatch.core.eligibility_markers import RESULT_VALUES
from mscbatch.donors import services
from mscbatch.donors.decisions import is_risk_assessed
from mscbatch.donors.models import DONOR_STATUSES, SOURCE_LABELS, Donor, ScreeningResult
from mscbatch.donors.queries import can_see_identity, get_donor, list_donors, results_of, screening_of
from mscbatch.extensions import db

bp = Blueprint("donors_api", __name__, url_prefix="/api/v1/donors",
               description="Donors, screening results and eligibility decisions")


class DonorSchema(Schema):
    id = WholeNumber(required=True)
    code = fields.String(required=True, metadata={"description": "Pseudonymised donor code"})
    tissue_source = fields.String(required=True, validate=validate.OneOf(list(SOURCE_LABELS)))
    rule_set_id = fields.String(required=True)
    protocol = fields.String(required=True)
    donor_type = fields.String(required=True)
    relationship = fields.String(allow_none=True)
    recipient_code = fields.String(allow_none=True, metadata={"description": "Trial patient code of the recipient"})
    initials = fields.String(allow_none=True, metadata={"description": "Identity: null unless technician or QA"})
    date_of_birth = fields.Date(allow_none=True, metadata={"description": "Identity: null unless technician or QA"})
    sex = fields.String(allow_none=True)
    weight_kg = PlainDecimal(as_string=True, allow_none=True)
    consent_signed = fields.Boolean(allow_none=True)
    consent_date = fields.Date(allow_none=True)
    social_security = fields.Boolean(allow_none=True)
    childbearing_potential = fields.Boolean(allow_none=True)
    contraception = fields.Boolean(allow_none=True)
    planned_collection_date = fields.Date(allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf(DONOR_STATUSES))


class DonorListSchema(Schema):
    items = fields.List(fields.Nested(DonorSchema), required=True)
    page = WholeNumber(required=True)
    pages = WholeNumber(required=True)
    total = WholeNumber(required=True)


class DonorQuerySchema(Schema):
    source = fields.String(load_default="", validate=validate.OneOf(["", *SOURCE_LABELS]))
    status = fields.String(load_default="", validate=validate.OneOf(["", *DONOR_STATUSES]))
    q = fields.String(load_default="", metadata={"description": "Part of a donor or recipient code"})
    page = QueryWholeNumber(load_default=1, validate=validate.Range(min=1))


class ResultSchema(Schema):
    id = WholeNumber(required=True)
    marker = fields.String(required=True)
    method = fields.String(required=True)
    result = fields.String(required=True)
    sample_date = fields.Date(required=True)
    lab_reference = fields.String(required=True)
    entered_by_id = WholeNumber(required=True)
    corrected_by_id = WholeNumber(allow_none=True)


class ResultInSchema(Schema):
    marker = fields.String(required=True, metadata={"description": "Marker id of the donor's rule set"})
    method = fields.String(load_default=None, validate=validate.OneOf(["serology", "NAT"]))
    result = fields.String(required=True, validate=validate.OneOf(RESULT_VALUES))
    sample_date = fields.Date(required=True)
    lab_reference = fields.String(required=True, validate=validate.Length(min=1, max=60))


class ReasonSchema(Schema):
    rule_id = fields.String(required=True)
    text = fields.String(required=True)
    source = fields.String(required=True)
    outcome = fields.String(required=True)
    values = fields.Dict(keys=fields.String(), values=fields.String())


class ChecklistItemSchema(Schema):
    rule_id = fields.String(required=True)
    label = fields.String(required=True)
    source = fields.String(required=True)
    colour = fields.String(required=True, validate=validate.OneOf(["green", "red", "grey"]))
    outcome = fields.String(required=True)
    detail = fields.String(required=True)


class SignatureSchema(Schema):
    printed_name = fields.String(required=True)
    signed_at = fields.DateTime(required=True)
    meaning = fields.String(required=True)


class DecisionSchema(Schema):
    id = WholeNumber(required=True)
    meaning = fields.String(required=True)
    engine_status = fields.String(required=True)
    reasons = fields.List(fields.Nested(ReasonSchema), required=True)
    comment = fields.String()
    risk_assessment = fields.String(allow_none=True, metadata={"description": (
        "The documented risk assessment an approval was signed on (EU 2006/17/EC Annex II 1.3-1.4: the screening "
        "awaited only risk assessments); null for any other decision")})
    ruleset_id = fields.String(required=True)
    ruleset_version = fields.String(required=True)
    ruleset_sha256 = fields.String(required=True)
    judged_at = fields.DateTime(required=True)
    superseded_at = fields.DateTime(allow_none=True)
    superseded_reason = fields.String(allow_none=True)
    signatures = fields.List(fields.Nested(SignatureSchema), required=True)


class SampleWindowSchema(Schema):
    applies_to = fields.String(required=True, metadata={"description": "The markers the window applies to"})
    from_days = WholeNumber(required=True, metadata={"description": "Days from the collection (negative: before)"})
    to_days = WholeNumber(required=True)
    source = fields.String(required=True)
    note = fields.String(required=True)
    to_confirm = fields.Boolean(required=True, metadata={"description": (
        "The rule file marks this value 'to confirm' (e.g. the cord maternal window: US practice, to confirm for "
        "EU protocols): it is configurable and must be confirmed for the protocol")})


class EligibilitySchema(Schema):
    donor_code = fields.String(required=True)
    donor_status = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "The engine's verdict now: eligible, "
                                                                   "ineligible or pending"})
    ruleset_id = fields.String(required=True)
    ruleset_version = fields.String(required=True)
    ruleset_sha256 = fields.String(required=True)
    reasons = fields.List(fields.Nested(ReasonSchema), required=True)
    checklist = fields.List(fields.Nested(ChecklistItemSchema), required=True)
    current_decision = fields.Nested(DecisionSchema, allow_none=True)
    decisions = fields.List(fields.Nested(DecisionSchema), required=True)
    open_lookbacks = WholeNumber(required=True)
    sample_windows = fields.List(fields.Nested(SampleWindowSchema), required=True, metadata={
        "description": "The sample windows of the donor's rule set, with their source and whether they are to confirm"})


def _donor(donor: Donor) -> dict[str, Any]:
    data = {name: getattr(donor, name) for name in DonorSchema().fields}
    if not can_see_identity(current_user):
        data["initials"] = data["date_of_birth"] = None
    return data


@bp.route("")
@bp.arguments(DonorQuerySchema, location="query")
@bp.response(200, DonorListSchema)
@problems(bp, 401)
@authenticated
def list_all(args: dict[str, Any]) -> Any:
    page = list_donors(db.session, source=args["source"], status=args["status"], search=args["q"], page=args["page"])
    return {"items": [_donor(d) for d in page.donors], "page": page.page, "pages": page.pages, "total": page.total}


@bp.route("/<int:donor_id>")
@bp.response(200, DonorSchema)
@problems(bp, 401, 404)
@authenticated
def get(donor_id: int) -> Any:
    return _donor(get_donor(db.session, donor_id))


@bp.route("/<int:donor_id>/results", methods=["GET"])
@bp.response(200, ResultSchema(many=True))
@problems(bp, 401, 404)
@authenticated
def list_results(donor_id: int) -> Any:
    return results_of(db.session, get_donor(db.session, donor_id).id)


@bp.route("/<int:donor_id>/results", methods=["POST"])
@bp.arguments(ResultInSchema)
@bp.response(201, ResultSchema)
@problems(bp, 401, 403, 404, 409, 422)
@roles_required("technician")
def add_result(data: dict[str, Any], donor_id: int) -> ScreeningResult:
    """Record a result; after QA's approval it reopens the approval (and may open a lookback). QA's decision of
    ineligibility stands until QA reopens it."""
    return services.record_result(db.session, current_user, donor_id, **data)


def _decision(record: Any) -> dict[str, Any]:
    d = record.decision
    return {"id": d.id, "meaning": d.meaning, "engine_status": d.engine_status, "reasons": d.reasons,
            "comment": d.comment, "risk_assessment": d.comment if is_risk_assessed(d) else None,
            "ruleset_id": d.ruleset_id, "ruleset_version": d.ruleset_version,
            "ruleset_sha256": d.ruleset_sha256, "judged_at": d.judged_at, "superseded_at": d.superseded_at,
            "superseded_reason": d.superseded_reason, "signatures": record.signatures}


@bp.route("/<int:donor_id>/eligibility")
@bp.response(200, EligibilitySchema)
@problems(bp, 401, 404)
@authenticated
def eligibility(donor_id: int) -> Any:
    s = screening_of(db.session, donor_id)
    history = [_decision(r) for r in s.history]
    current = next((h for h in history if h["superseded_at"] is None), None)
    e = s.evaluation
    return {"donor_code": s.donor.code, "donor_status": s.donor.status, "status": e.status,
            "ruleset_id": e.ruleset_id, "ruleset_version": e.ruleset_version, "ruleset_sha256": e.ruleset_sha256,
            "reasons": e.reasons, "checklist": e.checklist, "current_decision": current, "decisions": history,
            "open_lookbacks": sum(1 for lb in s.lookbacks if lb.closed_at is None),
            "sample_windows": s.rule_set.windows()}
