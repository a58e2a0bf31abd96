"""Patient pages: list, registration, the patient page (enrolment, weights, prescriptions, infusions later),
the enrolment check and the dose cohorts. Views parse and authorise; the services decide and write."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from mscbatch.auth.access import roles_required
from mscbatch.core.bounds import whole_number
from mscbatch.core.numbers import plain
from mscbatch.core.protocols import format_cells_per_kg
from mscbatch.errors import DomainError, NotFound
from mscbatch.extensions import db
from mscbatch.patients import cohorts, course, enrolment, services, weight_errors, withdrawal
from mscbatch.patients.forms import (
    EnrolForm,
    EscalationForm,
    PatientForm,
    WeightErrorForm,
    WeightForm,
    WithdrawForm,
    enrolment_form,
)
from mscbatch.patients.listing import patient_page
from mscbatch.patients.models import (
    ENROLLED,
    READERS,
    SEX_LABELS,
    WITHDRAWN,
    EnrolmentCheck,
    WeightMeasurement,
)
from mscbatch.patients.queries import (
    age_on,
    cohort_plans,
    decisions_of,
    directed_donor_of,
    enrolment_checks_of,
    familial_donor_of,
    get_patient,
    get_prescription,
    is_directed,
    prescriptions_of,
    protocol_name,
    protocol_of,
    protocols,
    recalls_reaching,
    signatures_for,
    weight_change_of,
    weight_history,
)
from mscbatch.site import site_today
from mscbatch.web.forms import posted_id, show_error

bp = Blueprint("patients", __name__, url_prefix="/patients")
#: the weight error form's prefix: its "reason" is not the withdrawal form's (one id per page)
WEIGHT_ERROR = "weight-error"
bp.record_once(lambda _state: protocols())  # validate every protocol file when the app starts

COMMON = dict(sexes=SEX_LABELS, dose=format_cells_per_kg)


@bp.route("")
@roles_required(*READERS)
def index() -> Any:
    """A page of the patients (listing.patient_page: the total, which of them, the next page), filtered; a filter or
    page that cannot be read is refused by name (422), never silently dropped."""
    filters = {k: request.args.get(k, "").strip() for k in ("protocol", "q")}
    errors: dict[str, str] = {}
    if filters["protocol"] and filters["protocol"] not in protocols():
        errors["protocol"] = f"protocol: {filters['protocol'][:60]!r} is not a protocol of the trial."
    raw_before, before = request.args.get("before", "").strip(), None
    if raw_before:
        before = whole_number(raw_before)
        if before is None:
            errors["before"] = f"before: {raw_before[:40]!r} is not a page of this list (a patient id, 1 or more)."
    page = None if errors else patient_page(db.session, protocol_id=filters["protocol"], search=filters["q"],
                                            before=before)
    return render_template("patients/list.html", page=page, patients=page.patients if page else [], errors=errors,
                           filters=filters, protocols=protocols(), protocol_name=protocol_name,
                           **COMMON), 422 if errors else 200


@bp.route("/new", methods=["GET", "POST"])
@roles_required("clinician")
def register() -> Any:
    form = PatientForm().set_protocols(protocols())
    status = 200
    if form.validate_on_submit():
        try:
            patient = services.register_patient(db.session, current_user, services.PatientDetails(
                protocol_id=form.protocol_id.data, code=form.code.data or "", initials=form.initials.data,
                date_of_birth=form.date_of_birth.data, sex=form.sex.data, ward=form.ward.data,
                wristband_id=form.wristband_id.data or "", familial_donor_code=form.familial_donor_code.data or ""))
        except DomainError as error:
            show_error(form, error)
            status = error.status
        else:
            flash(f"Patient {patient.code} registered. {_donor_words(patient)}Now check the enrolment criteria.",
                  "success")
            return redirect(url_for("patients.detail", patient_id=patient.id))
    elif form.errors:
        status = 422
    return render_template("patients/new.html", form=form), status


def _donor_words(patient: Any) -> str:
    """Whose cells a directed-product patient will receive, said at registration (nothing for other protocols)."""
    if not is_directed(patient):
        return ""
    donor = directed_donor_of(db.session, patient)
    if donor is None:
        return (f"No familial donor names {patient.code}: no directed bag can be offered until a donor registered "
                "for this code is linked. ")
    return (f"Familial donor {donor.code} ({(donor.relationship or 'relative').replace('_', ' ')}) names "
            f"{patient.code}: this patient will receive ONLY this donor's cells. ")


def _detail(patient_id: int, status: int = 200, **forms: Any) -> Any:
    db.session.rollback()  # a refused use case may have left expired objects; read everything afresh
    patient = get_patient(db.session, patient_id)
    checks = enrolment_checks_of(db.session, patient.id)
    prescriptions = prescriptions_of(db.session, patient.id)
    active = next((p for p in prescriptions if p.status == "active" and p.locked_at is not None), None)
    forms.setdefault("weight_form", WeightForm(formdata=None, data={"measured_on": site_today()}))
    forms.setdefault("withdraw_form", WithdrawForm(formdata=None))
    forms.setdefault("weight_error_form", WeightErrorForm(formdata=None, prefix=WEIGHT_ERROR))
    history = weight_history(db.session, patient.id)
    forms["weight_error_form"].weight_id.choices = [("", "Choose the weight…")] + [
        (str(w.id), f"{plain(w.weight.weight_kg)} kg measured on {w.weight.measured_on}")
        for w in history if w.error is None]
    withdrawn = withdrawal.withdrawal_of(db.session, patient.id)
    return render_template(
        "patients/detail.html", patient=patient, protocol=protocol_of(patient), age=age_on(patient, site_today()),
        donor=familial_donor_of(db.session, patient), weights=history, checks=checks,
        check_signatures=signatures_for(db.session, "patient_enrolment_check", [c.id for c in checks]),
        prescriptions=prescriptions, courses=course.course_summaries(db.session, prescriptions), withdrawn=withdrawn,
        recalls=recalls_reaching(db.session, patient.id),
        withdrawal_signatures=signatures_for(db.session, "patient_withdrawal", [withdrawn.id]).get(withdrawn.id, [])
        if withdrawn else [],
        weight_change=weight_change_of(db.session, active) if active is not None else None, **forms, **COMMON), status


@bp.route("/<int:patient_id>")
@roles_required(*READERS)
def detail(patient_id: int) -> Any:
    return _detail(patient_id)


@bp.route("/<int:patient_id>/weights", methods=["POST"])
@roles_required("clinician")
def add_weight(patient_id: int) -> Any:
    form = WeightForm()
    if form.validate_on_submit():
        try:
            row = services.record_weight(db.session, current_user, patient_id, weight_kg=form.weight_kg.data,
                                         measured_on=form.measured_on.data,
                                         weight_confirmed=bool(form.weight_confirmed.data))
        except DomainError as error:
            show_error(form, error)
            return _detail(patient_id, error.status, weight_form=form)
        flash(f"Weight recorded: {plain(row.weight_kg)} kg on {row.measured_on}"
              f"{' (checked by you, as recorded in the audit trail)' if form.weight_confirmed.data else ''}.",
              "success")
        return redirect(url_for("patients.detail", patient_id=patient_id, _anchor="weights"))
    return _detail(patient_id, 422, weight_form=form)


@bp.route("/<int:patient_id>/weight-errors", methods=["POST"])
@roles_required("clinician")
def mark_weight_in_error(patient_id: int) -> Any:
    form = WeightErrorForm(prefix=WEIGHT_ERROR)
    if form.validate_on_submit():
        weight_id = posted_id(form.weight_id.data)
        if not weight_id:
            form.weight_id.errors = ["Weight entered in error: choose the weight."]
            return _detail(patient_id, 422, weight_error_form=form)
        try:
            error = weight_errors.mark_entered_in_error(db.session, current_user, patient_id, weight_id,
                                                        reason=form.reason.data or "", password=form.password.data)
        except DomainError as refused:
            if refused.status == 401:  # a wrong password: said under the password, as every signature form does
                form.password.errors = [*form.password.errors, refused.message]
            else:
                show_error(form, refused)
            return _detail(patient_id, refused.status, weight_error_form=form)
        weight = db.session.get(WeightMeasurement, error.weight_id)
        flash(f"Signed: {weight_errors.weight_words(weight)} is marked entered in error. It is no longer used for "
              "the dose, nor for the checks of a new weight. Record the right weight if it is known.", "success")
        return redirect(url_for("patients.detail", patient_id=patient_id, _anchor="weights"))
    return _detail(patient_id, 422, weight_error_form=form)


@bp.route("/<int:patient_id>/withdrawal", methods=["POST"])
@roles_required("clinician")
def withdraw(patient_id: int) -> Any:
    form = WithdrawForm()
    if form.validate_on_submit():
        try:
            done = withdrawal.withdraw(db.session, current_user, form.password.data, patient_id,
                                       reason=form.reason.data, withdrawn_on=form.withdrawn_on.data)
        except DomainError as error:
            if error.status == 401:
                form.password.errors = [*form.password.errors, error.message]
            else:
                show_error(form, error)
            return _detail(patient_id, error.status, withdraw_form=form)
        words = f"Signed: {WITHDRAWN}. The bedside check now answers STOP for this patient."
        db.session.rollback()
        for prescription_id in done.stopped:  # what became of each of its bags, truly (returned ones are not restocked)
            words += f" Prescription {prescription_id}: " + course.let_go_words(
                db.session, get_prescription(db.session, prescription_id))
        if done.on_the_ward:
            words += (" Bags already sent to the ward: " + ", ".join(done.on_the_ward) + ". Tell the ward: return them to "
                      "the unit (discard a thawed one), never give them.")
        flash(words, "warning" if done.on_the_ward else "success")
        return redirect(url_for("patients.detail", patient_id=patient_id))
    return _detail(patient_id, 422, withdraw_form=form)


def _enrolment_page(patient_id: int, form: Any = None, check: EnrolmentCheck | None = None, status: int = 200,
                    enrol_form: EnrolForm | None = None) -> Any:
    db.session.rollback()
    patient = get_patient(db.session, patient_id)
    protocol = protocol_of(patient)
    checks = enrolment_checks_of(db.session, patient.id)
    check = check or (checks[0] if checks else None)
    # a refused "Check the criteria" shows the values typed, which are not those of the check shown: no signature
    unchecked = form is not None
    if form is None:  # refilled with the check's values as the form writes them ("never", "no"; not False)
        form = enrolment_form(protocol)(formdata=None, data=dict(
            enrolment.form_values(protocol, check.values) if check else {}, on_date=site_today()))
    enrol_form = enrol_form or EnrolForm(formdata=None)
    enrol_form.check_id.data = check.id if check else ""  # the signature is for the check shown, never another
    return render_template("patients/enrolment.html", patient=patient, protocol=protocol, form=form, check=check,
                           enrol_form=enrol_form, today=site_today(), unchecked=unchecked, signatures=signatures_for(
                               db.session, "patient_enrolment_check", [check.id] if check else []),
                           protocol_changed=enrolment.protocol_changed_words(check, protocol) if check else None,
                           **COMMON), status


@bp.route("/<int:patient_id>/enrolment", methods=["GET", "POST"])
@roles_required("clinician")
def enrolment_check(patient_id: int) -> Any:
    if request.method == "GET":
        return _enrolment_page(patient_id)
    protocol = protocol_of(get_patient(db.session, patient_id))
    form = enrolment_form(protocol)()
    if not form.validate_on_submit():
        return _enrolment_page(patient_id, form, status=422)
    raw = {c.parameter: form[c.parameter].data for c in protocol.criteria}
    try:
        check = enrolment.check_enrolment(db.session, current_user, patient_id, raw, form.on_date.data)
    except DomainError as error:
        show_error(form, error)
        return _enrolment_page(patient_id, form, status=error.status)
    flash(f"Enrolment check recorded: {check.status.replace('_', ' ')}.", "success" if check.status == "eligible"
          else "warning")
    return redirect(url_for("patients.enrolment_check", patient_id=patient_id, _anchor="results"))


@bp.route("/<int:patient_id>/enrol", methods=["POST"])
@roles_required("clinician")
def enrol(patient_id: int) -> Any:
    form = EnrolForm()
    if form.validate_on_submit():
        try:
            enrolment.enrol(db.session, current_user, posted_id(form.check_id.data), form.password.data,
                            patient_id=patient_id)
        except DomainError as error:
            if error.status == 401:
                form.password.errors = [*form.password.errors, error.message]
            else:
                show_error(form, error)
            return _enrolment_page(patient_id, status=error.status, enrol_form=form)
        flash(f"Signed: {ENROLLED}.", "success")
        return redirect(url_for("patients.detail", patient_id=patient_id))
    return _enrolment_page(patient_id, status=422, enrol_form=form)


def _cohorts_page(protocol_id: str, form: EscalationForm | None = None, status: int = 200) -> Any:
    db.session.rollback()
    protocol = protocols().get(protocol_id)
    if protocol is None:
        raise NotFound(f"No protocol {protocol_id!r}.")
    state, infused = cohort_plans(db.session, protocol)
    decisions = decisions_of(db.session, protocol.id)
    decision_wait = cohorts.decision_wait(db.session, protocol, state)
    if form is None:
        form = EscalationForm(formdata=None, data={"stage_id": state.current_stage_id or "", "decided_on": site_today()})
    form.set_levels(state.decision_options_cells_per_kg)
    return render_template("patients/cohorts.html", protocol=protocol, state=state, decisions=decisions, form=form,
                           infused=infused, decision_wait=decision_wait,
                           received=cohorts.received_doses(db.session, protocol),
                           signatures=signatures_for(db.session, "escalation_decision", [d.id for d in decisions]),
                           **COMMON), status


@bp.route("/cohorts/<protocol_id>")
@roles_required(*READERS)
def cohort(protocol_id: str) -> Any:
    return _cohorts_page(protocol_id)


@bp.route("/cohorts/<protocol_id>/decision", methods=["POST"])
@roles_required("clinician")
def decide(protocol_id: str) -> Any:
    form = EscalationForm()
    protocol = protocols().get(protocol_id)
    form.set_levels(protocol.dosing.dose_levels_cells_per_kg if protocol else ())
    if form.validate_on_submit():
        try:
            cohorts.record_decision(db.session, current_user, form.password.data, protocol_id=protocol_id,
                                    stage_id=form.stage_id.data, chosen_cells_per_kg=form.chosen_cells_per_kg.data,
                                    toxicity_review=form.toxicity_review.data, decided_on=form.decided_on.data)
        except DomainError as error:
            if error.status == 401:
                form.password.errors = [*form.password.errors, error.message]
            else:
                show_error(form, error)
            return _cohorts_page(protocol_id, form, error.status)
        flash("Escalation decision signed.", "success")
        return redirect(url_for("patients.cohort", protocol_id=protocol_id))
    return _cohorts_page(protocol_id, form, 422)
