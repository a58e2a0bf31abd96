"""JSON API for trial patients, weights, the dose calculation dry run and prescriptions (in
/api/v1/openapi.json): the same services and role rules as the pages. Cells are whole numbers, volumes and
weights decimal strings."""
from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from flask_login import current_user
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from mscbatch.api.base import ROW_ID, JsonBoolean, QueryWholeNumber, WholeNumber, problems
from mscbatch.api.plain_numbers import PlainDecimal
from mscbatch.auth.access import roles_required
from mscbatch.core.dosing import DoseRefused
from mscbatch.errors import ValidationFailed
from mscbatch.extensions import db
from mscbatch.patients import course, prescriptions, services, weight_errors
from mscbatch.patients.inventory import allocation_data, calculate, plan_words
from mscbatch.patients.listing import patient_page
from mscbatch.patients.models import PATIENT_STATUSES, READERS, SEX_LABELS
from mscbatch.patients.queries import (
    RecordedWeight,
    allocations_of,
    directed_donors_of,
    get_patient,
    get_prescription,
    prescriptions_of,
    protocols,
    weight_history,
)

bp = Blueprint("patients_api", __name__, url_prefix="/api/v1/patients",
               description="Trial patients, weights, dose calculation and prescriptions")
__all__ = ["READERS", "bp"]  # READERS: patients.models, imported from here by other capabilities


class PatientSchema(Schema):
    id = WholeNumber(required=True)
    code = fields.String(required=True, metadata={"description": "Pseudonymised trial patient code"})
    protocol_id = fields.String(required=True)
    initials = fields.String(required=True)
    date_of_birth = fields.Date(required=True)
    sex = fields.String(required=True, validate=validate.OneOf(list(SEX_LABELS)))
    ward = fields.String(required=True)
    wristband_id = fields.String(required=True)
    familial_donor_id = WholeNumber(allow_none=True)
    familial_donor_code = fields.Function(
        lambda patient: patient.directed_donor_code, allow_none=True,
        metadata={"description": "Directed products (SSc-BM): the familial donor whose cells ONLY this patient receives "
                                 "(the donor names this patient's code, which the clinician typed at registration); "
                                 "null: none, no directed bag can be offered"})
    status = fields.String(required=True, validate=validate.OneOf(PATIENT_STATUSES))


def _with_donor_codes(patients: list[Any]) -> list[Any]:
    """The patients, each with its directed donor's code (queries.directed_donors_of: one query for the list)."""
    donors = directed_donors_of(db.session, patients)
    for patient in patients:
        donor = donors.get(patient.id)
        patient.directed_donor_code = donor.code if donor is not None else None
    return patients


class PatientInSchema(Schema):
    protocol_id = fields.String(required=True)
    initials = fields.String(required=True)
    date_of_birth = fields.Date(required=True)
    sex = fields.String(required=True, validate=validate.OneOf(list(SEX_LABELS)))
    ward = fields.String(required=True)
    wristband_id = fields.String(load_default="")
    code = fields.String(load_default="", metadata={
        "description": "Trial inclusion number; generated if empty. A familial donor (SSc-BM) names its recipient by "
                       "this code: only a typed code links the patient to that donor, never a generated one (which "
                       "skips every code a donor names)"})
    familial_donor_code = fields.String(load_default="", metadata={
        "description": "SSc-BM: the familial donor's code (D-...); it must name the typed patient code"})


class WeightErrorSchema(Schema):
    reason = fields.String(required=True)
    marked_by = fields.String(required=True, metadata={"description": "The full name of the clinician who marked it"})
    marked_at = fields.DateTime(required=True)


class WeightSchema(Schema):
    id = WholeNumber(required=True)
    weight_kg = PlainDecimal(as_string=True, required=True)
    measured_on = fields.Date(required=True)
    recorded_at = fields.DateTime(required=True)
    entered_in_error = fields.Nested(WeightErrorSchema, allow_none=True, required=True, metadata={
        "description": "null: the weight is in use. Else it was marked entered in error (who, when, why): it is "
                       "never used, not for the dose, nor to check a new weight, nor by the bedside check"})


class WeightErrorInSchema(Schema):
    reason = fields.String(required=True, metadata={"description": "Why the weight is wrong: 5 to 500 characters"})
    password = fields.String(required=True, load_only=True, metadata={
        "description": "E-signature: the clinician's password (the mark can lift a bedside WEIGHT CHANGED stop)"})


class WeightQuerySchema(Schema):
    # text, as a query string is: "true" or "false" (a Boolean would read "yes" or 1 as true: test_s44_api_strict_json)
    history = fields.String(load_default="false", validate=validate.OneOf(["true", "false"]), metadata={
        "description": "true: every weight recorded, those marked entered in error included (entered_in_error "
                       "set); false (default): the weights in use only"})


def _weight_out(recorded: RecordedWeight) -> dict[str, Any]:
    weight, error = recorded.weight, recorded.error
    return {"id": weight.id, "weight_kg": weight.weight_kg, "measured_on": weight.measured_on,
            "recorded_at": weight.recorded_at,
            "entered_in_error": None if error is None else {"reason": error.reason, "marked_by": recorded.marked_by,
                                                            "marked_at": error.marked_at}}


class WeightInSchema(Schema):
    weight_kg = PlainDecimal(as_string=True, required=True, label="Weight")
    measured_on = fields.Date(required=True)
    weight_confirmed = JsonBoolean(load_default=False, metadata={
        "description": "true: the clinician has checked this weight. Required (else 422 naming weight_kg) when it "
                       "differs by more than the protocol's dosing.weight_check_percent (10 %) from ANY weight of the "
                       "patient measured within dosing.weight_check_days (30) of it (a weight typed in pounds, or "
                       "walked up a little at a time); when none was measured within those days, when it differs by "
                       "as much from the patient's weight nearest in time (however old), or lies outside the "
                       "protocol's dosing.plausible_weight_kg for an adult (35 to 150 kg): a slipped decimal point. "
                       "The confirmation, with the words of the check, is the audit reason of the weight's record"})


class DoseInSchema(Schema):
    dose_level_cells_per_kg = PlainDecimal(as_string=True, load_default=None, label="Dose level",
                                           metadata={"description": "Default: the cohort's current level"})
    planned_at = fields.AwareDateTime(load_default=None, metadata={
        "description": "Default: no planned day (the bags and the weight are judged at this moment, and the dose "
                       "sheet says \"not planned\"). Not before today (the site's day): refused with 422 naming "
                       "planned_at"})


class DoseResultSchema(Schema):
    allowed = fields.Boolean(required=True)
    refusal_code = fields.String(allow_none=True, metadata={
        "description": "Why no dose can be signed; \"active_prescription\": the patient already has an active "
                       "prescription (the signature would be refused 409 in the words of refusal_reason)"})
    refusal_reason = fields.String(allow_none=True)
    refusal_later = fields.String(allow_none=True, metadata={
        "description": "When only DMSO given in the 24 hours before makes the refusal: from when a planned infusion "
                       "would no longer count it (plan the course later); else null"})
    cohort_message = fields.String(required=True)
    weight_id = WholeNumber(allow_none=True, metadata={"description": "The weight the calculation used: send it "
                                                                         "back with the prescription"})
    calculation = fields.Dict(allow_none=True, metadata={"description": (
        "The allocation: target, band, delivered, draws (bag_id, din, volume_ml...), DMSO. Bag ids and cell counts "
        "are JSON integers, as everywhere in the API (draws[].bag_id, draws[].cells, dose_level_cells_per_kg, "
        "target_cells, delivered_cells, delivered_cells_per_kg, waste_cells; low_cells and high_cells: the least "
        "and the most whole cells inside the band); volumes, weights, percentages, DMSO and endotoxin are "
        "decimal strings")})
    already_infused = fields.Dict(required=True, metadata={
        "description": "What this patient was already given under this protocol (a stopped course): cells (an "
                       "integer), cells_per_kg (a decimal string: at the weight each bag was prescribed for), words, "
                       "bags (bag_id and cells integers). Never subtracted from the calculation"})
    repeat_course_reason_required = fields.Boolean(required=True, metadata={
        "description": "true: cells were already infused under this protocol; the prescription needs "
                       "repeat_course_reason"})


_SEND_BACK = "Required: send back the {what} of the dose-calculation dry run you saw ({where})."


class PrescriptionInSchema(Schema):
    """Every value of the calculation the clinician saw is required: the signature covers that calculation."""

    dose_level_cells_per_kg = PlainDecimal(as_string=True, required=True, label="Dose level", error_messages={"required": _SEND_BACK.format(
        what="dose level", where="calculation.dose_level_cells_per_kg")})
    planned_at = fields.AwareDateTime(load_default=None, metadata={
        "description": "Default: no planned day (the bags and the weight are judged at this moment, and the dose "
                       "sheet says \"not planned\"). Not before today (the site's day): refused with 422 naming "
                       "planned_at"})
    bag_ids = fields.List(WholeNumber(validate=ROW_ID), required=True,
                          validate=validate.Length(min=1, error="Required: at least one bag, those of the dry run."),
                          error_messages={"required": _SEND_BACK.format(what="bags", where="calculation.draws[].bag_id")},
                          metadata={"description": "The bags of the dry run; refused (409) if one was taken since"})
    weight_id = WholeNumber(validate=ROW_ID, required=True,
                               error_messages={"required": _SEND_BACK.format(what="weight", where="weight_id")},
                               metadata={"description": "The weight of the dry run; refused (409) if a newer weight "
                                                        "was recorded since"})
    repeat_course_reason = fields.String(load_default="", validate=validate.Length(max=2000), metadata={
        "description": "Required (else 422) when the dry run says repeat_course_reason_required: why this patient "
                       "receives a new course on top of the cells already infused, at least 20 characters besides "
                       "the words \"repeat course\" (recorded with the signature)"})
    password = fields.String(required=True, load_only=True, metadata={"description": "E-signature"})


class PrescriptionEndInSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(max=2000), metadata={
        "description": "Why the prescription is cancelled, its course stopped or, every bag given, closed (the audit "
                       "trail's reason and the signature's meaning, e.g. \"Course stopped: grade 3 reaction\")"})
    password = fields.String(required=True, load_only=True, metadata={
        "description": "E-signature: the clinician's password, as when signing the prescription (401 if wrong, "
                       "counted towards the account's lockout; nothing is stopped)"})


class AllocationSchema(Schema):
    bag_id = WholeNumber(required=True)
    volume_ml = PlainDecimal(as_string=True, required=True)
    cells = WholeNumber(required=True)
    partial = fields.Boolean(required=True)
    conditional_release = fields.Boolean(required=True)
    active = fields.Boolean(required=True)


class PrescriptionSchema(Schema):
    id = WholeNumber(required=True)
    patient_id = WholeNumber(required=True)
    protocol_id = fields.String(required=True)
    protocol_version = fields.String(required=True)
    dose_level_cells_per_kg = WholeNumber(required=True)
    weight_kg = PlainDecimal(as_string=True, required=True)
    weight_measured_on = fields.Date(required=True)
    target_cells = WholeNumber(required=True)
    delivered_cells = WholeNumber(required=True)
    total_volume_ml = PlainDecimal(as_string=True, required=True)
    dmso_g = PlainDecimal(as_string=True, required=True)
    dmso_g_per_kg = PlainDecimal(as_string=True, required=True)
    status = fields.String(required=True)
    prescribed_at = fields.DateTime(required=True)
    cancelled_at = fields.DateTime(allow_none=True, metadata={"description": "When it was cancelled or stopped"})
    cancel_reason = fields.String(allow_none=True, metadata={"description": "Why it was cancelled or stopped"})
    allocations = fields.List(fields.Nested(AllocationSchema), required=True)
    state_words = fields.String(required=True, metadata={
        "description": "The course's state as the patient page says it: the status, or \"COMPLETED: every bag "
                       "given\" once every bag was given and its infusion ended, with \" (closed)\" once the "
                       "clinician closed it (its status is then \"stopped\", which alone would read as a course "
                       "cut short)"})


def _prescriptions(found: list[Any]) -> list[Any]:
    """The prescriptions with their allocations and their state in the patient page's words (course_summaries)."""
    courses = course.course_summaries(db.session, found)
    for p in found:
        p.allocations = allocations_of(db.session, p.id)
        p.state_words = courses[p.id].state_words + courses[p.id].closed_words
    return found


def _prescription(p: Any) -> Any:
    return _prescriptions([p])[0]


class PatientListSchema(Schema):
    items = fields.List(fields.Nested(PatientSchema), required=True)
    next_before = WholeNumber(allow_none=True, metadata={"description": "pass as `before` for the next page"})
    total = WholeNumber(required=True, metadata={"description": "every patient the filters match, on every page"})


class PatientQuerySchema(Schema):
    protocol = fields.String(load_default="", metadata={"description": "protocol id (e.g. protocol-sle-uc)"})
    q = fields.String(load_default="", validate=validate.Length(max=100), metadata={
        "description": "a part of the trial patient code, or a whole wristband id (any case and spacing)"})
    before = QueryWholeNumber(load_default=None, validate=ROW_ID,
                              metadata={"description": "keyset: patients with a smaller id"})


@bp.route("")
@bp.arguments(PatientQuerySchema, location="query")
@bp.response(200, PatientListSchema)
@problems(bp, 401, 403, 422)
@roles_required(*READERS)
def list_all(args: dict[str, Any]) -> Any:
    """The patients newest first, PAGE_SIZE a page: `total` says how many match, `next_before` the next page."""
    if args["protocol"] and args["protocol"] not in protocols():
        words = f"{args['protocol'][:60]!r} is not a protocol of the trial."
        raise ValidationFailed(f"protocol: {words}", errors={"protocol": [words]})
    page = patient_page(db.session, protocol_id=args["protocol"], search=args["q"], before=args["before"])
    return {"items": _with_donor_codes(page.patients), "next_before": page.next_before, "total": page.total}


@bp.route("", methods=["POST"])
@bp.arguments(PatientInSchema)
@bp.response(201, PatientSchema)
@problems(bp, 401, 403, 409, 422)
@roles_required("clinician")
def create(data: dict[str, Any]) -> Any:
    return _with_donor_codes([services.register_patient(db.session, current_user, services.PatientDetails(**data))])[0]


@bp.route("/<int:patient_id>")
@bp.response(200, PatientSchema)
@problems(bp, 401, 403, 404)
@roles_required(*READERS)
def get(patient_id: int) -> Any:
    return _with_donor_codes([get_patient(db.session, patient_id)])[0]


@bp.route("/<int:patient_id>/weights")
@bp.arguments(WeightQuerySchema, location="query")
@bp.response(200, WeightSchema(many=True))
@problems(bp, 401, 403, 404, 422)
@roles_required(*READERS)
def list_weights(query: dict[str, Any], patient_id: int) -> Any:
    """The patient's weights in use, newest first (the first is the one a dose uses, if recent enough); with
    `history=true`, every weight recorded, those entered in error included and marked."""
    weights = weight_history(db.session, get_patient(db.session, patient_id).id)
    return [_weight_out(w) for w in weights if query["history"] == "true" or w.error is None]


@bp.route("/<int:patient_id>/weights", methods=["POST"])
@bp.arguments(WeightInSchema)
@bp.response(201, WeightSchema)
@problems(bp, 401, 403, 404, 422)
@roles_required("clinician")
def add_weight(data: dict[str, Any], patient_id: int) -> Any:
    try:
        weight = services.record_weight(db.session, current_user, patient_id, **data)
    except ValidationFailed as error:
        raise _in_api_words(error) from None
    return _weight_out(RecordedWeight(weight, None, None))


@bp.route("/<int:patient_id>/weights/<int:weight_id>/entered-in-error", methods=["POST"])
@bp.arguments(WeightErrorInSchema)
@bp.response(201, WeightSchema)
@problems(bp, 401, 403, 404, 409, 422)
@roles_required("clinician")
def mark_weight_in_error(data: dict[str, Any], patient_id: int, weight_id: int) -> Any:
    """Mark a weight entered in error, with why, signed with the clinician's password (401 when wrong). 409 when
    it is already marked, or when a prescription stands on it (an active one: cancel it first; one whose bags were
    given: never); 422 naming `reason`."""
    weight_errors.mark_entered_in_error(db.session, current_user, patient_id, weight_id, reason=data["reason"],
                                        password=data["password"])
    return next(_weight_out(w) for w in weight_history(db.session, patient_id) if w.id == weight_id)


#: the dry run's refusal code while the patient has an active prescription (said first, as the signature does)
STANDING = "active_prescription"


#: the web form's checkbox, as the weight refusal names it, and what an API client sends instead
_TICK = f"tick \"{services.WEIGHT_CHECKED}\""
_SEND = "send \"weight_confirmed\": true"


def _in_api_words(error: ValidationFailed) -> ValidationFailed:
    """The same refusal, telling an API client the body field to send (weight_confirmed: true) rather than the web
    page's checkbox to tick, which its request has not got."""
    error.message = error.message.replace(_TICK, _SEND)
    error.args = (error.message,)
    error.errors = {name: [words.replace(_TICK, _SEND) for words in said] for name, said in error.errors.items()}
    return error


@bp.route("/<int:patient_id>/dose-calculation", methods=["POST"])
@bp.arguments(DoseInSchema)
@bp.response(200, DoseResultSchema)
@problems(bp, 401, 403, 404, 422)
@roles_required("clinician")
def dose_calculation(data: dict[str, Any], patient_id: int) -> Any:
    """Dry run: nothing is written. A refusal is a normal answer (allowed false, with the reason); so is an active
    prescription of the patient, which refuses the signature (409) in the same words (prescriptions.standing_words)."""
    patient = get_patient(db.session, patient_id)
    result = calculate(db.session, patient,
                       level_cells_per_kg=data["dose_level_cells_per_kg"], planned_at=data["planned_at"])
    standing = prescriptions.standing_words(db.session, patient)
    refusal = DoseRefused(STANDING, standing) if standing is not None else result.refusal
    return {"allowed": result.allocation is not None and refusal is None,
            "cohort_message": plan_words(result.state.message, result.state, result.infused),
            "weight_id": result.weight.id if result.weight is not None else None,
            "refusal_code": refusal.code if refusal else None,
            "refusal_reason": refusal.reason if refusal else None,
            "refusal_later": refusal.later if refusal else None,
            "calculation": _calculation(allocation_data(result.allocation)) if result.allocation else None,
            "already_infused": _already(result.already.data()) if result.already is not None else {},
            "repeat_course_reason_required": result.repeat_course}


#: the calculation's whole numbers, given as JSON integers as everywhere else in the API (a bag id, as the
#: prescription's bag_ids takes it; cells and cells per kg, as a prescription's dose_level_cells_per_kg, target_cells
#: and delivered_cells): allocation_data writes them as text, as stored with the prescription
_WHOLE = ("dose_level_cells_per_kg", "target_cells", "delivered_cells", "delivered_cells_per_kg", "waste_cells")


def _whole(text: Any, rounding: str = ROUND_FLOOR) -> Any:
    """A count written as text ("2000000") as an integer; None stays None."""
    return None if text is None else int(Decimal(str(text)).to_integral_value(rounding))


def _calculation(data: dict[str, Any]) -> dict[str, Any]:
    """The dry run's calculation with its ids and cell counts as JSON integers. The band's limits (target +/- the
    tolerance) may fall between two whole cells: low_cells is the least whole number of cells inside it (rounded
    up), high_cells the most (rounded down), so that low_cells <= delivered_cells <= high_cells says the same."""
    data = dict(data)
    for name in _WHOLE:
        if name in data:
            data[name] = _whole(data[name])
    data["low_cells"] = _whole(data["low_cells"], ROUND_CEILING)
    data["high_cells"] = _whole(data["high_cells"], ROUND_FLOOR)
    data["draws"] = [dict(draw, bag_id=int(draw["bag_id"]), cells=_whole(draw["cells"])) for draw in data["draws"]]
    data["excluded"] = [dict(bag, bag_id=int(bag["bag_id"])) for bag in data.get("excluded", [])]
    return data


def _already(data: dict[str, Any]) -> dict[str, Any]:
    """What the patient was already given, its bag ids and cells as JSON integers (cells_per_kg, a ratio at the
    weight of each prescription, stays a decimal string as the weights)."""
    if not data:
        return data
    return dict(data, cells=_whole(data["cells"]),
                bags=[dict(bag, bag_id=int(bag["bag_id"]), cells=_whole(bag["cells"])) for bag in data["bags"]])


@bp.route("/<int:patient_id>/prescriptions")
@bp.response(200, PrescriptionSchema(many=True))
@problems(bp, 401, 403, 404)
@roles_required(*READERS)
def list_prescriptions(patient_id: int) -> Any:
    return _prescriptions(prescriptions_of(db.session, get_patient(db.session, patient_id).id))


@bp.route("/<int:patient_id>/prescriptions", methods=["POST"])
@bp.arguments(PrescriptionInSchema)
@bp.response(201, PrescriptionSchema)
@problems(bp, 401, 403, 404, 409, 422)
@roles_required("clinician")
def prescribe(data: dict[str, Any], patient_id: int) -> Any:
    """Sign a prescription (password = e-signature) and allocate its bags: the dry run's level, bags and weight are
    required (422 naming each one missing); 409 if a bag was just taken or a newer weight recorded."""
    return _prescription(prescriptions.prescribe(
        db.session, current_user, data["password"], patient_id, level_cells_per_kg=data["dose_level_cells_per_kg"],
        bag_ids=data["bag_ids"], planned_at=data["planned_at"], weight_id=data["weight_id"],
        repeat_course_reason=data["repeat_course_reason"]))


@bp.route("/prescriptions/<int:prescription_id>")
@bp.response(200, PrescriptionSchema)
@problems(bp, 401, 403, 404)
@roles_required(*READERS)
def get_one_prescription(prescription_id: int) -> Any:
    return _prescription(get_prescription(db.session, prescription_id))


@bp.route("/prescriptions/<int:prescription_id>/cancel", methods=["POST"])
@bp.arguments(PrescriptionEndInSchema)
@bp.response(200, PrescriptionSchema)
@problems(bp, 401, 403, 404, 409, 422)
@roles_required("clinician")
def cancel_prescription(data: dict[str, Any], prescription_id: int) -> Any:
    """Cancel the prescription, or stop its course once a bag was given (the bags not given go back to stock), or
    close it once every bag was given: an e-signature like the prescription's (`password`; 401 if wrong, nothing
    stopped; 422 naming `password` or `reason` when missing). 409 while a bag is on its way or on the ward."""
    return _prescription(prescriptions.cancel(db.session, current_user, prescription_id, data["reason"],
                                              password=data["password"]))
