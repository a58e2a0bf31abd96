"""GET /api/v1/admin/counters: the monitoring counters for an admin's token (e.g. a monitoring system)."""
from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields

from mscbatch.api.base import WholeNumber, problems
from mscbatch.auth.access import roles_required
from mscbatch.database import utcnow
from mscbatch.extensions import db
from mscbatch.monitoring import counters

bp = Blueprint("monitoring_api", __name__, url_prefix="/api/v1/admin",
               description="Monitoring counters (admin): refused sign-ins, bedside STOPs, refused infusion starts, "
                           "refused signatures, refused bedside second persons")


class WindowsSchema(Schema):
    # rolling windows back from generated_at, never calendar days (of UTC or of the site): a count does not drop
    # to zero at midnight
    last_24_hours = WholeNumber(required=True, metadata={"description": "in the 24 hours before generated_at"})
    last_7_days = WholeNumber(required=True, metadata={"description": "in the 7 x 24 hours before generated_at "
                                                                      "(not calendar days)"})
    all_time = WholeNumber(required=True)


class CountersSchema(Schema):
    generated_at = fields.DateTime(required=True, metadata={"description": "server time (UTC) of the counts"})
    failed_logins = fields.Nested(WindowsSchema, required=True,
                                  metadata={"description": "wrong passwords, unknown user names, locked or "
                                                           "disabled accounts: at sign-in, as the bedside's second "
                                                           "person, at a password change or a token's creation"})
    bedside_refused = fields.Nested(WindowsSchema, required=True,
                                    metadata={"description": "bedside checks answered STOP"})
    infusion_start_refused = fields.Nested(
        WindowsSchema, required=True,
        metadata={"description": "infusion starts refused at the bedside (wrong patient, STOP at the start, no "
                                 "confirmed check, already infused)"})
    signature_refused = fields.Nested(WindowsSchema, required=True,
                                      metadata={"description": "e-signatures refused for a wrong password"})
    second_person_refused = fields.Nested(
        WindowsSchema, required=True,
        metadata={"description": "bedside second persons refused for who they are, not for a password: the person "
                                 "who scanned typed as the second person, or an account that is not a nurse or a "
                                 "clinician (a wrong password there counts in failed_logins)"})


@bp.route("/counters")
@bp.response(200, CountersSchema)
@problems(bp, 401, 403)
@roles_required("admin")
def get_counters() -> Any:
    now = utcnow()
    return {"generated_at": now, **counters.counts(db.session, now)}
