"""Custody JSON API for handheld scanner apps (issue 7 point 9): bearer token, OpenAPI from the schemas.

POST /api/v1/custody/scan-verify   wristband + bag code -> the bedside check (MATCHES / STOP with reasons)
POST /api/v1/custody/checks/<id>/confirm   the second person's user name and password, the scanner's password
POST /api/v1/custody/events        a hand-over: received, thawed, dispatched, returned, discarded
GET  /api/v1/custody/bags/<id>/events      the bag's custody timeline
POST /api/v1/custody/infusions     start, on the patient's wristband and the bag scanned again at the bedside
                                   (needs a confirmed check of that bag scanned in the last N minutes, of this
                                   patient)
GET  /api/v1/custody/infusions/<id>    the infusion, with STOP THE INFUSION NOW while it runs if its bag has since
                                   been found unfit (recall, late failed test, donor reopened)
POST /api/v1/custody/infusions/<id>/end, /reactions
"""
from __future__ import annotations

from typing import Any

from flask_login import current_user
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from mscbatch.api.base import DIN_14, ROW_ID, WholeNumber, problems
from mscbatch.api.plain_numbers import PlainDecimal
from mscbatch.auth.access import authenticated, roles_required
from mscbatch.core.identifiers import din_shown
from mscbatch.custody import bedside, handover, infusions, services
from mscbatch.custody.checks import BedsideResult, stop_running
from mscbatch.custody.models import PATIENT_DETAILS
from mscbatch.custody.views import INFUSION_READERS, check_valid_for, label_key
from mscbatch.errors import DomainError, ValidationFailed
from mscbatch.extensions import db
from mscbatch.interop.privacy import REDACTED, patient_custody_reasons
from mscbatch.lots.models import Bag, Lot
from mscbatch.lots.queries import get_bag
from mscbatch.patients.api import READERS as PATIENT_READERS
from mscbatch.patients.models import Patient

bp = Blueprint("custody_api", __name__, url_prefix="/api/v1/custody",
               description="Chain of custody, bedside scan verification, infusions")

API_EVENTS = ("received", "thawed", "dispatched", "returned", "discarded")


class ScanVerifyInSchema(Schema):
    wristband = fields.String(required=True, validate=validate.Length(max=120),
                              metadata={"description": "the patient's wristband identifier"})
    bag = fields.String(required=True, validate=validate.Length(max=600),
                        metadata={"description": "the bag label's QR content (URL or bare token) or the "
                                                 "14-character DIN with K"})


class FindingSchema(Schema):
    code = fields.String()
    message = fields.String()


class ScanVerifySchema(Schema):
    result = fields.String(metadata={"description": "MATCHES or STOP"})
    matches = fields.Boolean()
    check_id = WholeNumber(allow_none=True)
    failures = fields.List(fields.Nested(FindingSchema))
    notes = fields.List(fields.String())
    bag_id = WholeNumber(allow_none=True)
    din = fields.String(allow_none=True, metadata={"description": DIN_14})
    patient_code = fields.String(allow_none=True)
    post_thaw_deadline = fields.DateTime(allow_none=True)
    give_before = fields.DateTime(allow_none=True, metadata={
        "description": "a thawed bag's time to give it by: its post-thaw deadline, or its expiry when that comes first"})
    give_ml = PlainDecimal(as_string=True, allow_none=True,
                           metadata={"description": "mL the prescription draws from this bag (partial dose: less "
                                                    "than the bag holds); null on a STOP"})


class ConfirmInSchema(Schema):
    username = fields.String(required=True, metadata={"description": "the second person's user name"})
    password = fields.String(required=True, load_only=True, metadata={"description": "the second person's password"})
    checker_password = fields.String(
        required=True, load_only=True,
        metadata={"description": "the password of the person who scanned (the token's holder): both people sign the "
                                 "check, and a token alone is not a person"})


class CheckSchema(Schema):
    id = WholeNumber()
    bag_id = WholeNumber(allow_none=True)
    patient_id = WholeNumber(allow_none=True)
    result = fields.String()
    checked_by_id = WholeNumber()
    checked_at = fields.DateTime()
    second_checker_id = WholeNumber(allow_none=True)
    confirmed_at = fields.DateTime(allow_none=True)


class EventInSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(API_EVENTS))
    bag = fields.String(load_default=None, validate=validate.Length(max=600),
                        metadata={"description": "the scanned bag code (or give bag_id)"})
    bag_id = WholeNumber(load_default=None, validate=ROW_ID)
    location = fields.String(load_default="", validate=validate.Length(max=120))
    courier = fields.String(load_default="", validate=validate.Length(max=120), metadata={
        "description": "required for dispatched (422 naming it when empty): who carries the bag to the ward"})
    shipper = fields.String(load_default="", validate=validate.Length(max=120), metadata={
        "description": "required for dispatched (422 naming it when empty): the dry shipper the bag travels in"})
    temperature_logger_id = fields.String(load_default="", validate=validate.Length(max=60), metadata={
        "description": "required for dispatched (422 naming it when empty): the temperature logger travelling with "
                       "the bag"})
    reason = fields.String(load_default="", validate=validate.Length(max=2000),
                           metadata={"description": "required for returned and discarded"})


class EventSchema(Schema):
    id = WholeNumber()
    bag_id = WholeNumber()
    kind = fields.String()
    occurred_at = fields.DateTime()
    actor_id = WholeNumber()
    location = fields.String()
    scan = fields.String()
    from_status = fields.String(allow_none=True)
    to_status = fields.String(allow_none=True)
    details = fields.Dict()
    reason = fields.String()


class InfusionInSchema(Schema):
    bag_id = WholeNumber(required=True, validate=ROW_ID, metadata={"description": "the bag being started (the "
                                                                                   "bag of the confirmed check)"})
    wristband = fields.String(required=True, validate=validate.Length(max=120), metadata={"description": (
        "the patient's wristband, scanned again at the bedside just before the start (not copied from the check): "
        "the infusion starts only if it is the patient of the confirmed two-person check and the bedside check, "
        "run again on it and the bag, still MATCHES")})
    bag = fields.String(required=True, validate=validate.Length(max=600), metadata={"description": (
        "the label of the bag in hand, scanned again just before the start (not copied from the check): the QR "
        "content (URL or bare token), the 14-character DIN with K, or the label's Code 128 read. It must name "
        "bag_id (409 WRONG BAG otherwise; 422 when it cannot be read)")})


class EndInSchema(Schema):
    volume_ml = PlainDecimal(required=True, as_string=True, signed=True)  # "-0" is 0; below 0 is the service's
    reason = fields.String(load_default="", validate=validate.Length(max=infusions.END_REASON_MAX),
                           metadata={"description": "required when the volume given is outside the prescription "
                                                    f"(at most {infusions.END_REASON_MAX} characters)"})


class ReactionInSchema(Schema):
    ctcae_term = fields.String(required=True, validate=validate.Length(min=1, max=120))
    grade = WholeNumber(required=True, validate=validate.Range(1, 5))
    description = fields.String(load_default="", validate=validate.Length(max=infusions.DESCRIPTION_MAX))
    onset_at = fields.AwareDateTime(load_default=None, metadata={
        "description": "when the reaction began (with its time zone); default: now. Not in the future, not before "
                       "the infusion started (422 naming onset_at)"})


class InfusionSchema(Schema):
    id = WholeNumber()
    bag_id = WholeNumber()
    patient_id = WholeNumber()
    check_id = WholeNumber()
    started_at = fields.DateTime()
    started_by_id = WholeNumber()
    second_person_id = WholeNumber()
    ended_at = fields.DateTime(allow_none=True)
    volume_infused_ml = PlainDecimal(as_string=True, allow_none=True)


class StopSchema(Schema):
    stop_now = fields.Boolean(metadata={"description": "true: stop the infusion now, keep the bag and the line, "
                                                       "record the volume given and tell the clinician"})
    reasons = fields.List(fields.String(), metadata={"description": "why, in the words of the infusion page"})


class InfusionReadSchema(InfusionSchema):
    status = fields.String(metadata={"description": "running or ended"})
    din = fields.String(metadata={"description": DIN_14})
    lot_number = fields.String(allow_none=True)
    product_name = fields.String(allow_none=True)
    patient_code = fields.String(allow_none=True, metadata={"description": "the patient's code (an infusion is read "
                                                                           "by the readers of patient records only)"})
    stop = fields.Nested(StopSchema, metadata={"description": "checked again at each read, while the infusion runs"})


class ReactionSchema(Schema):
    id = WholeNumber()
    infusion_id = WholeNumber()
    ctcae_term = fields.String()
    grade = WholeNumber()
    description = fields.String()
    onset_at = fields.DateTime()
    recorded_at = fields.DateTime()


def _result(result: BedsideResult) -> dict[str, Any]:
    return {"result": "MATCHES" if result.matches else "STOP", "matches": result.matches,
            "check_id": result.check_id, "failures": result.failures, "notes": result.notes,
            "bag_id": result.bag.id if result.bag else None,
            "din": (result.bag.din + result.bag.check_character) if result.bag else None,
            "patient_code": result.patient.code if result.patient else None,
            "post_thaw_deadline": result.post_thaw_deadline, "give_before": result.give_before,
            "give_ml": result.give_ml if result.matches else None}  # on a STOP nothing reads as "give this"


@bp.route("/scan-verify", methods=["POST"])
@bp.arguments(ScanVerifyInSchema)
@bp.response(200, ScanVerifySchema)
@problems(bp, 401, 403, 422)
@roles_required("nurse", "clinician")
def scan_verify(data: dict[str, Any]) -> Any:
    """The bedside check in one request; the answer lists every failed check in plain words. An empty wristband
    or bag is refused (422 naming each empty field) and records nothing."""
    return _result(bedside.bedside_check(db.session, current_user, wristband=data["wristband"],
                                         bag_scan=data["bag"], label_key=label_key()))


@bp.route("/checks/<int:check_id>/confirm", methods=["POST"])
@bp.arguments(ConfirmInSchema)
@bp.response(200, CheckSchema)
@problems(bp, 401, 403, 404, 409)
@roles_required("nurse", "clinician")
def confirm(data: dict[str, Any], check_id: int) -> Any:
    """A second nurse or clinician confirms a MATCHES check with their own credentials (never the same person), and
    both people sign it: the token's holder re-enters their password (`checker_password`)."""
    try:
        return bedside.confirm_second_person(db.session, current_user, check_id, username=data["username"],
                                             password=data["password"], checker_password=data["checker_password"],
                                             label_key=label_key(), valid_for=check_valid_for())
    except DomainError as error:
        raise _in_api_names(error) from None


#: the web form's field names (custody.forms.SecondPersonForm) -> this API's body fields (ConfirmInSchema)
API_FIELDS = {"second_username": "username", "second_password": "password"}


def _in_api_names(error: DomainError) -> DomainError:
    """The same refusal, its fields named as the JSON body names them (a problem document naming second_password
    sends a client to a field its request does not have)."""
    error.errors = {API_FIELDS.get(name, name): messages for name, messages in error.errors.items()}
    error.field = API_FIELDS.get(error.field or "", error.field)
    return error


@bp.route("/events", methods=["POST"])
@bp.arguments(EventInSchema)
@bp.response(201, EventSchema)
@problems(bp, 401, 403, 404, 409, 422)
@roles_required("nurse", "technician", "qa", "clinician")
def add_event(data: dict[str, Any]) -> Any:
    """Record a hand-over; the bag state machine refuses impossible sequences (409)."""
    bag = _bag_named(data)
    where = dict(location=data["location"], scan=data.get("bag") or "")
    kind = data["kind"]
    if kind == "received":
        return handover.receive(db.session, current_user, bag.id, **where)
    if kind == "thawed":
        return handover.thaw(db.session, current_user, bag.id, **where)
    if kind == "dispatched":
        return handover.dispatch(db.session, current_user, bag.id, courier=data["courier"], shipper=data["shipper"],
                                 temperature_logger_id=data["temperature_logger_id"], **where)
    if kind == "returned":
        return handover.return_bag(db.session, current_user, bag.id, reason=data["reason"], **where)
    return handover.discard(db.session, current_user, bag.id, reason=data["reason"], **where)


def _bag_named(data: dict[str, Any]) -> Any:
    """The bag a hand-over is for: scanned (bag), or by id (bag_id). Both given must name the same bag: a client
    sending both, once out of step, would otherwise move the scanned bag while it meant the other."""
    if data.get("bag"):
        bag = services.bag_for_scan(db.session, data["bag"], label_key())
        if data.get("bag_id") and data["bag_id"] != bag.id:
            raise ValidationFailed(f"bag and bag_id name two different bags: the scan is bag {din_shown(bag)} (id "
                                   f"{bag.id}), bag_id is {data['bag_id']}. Send one of them, or the same bag in "
                                   "both. Nothing was recorded.", errors={
                                       "bag": [f"The scan is bag {din_shown(bag)} (id {bag.id})."],
                                       "bag_id": [f"bag_id {data['bag_id']} is not the bag scanned."]})
        return bag
    if data.get("bag_id"):
        return get_bag(db.session, data["bag_id"])
    raise ValidationFailed("Give the scanned bag code (bag) or the bag_id.", field="bag")


@bp.route("/bags/<int:bag_id>/events")
@bp.response(200, EventSchema(many=True))
@problems(bp, 401, 404)
@authenticated
def bag_events(bag_id: int) -> Any:
    """The bag's custody timeline, oldest first. What an event's details say of the patient (their id, the
    wristband scanned) is given to the roles that read patient records only."""
    get_bag(db.session, bag_id)
    events = services.events_of(db.session, bag_id)
    if current_user.has_role(*PATIENT_READERS):
        return events
    hidden = patient_custody_reasons(db.session, [event.id for event in events])
    return [_without_patient(event, event.id in hidden) for event in events]


def _without_patient(event: Any, patient_reason: bool) -> dict[str, Any]:
    """The event as EventSchema shows it, less the patient (its PATIENT_DETAILS dropped; the audit viewer redacts
    them instead: interop.privacy.AuditMask.details), as the bag's web page shows patients to the patient pages'
    readers only (recall.views.bag). A reason typed for the patient (a course stop that sent the bag back) is
    masked, as the audit viewer masks it."""
    shown = {name: getattr(event, name) for name in EventSchema._declared_fields}
    shown["details"] = {key: value for key, value in event.details.items() if key not in PATIENT_DETAILS}
    if patient_reason and shown.get("reason"):
        shown["reason"] = REDACTED
    return shown


@bp.route("/infusions", methods=["POST"])
@bp.arguments(InfusionInSchema)
@bp.response(201, InfusionSchema)
@problems(bp, 401, 403, 404, 409, 422)
@roles_required("nurse", "clinician")
def start_infusion(data: dict[str, Any]) -> Any:
    """Start the infusion on a fresh scan of the patient's wristband and of the bag in hand. Refused (409) when the
    bag scanned is not bag_id (WRONG BAG), without a confirmed two-person check of the bag scanned in the last N
    minutes, after a later STOP of the bag, for another patient's wristband (WRONG PATIENT) or when the check run
    again says STOP; 422 without the wristband or the bag scan, or for a bag label that cannot be read."""
    return infusions.start_infusion(db.session, current_user, data["bag_id"], wristband=data["wristband"],
                                    bag_scan=data["bag"], label_key=label_key(), valid_for=check_valid_for())


@bp.route("/infusions/<int:infusion_id>/end", methods=["POST"])
@bp.arguments(EndInSchema)
@bp.response(200, InfusionSchema)
@problems(bp, 401, 403, 404, 409, 422)
@roles_required("nurse", "clinician")
def end_infusion(data: dict[str, Any], infusion_id: int) -> Any:
    return infusions.end_infusion(db.session, current_user, infusion_id, volume_ml=data["volume_ml"],
                                  reason=data["reason"])


@bp.route("/infusions/<int:infusion_id>/reactions", methods=["POST"])
@bp.arguments(ReactionInSchema)
@bp.response(201, ReactionSchema)
@problems(bp, 401, 403, 404, 422)
@roles_required("nurse", "clinician")
def add_reaction(data: dict[str, Any], infusion_id: int) -> Any:
    return infusions.record_reaction(db.session, current_user, infusion_id, infusions.ReactionDetails(
        data["ctcae_term"], data["grade"], data["description"], onset_at=data["onset_at"]))


@bp.route("/infusions/<int:infusion_id>")
@bp.response(200, InfusionReadSchema)
@problems(bp, 401, 403, 404)
@roles_required(*INFUSION_READERS)
def get_infusion(infusion_id: int) -> Any:
    """The infusion as its web page shows it. While it runs, `stop.stop_now` is true when its bag has since been
    found unfit (the lot recalled, a late release test failed, the donor reopened): the scanner app must then say
    STOP THE INFUSION NOW with `stop.reasons`. Poll it during the infusion."""
    infusion = infusions.get_infusion(db.session, infusion_id)
    bag = db.session.get(Bag, infusion.bag_id)
    lot = db.session.get(Lot, bag.lot_id) if bag else None
    patient = db.session.get(Patient, infusion.patient_id)
    reasons = stop_running(db.session, infusion, bag, patient, label_key())
    shown = {name: getattr(infusion, name) for name in InfusionSchema._declared_fields}
    shown.update(status="running" if infusion.ended_at is None else "ended",
                 din=(bag.din + bag.check_character) if bag else None,
                 lot_number=lot.lot_number if lot else None, product_name=lot.product_name if lot else None,
                 patient_code=patient.code if patient else None, stop={"stop_now": bool(reasons), "reasons": reasons})
    return shown  # its readers (INFUSION_READERS) are the readers of patient records: the patient is shown
