"""Label JSON API for handheld scanner apps: verify a scanned label code (token-authenticated, OpenAPI)."""
from __future__ import annotations

from typing import Any

from flask import current_app
from flask_login import current_user
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from mscbatch.api.base import DIN_13, WholeNumber, problems
from mscbatch.auth.access import authenticated
from mscbatch.errors import NotFound, ValidationFailed
from mscbatch.extensions import db
from mscbatch.labelling.services import verify_label
from mscbatch.patients.api import READERS as PATIENT_READERS

bp = Blueprint("labels_api", __name__, url_prefix="/api/v1/labels", description="Bag labels: scan verification")


class VerifyQuerySchema(Schema):
    token = fields.String(required=True, metadata={
        "description": "The scanned label code: the QR's URL (https://host/v/<DIN+K>.<signature>) or the bare token"})


class LabelVerificationSchema(Schema):
    valid = fields.Boolean(metadata={"description": "The signature is genuine and the bag exists"})
    bag_ref = fields.String(metadata={"description": "DIN followed by its check character K"})
    bag_id = WholeNumber()
    din = fields.String(metadata={"description": DIN_13})
    din_display = fields.String()
    product_name = fields.String()
    product_class = fields.String()
    product_code = fields.String()
    division_text = fields.String()
    lot_number = fields.String()
    lot_status = fields.String()
    release_flag = fields.String(allow_none=True, metadata={
        "description": "Conditional / exceptional release. An exceptional release names its one patient only to "
                       "the roles that read patients (clinician, nurse, QA); others read \"EXCEPTIONAL RELEASE: for "
                       "one named patient only\""})
    bag_status = fields.String(metadata={"description": "Effective status (lot disposition, hold, custody)"})
    expires_at = fields.DateTime(metadata={"description": "UTC"})
    expires_local = fields.String(metadata={"description": "Local time at the site"})
    expired = fields.Boolean()
    on_hold = fields.Boolean()
    hold_reason = fields.String(allow_none=True)
    usable = fields.Boolean(metadata={"description": "Released (or conditionally), no late OOS, donor not reopened, "
                                                      "not on hold, not expired, not past its post-thaw limit, not "
                                                      "infused or discarded. The bedside check does more."})
    reasons = fields.List(fields.String(), metadata={"description": "Why the bag must not be used, in plain words"})


@bp.route("/verify")
@bp.arguments(VerifyQuerySchema, location="query")
@bp.response(200, LabelVerificationSchema)
@problems(bp, 401, 404, 422)
@authenticated
def verify(args: dict[str, Any]) -> Any:
    """Verify a scanned label code: a forged or altered code is refused (422) with the reason."""
    result = verify_label(db.session, args["token"], current_app.config["LABEL_KEY"],
                          sees_patients=current_user.has_role(*PATIENT_READERS))
    if not result.valid:
        if result.problem and result.problem.startswith("no bag"):
            raise NotFound(f"Label code refused: {result.problem}.")
        raise ValidationFailed(f"Label code refused: {result.problem}.", field="token")
    return result
