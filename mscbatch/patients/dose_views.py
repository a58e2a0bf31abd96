"""Dose calculation (dry run), prescription signing, the prescription page, its cancellation and the ward's
dose sheet PDF. Views parse and authorise; the services decide and write."""
from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_login import current_user

from mscbatch.auth.access import roles_required
from mscbatch.core.dosing import DoseRefused, endotoxin_words, per_kg_words
from mscbatch.core.protocols import format_cells_per_kg
from mscbatch.errors import DomainError, ValidationFailed
from mscbatch.extensions import db
from mscbatch.patients import course, prescriptions
from mscbatch.patients.dose_sheet import dose_sheet_data, render_dose_sheet
from mscbatch.patients.endotoxin import unknown_load_words
from mscbatch.patients.forms import CancelForm, PrescribeForm
from mscbatch.patients.inventory import calculate
from mscbatch.patients.models import READERS
from mscbatch.patients.queries import (
    allocations_of,
    cohort_state,
    get_patient,
    get_prescription,
    has_signed_prescription,
    prescriptions_of,
    signatures_for,
)
from mscbatch.site import site_config, site_today
from mscbatch.web.forms import posted_id, show_error

bp = Blueprint("prescriptions", __name__, url_prefix="/patients")


def planned_at_of(planned_on: date | None) -> datetime | None:
    """A planned infusion day (the site's calendar day): a bag must still be in date at the end of that day at
    the site, and the weight must be recent on that day."""
    return None if planned_on is None else datetime.combine(planned_on, time(23, 59), site_config().tz)


def _arg_level(value: str | None, patient_id: int) -> Decimal | None:
    try:
        return Decimal(value) if value else None
    except InvalidOperation:
        pass
    # a level that is not a number (a typed or crafted URL): the refusal names the field, what was sent and the
    # protocol's levels, so that the reader knows what to choose (the list beside it offers only those)
    from mscbatch.patients.models import Patient
    from mscbatch.patients.queries import protocol_of

    patient = db.session.get(Patient, patient_id)
    sent = str(value) if len(str(value)) <= 40 else str(value)[:40] + "..."
    if patient is None:
        levels = "its level in cells per kg, e.g. 2000000 for 2 x10^6/kg"
    else:
        dose_levels = protocol_of(patient).dosing.dose_levels_cells_per_kg
        levels = ", ".join(f"{(level / 1_000_000).normalize():f}" for level in dose_levels) + " x10^6 cells/kg"
    raise ValidationFailed(f"Dose level: {sent} is not one of this protocol's dose levels ({levels}).",
                           field="level") from None


def _arg_date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        raise ValidationFailed("Planned infusion date: YYYY-MM-DD.", field="planned_on") from None


def _weight_id(value: str | None) -> int:
    """The weight the calculation used (a hidden field of the dose page): required, the signature covers it."""
    weight_id = posted_id(value)
    if not weight_id:
        raise ValidationFailed("The weight the calculation used is missing: calculate the dose again.",
                               field="weight_id")
    return weight_id


#: the services name the API's body fields; the dose page's form calls them so
FORM_FIELDS = {"dose_level_cells_per_kg": "level", "planned_at": "planned_on"}


def _on_the_form(error: DomainError) -> DomainError:
    error.errors = {FORM_FIELDS.get(name, name): messages for name, messages in error.errors.items()}
    error.field = FORM_FIELDS.get(error.field or "", error.field)
    return error


def _dose_page(patient_id: int, form: PrescribeForm | None = None, status: int = 200) -> Any:
    db.session.rollback()
    patient = get_patient(db.session, patient_id)
    settings_error = None
    try:
        level = _arg_level(request.values.get("level"), patient.id)
        planned_on = _arg_date(request.values.get("planned_on"))
        result = calculate(db.session, patient, level_cells_per_kg=level, planned_at=planned_at_of(planned_on))
    except ValidationFailed as error:  # a level or date the calculation refuses: said on the page, beside its field
        settings_error, status, planned_on = _on_the_form(error), error.status, None
        result = calculate(db.session, patient)  # the page's cohort and weight; nothing to sign
        result.allocation, result.refusal = None, DoseRefused(
            "settings", "nothing was calculated: correct the " + ("planned infusion date" if settings_error.field ==
                                                                  "planned_on" else "dose level") + " above")
    if form is None:
        bag_ids = ",".join(d.bag_id for d in result.allocation.draws) if result.allocation else ""
        form = PrescribeForm(formdata=None, data={
            "level": str(int(result.level_cells_per_kg)) if result.level_cells_per_kg is not None else "",
            "bag_ids": bag_ids, "planned_on": planned_on.isoformat() if planned_on else "",
            "weight_id": str(result.weight.id) if result.weight is not None else ""})
    # the plan with every patient (the cohort page's counts), beside result.state, the plan without this patient:
    # the same plan unless this patient holds a place in it (a signed prescription)
    prescribed = has_signed_prescription(db.session, patient)
    # signing is refused while a prescription is active (prescriptions.prescribe): said before the form is filled
    active = next((p for p in prescriptions_of(db.session, patient.id) if p.status == "active"), None)
    return render_template("patients/dose.html", patient=patient, r=result, form=form, planned_on=planned_on,
                           active_prescription=active,
                           typed_planned_on=request.values.get("planned_on", "") if settings_error else "",
                           settings_error=settings_error, today=site_today(), dose=format_cells_per_kg,
                           per_kg=per_kg_words, endotoxin=endotoxin_words, unknown_load=unknown_load_words,
                           prescribed=prescribed, donor_codes=_donor_codes(result),
                           cohort=cohort_state(db.session, result.protocol) if prescribed else result.state,
                           infused=result.infused), status


def _donor_codes(result: Any) -> list[str]:
    """The donors whose lots the calculated dose is drawn from (more than one is said on the page, not refused: the
    sponsor decides whether a dose may mix donors)."""
    from mscbatch.donors.models import Donor

    if result.allocation is None:
        return []
    ids = {result.bag(d.bag_id)[1].donor_id for d in result.allocation.draws}
    return sorted(d.code for i in ids if i is not None and (d := db.session.get(Donor, i)) is not None)


@bp.route("/<int:patient_id>/dose")
@roles_required("clinician")
def dose(patient_id: int) -> Any:
    return _dose_page(patient_id)


@bp.route("/<int:patient_id>/prescriptions", methods=["POST"])
@roles_required("clinician")
def prescribe(patient_id: int) -> Any:
    form = PrescribeForm()
    if form.validate_on_submit():
        try:
            bag_ids = [posted_id(x) for x in form.bag_ids.data.split(",") if x.strip()]
            if not all(bag_ids):  # not a row id (a number beyond the database's integers was a 500)
                raise ValueError(form.bag_ids.data)
            level = _arg_level(form.level.data, patient_id)
            prescription = prescriptions.prescribe(
                db.session, current_user, form.password.data, patient_id, level_cells_per_kg=level,
                bag_ids=bag_ids, planned_at=planned_at_of(_arg_date(form.planned_on.data)),
                weight_id=_weight_id(form.weight_id.data), repeat_course_reason=form.repeat_course_reason.data)
        except (DomainError, ValueError) as error:
            if isinstance(error, ValueError):
                error = ValidationFailed("The bag list is damaged: calculate again.")
            if error.status == 401:
                form.password.errors = [*form.password.errors, error.message]
            else:
                show_error(form, _on_the_form(error))
            return _dose_page(patient_id, form, error.status)
        flash("Prescription signed; the bags are allocated to the patient.", "success")
        return redirect(url_for("prescriptions.detail", prescription_id=prescription.id))
    return _dose_page(patient_id, form, 422)


def _detail(prescription_id: int, form: CancelForm | None = None, status: int = 200) -> Any:
    db.session.rollback()
    prescription = get_prescription(db.session, prescription_id)
    data = dose_sheet_data(db.session, prescription)
    form = form or CancelForm(formdata=None)
    if data.completed and prescription.status == "active":  # "Close the completed course": a closing note
        form.for_completed_course()
    return render_template("patients/prescription.html", p=prescription, sheet=data,
                           allocations=allocations_of(db.session, prescription.id),
                           form=form, dose=format_cells_per_kg), status


@bp.route("/prescriptions/<int:prescription_id>")
@roles_required(*READERS)
def detail(prescription_id: int) -> Any:
    return _detail(prescription_id)


@bp.route("/prescriptions/<int:prescription_id>/cancel", methods=["POST"])
@roles_required("clinician")
def cancel(prescription_id: int) -> Any:
    form = CancelForm()
    if prescriptions.completed_course(db.session, get_prescription(db.session, prescription_id)):
        form.for_completed_course()  # its empty note is refused in the words of the field shown
    if form.validate_on_submit():
        try:
            prescriptions.cancel(db.session, current_user, prescription_id, form.reason.data,
                                 password=form.password.data)
        except DomainError as error:
            if error.status == 401:  # a wrong password: said beside the password field, as at the prescription
                form.password.errors = [*form.password.errors, error.message]
            else:
                show_error(form, error)
            return _detail(prescription_id, form, error.status)
        flash(_cancelled_words(prescription_id), "success")
        return redirect(url_for("prescriptions.detail", prescription_id=prescription_id))
    return _detail(prescription_id, form, 422)


def _cancelled_words(prescription_id: int) -> str:
    db.session.rollback()
    prescription = get_prescription(db.session, prescription_id)
    return course.let_go_words(db.session, prescription)


@bp.route("/prescriptions/<int:prescription_id>/dose-sheet.pdf")
@roles_required(*READERS)
def dose_sheet(prescription_id: int) -> Any:
    prescription = get_prescription(db.session, prescription_id)
    pdf = render_dose_sheet(dose_sheet_data(db.session, prescription))
    name = f"dose-sheet-{prescription.id}.pdf"
    return Response(pdf, mimetype="application/pdf", headers={"Content-Disposition": f'inline; filename="{name}"'})


__all__ = ["bp", "signatures_for"]
