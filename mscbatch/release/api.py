"""Release JSON API: results (read, enter), verdicts and release status of a lot, and a bag's release state
(issue 6 asks it before allocating or labelling). OpenAPI from the schemas below."""
from __future__ import annotations

from typing import Any

from flask_login import current_user
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from mscbatch.api.base import WholeNumber, problems
from mscbatch.auth.access import authenticated, roles_required
from mscbatch.errors import NotFound
from mscbatch.extensions import db
from mscbatch.lots.models import Bag, Lot
from mscbatch.lots.queries import get_lot
from mscbatch.lots.services import expiry_passed
from mscbatch.release import READERS, results
from mscbatch.release.queries import release_state
from mscbatch.release.release import refusals
from mscbatch.release.specs import lot_verdict, results_of

bp = Blueprint("release_api", __name__, url_prefix="/api/v1/release", description="Release tests, verdicts, release")


class ReleaseResultSchema(Schema):
    id = WholeNumber()
    test_id = fields.String()
    value = fields.String()
    unit = fields.String()
    method = fields.String()
    analyst = fields.String()
    tested_on = fields.Date()
    instrument = fields.String()
    reagent_lot = fields.String()
    spec_id = fields.String()
    spec_version = fields.String()
    entered_at = fields.DateTime()
    changed_after_entry = fields.Boolean()
    invalidated = fields.Function(lambda r: r.invalidated_at is not None)


class ReleaseResultInSchema(Schema):
    test_id = fields.String(required=True)
    unit = fields.String(required=True, metadata={"description": "%, EU/mL, empty for a result word; a count in "
                                                                 "\"x10^6 cells\" (250 = 250 x10^6) or in whole "
                                                                 "\"cells\" (250000000)"})
    value = fields.String(required=True, metadata={"description": "a number with a decimal point (96.5; a comma "
                                                                   "is refused), a result below the method's limit "
                                                                   "as reported (\"< 0.05\", kept as typed) or the "
                                                                   "test's result word"})
    # longer is refused naming the field (422), never cut to the column (results._common checks again, stripped)
    analyst = fields.String(required=True, validate=validate.Length(max=results.ANALYST_MAX_CHARS))
    tested_on = fields.Date(required=True)
    method = fields.String(load_default="", validate=validate.Length(max=results.METHOD_MAX_CHARS))
    instrument = fields.String(load_default="", validate=validate.Length(max=results.INSTRUMENT_MAX_CHARS))
    reagent_lot = fields.String(load_default="", validate=validate.Length(max=results.REAGENT_LOT_MAX_CHARS))


class ReleaseVerdictSchema(Schema):
    test_id = fields.String()
    name = fields.String()
    status = fields.String()
    blocking = fields.Boolean()
    limit_text = fields.String()
    value_text = fields.String()
    reason = fields.String()


class ReleaseStateSchema(Schema):
    lot_status = fields.String()
    released = fields.Boolean()
    conditional = fields.Boolean()
    exceptional = fields.Boolean()
    patient_code = fields.String(allow_none=True)
    pending_tests = fields.List(fields.String())
    flag = fields.String()
    # the review page and the certificate say "EXPIRED on ...: not for clinical use" of a released lot past its
    # expiry, whose status stays "released" until someone marks it expired: a client asking before it allocates,
    # labels or gives a bag is told it too, not "released" alone
    expires_at = fields.DateTime(allow_none=True, metadata={"description": "the lot's expiry (UTC); none before "
                                                                           "cryopreservation"})
    expired = fields.Boolean(metadata={"description": "the lot's expiry has passed (or it is marked expired): not "
                                                      "for clinical use, whatever `released` says"})


class LotReleaseSchema(Schema):
    lot_id = WholeNumber()
    lot_number = fields.String()
    spec_id = fields.String()
    spec_version = fields.String()
    spec_sha256 = fields.String()
    overall = fields.String()
    blocking_reasons = fields.List(fields.String())
    refusals_for_you = fields.List(fields.String())
    verdicts = fields.List(fields.Nested(ReleaseVerdictSchema))
    release = fields.Nested(ReleaseStateSchema)


@bp.route("/lots/<int:lot_id>/results")
@bp.response(200, ReleaseResultSchema(many=True))
@problems(bp, 401, 403, 404)
@roles_required(*READERS)  # as the release review page: a nurse's client needs a bag's release state, not results
def list_results(lot_id: int) -> Any:
    return results_of(db.session, get_lot(db.session, lot_id).id)


@bp.route("/lots/<int:lot_id>/results", methods=["POST"])
@bp.arguments(ReleaseResultInSchema)
@bp.response(201, ReleaseResultSchema)
@problems(bp, 401, 403, 404, 409, 422)
@roles_required("technician")
def add_result(data: dict[str, Any], lot_id: int) -> Any:
    return results.enter_result(db.session, current_user, lot_id, results.ResultEntry(**data))


@bp.route("/lots/<int:lot_id>")
@bp.response(200, LotReleaseSchema)
@problems(bp, 401, 403, 404, 409)  # 409: the installed specification files cannot be used (release.specs)
@roles_required(*READERS)  # its verdicts hold every result value
def lot_status(lot_id: int) -> Any:
    lot = get_lot(db.session, lot_id)
    verdict = lot_verdict(db.session, lot)
    return {"lot_id": lot.id, "lot_number": lot.lot_number, "spec_id": verdict.spec_id,
            "spec_version": verdict.spec_version, "spec_sha256": verdict.spec_sha256, "overall": str(verdict.status),
            "blocking_reasons": list(verdict.blocking_reasons),
            "refusals_for_you": refusals(db.session, lot, current_user, (), verdict) if current_user.has_role("qa") else [],
            "verdicts": [dict(v.__dict__, status=str(v.status)) for v in verdict.verdicts],
            "release": _state(lot)}


@bp.route("/bags/<int:bag_id>")
@bp.response(200, ReleaseStateSchema)
@problems(bp, 401, 404)
@authenticated
def bag_state(bag_id: int) -> Any:
    bag = db.session.get(Bag, bag_id)
    if bag is None:
        raise NotFound(f"No bag with id {bag_id}.")
    return _state(get_lot(db.session, bag.lot_id))


def _state(lot: Lot) -> dict[str, Any]:
    """The lot's release state (release.queries.release_state) with its expiry beside it."""
    return {**release_state(db.session, lot).__dict__, "expires_at": lot.expires_at,
            "expired": lot.status == "expired" or expiry_passed(lot)}
