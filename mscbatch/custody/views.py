"""The ward scanning page and the bedside screens (issue 7 points 4 to 6). Views parse and authorise; the
services decide and write. The page works with plain forms; static/js/ward-scan.js adds the single scan field
(keyboard wedge: text + Enter) and the camera (vendored jsQR)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Blueprint, current_app, flash, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user
from markupsafe import Markup, escape
from sqlalchemy import select

from mscbatch.auth.access import roles_required
from mscbatch.auth.models import User
from mscbatch.core.dosing import infused_against_prescribed
from mscbatch.custody import services
from mscbatch.custody.checks import BedsideResult, Finding, evaluate, remaining, stop_running
from mscbatch.custody.forms import DispatchForm, EndForm, ReactionForm, SecondPersonForm, StartForm, WardForm
from mscbatch.custody.models import CTCAE_TERMS, GRADES, InfusionReaction
from mscbatch.custody.queries import courses_below_band, infusion_of_bag
from mscbatch.database import utcnow
from mscbatch.errors import Conflict, DomainError, ValidationFailed
from mscbatch.extensions import db
from mscbatch.interop.privacy import infusion_counts, may_read_patients
from mscbatch.lots.models import Bag, Lot
from mscbatch.lots.queries import product_of
from mscbatch.patients.models import Allocation, Patient
from mscbatch.patients.queries import allocation_given
from mscbatch.patients.views import READERS as PATIENT_READERS
from mscbatch.signatures.services import signatures_of
from mscbatch.site import site_config, site_time
from mscbatch.web.forms import show_error

bp = Blueprint("custody", __name__, url_prefix="/ward")


@bp.app_template_global()
def infusions_of_patient(patient_id: int) -> list[Any]:
    """For templates/custody/_infusions.html, included in the patient page."""
    from mscbatch.custody.queries import infusions_of_patient as query

    return query(db.session, patient_id)


@bp.app_template_global()
def infusions_of_lot(lot_id: int) -> list[Any]:
    """For templates/custody/_infusions.html, included in the lot page."""
    from mscbatch.custody.queries import infusions_of_lot as query

    return query(db.session, lot_id)


#: a code in a STOP's words (patient SLE-UC-001, lot MSC-2026-0003, donor D-2026-0002): read as one word
_CODE = re.compile(r"\b[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+\b")


@bp.app_template_filter("codes_unbroken")
def codes_unbroken(message: str) -> Markup:
    """The message, escaped, with each code kept on one line (a phone cut "SLE-UC-" / "002" at its hyphen)."""
    return Markup(_CODE.sub(lambda found: f'<span class="code">{found.group(0)}</span>', str(escape(message))))


@bp.app_template_global()
def infusion_site_tz() -> Any:
    """For templates/custody/_infusions.html: the site's time zone (local time first, UTC beside)."""
    return site_config().tz


@bp.app_template_global()
def infusion_counts_for_reader(rows: list[Any]) -> dict[str, Any] | None:
    """For templates/custody/_infusions.html: None for the readers of patient records (they see the rows), else only
    the counts (mscbatch.interop.privacy: infusions, reactions by grade): the lot page is read by every role."""
    return None if may_read_patients(current_user) else infusion_counts(rows)

BEDSIDE = ("nurse", "clinician")
#: who reads an infusion (its page, and the API's GET /api/v1/custody/infusions/<id>): the readers of patient records
INFUSION_READERS = PATIENT_READERS
#: the ward page: QA for discarding a bag returned to the unit or in stock (the bag state machine says who may what)
WARD = ("nurse", "clinician", "technician", "qa")
#: one-tap action -> (roles shown the button, label)
ACTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "receive": (("nurse", "clinician", "technician"), "Receive on the ward"),
    "thaw": (("nurse", "clinician", "technician"), "Thaw"),
    "start": (BEDSIDE, "Start infusion"),
    "end": (BEDSIDE, "End infusion"),
    "return": (("nurse", "clinician", "technician"), "Return to the unit"),
    "discard": (("nurse", "qa"), "Discard (broken, past its post-thaw limit...)"),
}


def label_key() -> str:
    return current_app.config["LABEL_KEY"]


def check_valid_for() -> timedelta:
    return timedelta(minutes=int(current_app.config.get("CUSTODY_CHECK_VALID_MINUTES", 30)))


def _ward(form: WardForm | None = None, dispatch_form: DispatchForm | None = None, status: int = 200) -> Any:
    db.session.rollback()
    return render_template("custody/ward.html", form=form or WardForm(formdata=None),
                           dispatch_form=dispatch_form or DispatchForm(formdata=None), actions=ACTIONS), status


@bp.route("")
@roles_required(*WARD)
def ward() -> Any:
    return _ward()


@dataclass(frozen=True)
class PrescribedPosition:
    number: int  # this bag's place in the prescription (its order of allocation), from 1
    count: int  # the bags the prescription draws from


def _prescribed_position(result: BedsideResult) -> PrescribedPosition | None:
    """Which of the patient's prescribed bags this is ("bag 2 of the 3 prescribed for this patient"), for a check
    that MATCHES: the lot's own numbering (bag 2 of the 4 made) says nothing of the prescription. MATCHES means a
    signed, active prescription reserves the bag for this patient, and a bag has one active allocation (UNIQUE
    active_bag_id): one statement reads the bags of that prescription, in their order of allocation."""
    if not result.matches or result.bag is None:
        return None
    prescription_id = (select(Allocation.prescription_id).where(Allocation.active_bag_id == result.bag.id)
                       .scalar_subquery())
    bag_ids = list(db.session.scalars(select(Allocation.bag_id).where(Allocation.prescription_id == prescription_id)
                                      .order_by(Allocation.id)))
    return PrescribedPosition(bag_ids.index(result.bag.id) + 1, len(bag_ids)) if result.bag.id in bag_ids else None


def _result_page(result: BedsideResult, *, confirm_form: SecondPersonForm | None = None,
                 start_form: StartForm | None = None, status: int = 200, confirmed: Any = None,
                 too_old: int | None = None, scanner: Any = None, may_sign: bool = True) -> Any:
    """`too_old`: the check's validity in minutes when it is past it (no confirm nor start form); `may_sign`: the
    person who scanned is looking (only they sign with the second person; others are told who must)."""
    signatures = signatures_of(db.session, confirmed) if confirmed is not None else []
    return render_template(
        "custody/result.html", result=result, confirm_form=confirm_form or SecondPersonForm(formdata=None),
        start_form=start_form or StartForm(formdata=None), product=product_of(result.lot) if result.lot else None,
        left=remaining(result.post_thaw_deadline), tz=site_config().tz, confirmed=confirmed,
        signatures=signatures, prescribed=_prescribed_position(result), too_old=too_old, scanner=scanner,
        may_sign=may_sign), status


#: where a refused start is kept between its POST and the STOP screen shown by GET (post-redirect-get)
START_REFUSED = "custody_start_refused"


@bp.route("/check", methods=["POST"])
@bp.route("/checks/<int:check_id>", methods=["GET"])
@roles_required(*BEDSIDE)
def check(check_id: int | None = None) -> Any:
    """POST records a check and redirects to its page; GET shows a recorded check and never records one, so that
    a reload or Back neither records a second check nor asks to send the form again."""
    if check_id is not None:
        return _recorded_page(services.get_check(db.session, check_id))
    form = WardForm()
    if not form.validate_on_submit():
        return _ward(form, status=422)
    try:
        result = services.bedside_check(db.session, current_user, wristband=form.wristband.data or "",
                                        bag_scan=form.bag.data or "", label_key=label_key())
    except DomainError as error:
        show_error(form, error)
        return _ward(form, status=error.status)
    return redirect(url_for("custody.check", check_id=result.check_id, _method="GET"), 303)


def _recorded_page(row: Any, *, confirm_form: SecondPersonForm | None = None, start_form: StartForm | None = None,
                   status: int = 200) -> Any:
    """The page of a recorded check: its recorded verdict (a STOP stays a STOP whatever is read now) and, read
    again now, the bag's facts; a MATCHES that reads STOP now is shown as STOP, since the start would refuse it.
    A caller that rolled back a refused use case reads `row` again after the rollback."""
    result = evaluate(db.session, row.wristband_scan, row.bag_scan, label_key())
    result.check_id = row.id
    if row.result != "matches":
        result.failures = [Finding(f.get("code", "stop"), f.get("message", "")) for f in row.failures] or [
            Finding("stop", "STOP.")]
        result.notes, result.give_ml = [], None
    elif not result.matches:
        result.failures.insert(0, Finding("changed_since", "Since this check was recorded, something changed: it "
                                                           "now says STOP."))
    confirmed = row if row.second_checker_id is not None else None
    valid_for = check_valid_for()
    # past its validity the confirmation and the start are refused (services): no form offers them
    too_old = int(valid_for.total_seconds() // 60) if utcnow() - row.checked_at > valid_for else None
    scanner = db.session.get(User, row.checked_by_id)
    return _result_page(result, confirm_form=confirm_form, start_form=start_form, status=status, confirmed=confirmed,
                        too_old=too_old, scanner=scanner, may_sign=row.checked_by_id == current_user.id)


@bp.route("/checks/<int:check_id>/confirm", methods=["POST"])
@roles_required(*BEDSIDE)
def confirm(check_id: int) -> Any:
    form = SecondPersonForm()
    if not form.validate_on_submit():
        return _recorded_page(services.get_check(db.session, check_id), confirm_form=form, status=422)
    try:
        services.confirm_second_person(
            db.session, current_user, check_id, username=form.second_username.data,
            password=form.second_password.data, checker_password=form.checker_password.data,
            label_key=label_key(), valid_for=check_valid_for())
    except DomainError as error:
        db.session.rollback()
        show_error(form, error)
        return _recorded_page(services.get_check(db.session, check_id), confirm_form=form, status=error.status)
    return redirect(url_for("custody.check", check_id=check_id, _method="GET"), 303)


def _start_refused_page(bag_id: int, wristband: str, message: str, status: int = 200) -> Any:
    """A refused start as a full STOP screen: the reason first, in words, and nothing to press but "Scan again"
    (the bag of the start and the wristband just scanned are shown, so a wrong bed is seen at once; a wrong bag is
    named in the reason)."""
    db.session.rollback()
    bag = db.session.get(Bag, bag_id)
    result = evaluate(db.session, wristband, bag.din + bag.check_character if bag else "", label_key())
    result.failures, result.notes, result.give_ml = [Finding("start_refused", message)], [], None
    return _result_page(result, status=status)


def _start_refused(bag_id: int, error: DomainError) -> Any:
    """Shown by GET (post-redirect-get): Back and reload show the refusal again, never "Confirm Form
    Resubmission", and never send the start again. The session cookie (signed, not encrypted) holds only the
    refusal's audit seq, never the wristband or the words (patients' codes): GET reads them back from the server.
    A refusal that was not audited (a start recorded meanwhile by someone else) keeps its words, which name no one."""
    db.session.rollback()
    recorded = services.refused_start(db.session, current_user, bag_id) \
        if isinstance(error, services.StartRefused) else None
    session[START_REFUSED] = {"bag_id": bag_id, "seq": recorded[0]} if recorded else \
        {"bag_id": bag_id, "message": error.message}
    return redirect(url_for("custody.start", bag_id=bag_id), 303)


def _confirmed_page(bag_id: int, start_form: StartForm, status: int) -> Any:
    """The confirmed check's page again, its start form showing what is missing (the wristband or the bag not
    scanned, or a bag label that cannot be read)."""
    db.session.rollback()
    check = services.latest_confirmed_check(db.session, bag_id, utcnow() - check_valid_for())
    if check is None:
        return _start_refused(bag_id, Conflict(
            "No confirmed two-person bedside check of this bag is valid now: scan the wristband and the bag, "
            "and have a second person confirm."))
    return _recorded_page(check, start_form=start_form, status=status)


@bp.route("/bags/<int:bag_id>/infusion", methods=["GET", "POST"])
@roles_required(*BEDSIDE)
def start(bag_id: int) -> Any:
    """The confirmed check's "Start infusion": the nurse scans the patient's wristband and the bag in hand again,
    at the bedside. GET shows the last refused start of this bag (its STOP screen) and records nothing."""
    if request.method == "GET":
        refused = session.get(START_REFUSED)
        if not refused or refused.get("bag_id") != bag_id:
            return redirect(url_for("custody.ward"))
        if "seq" not in refused:
            return _start_refused_page(bag_id, "", str(refused.get("message", "")))
        recorded = services.refused_start(db.session, current_user, bag_id, seq=refused.get("seq"))
        if recorded is None:  # not this person's refusal: the normal page
            return redirect(url_for("custody.ward"))
        return _start_refused_page(bag_id, recorded[1], recorded[2])
    form = StartForm()
    if not form.validate_on_submit():
        return _confirmed_page(bag_id, form, 422)
    wristband = form.wristband.data or ""
    try:
        infusion = services.start_infusion(db.session, current_user, bag_id, wristband=wristband,
                                           bag_scan=form.bag.data or "", label_key=label_key(),
                                           valid_for=check_valid_for())
    except ValidationFailed as error:
        show_error(form, error)
        return _confirmed_page(bag_id, form, error.status)
    except DomainError as error:
        return _start_refused(bag_id, error)
    session.pop(START_REFUSED, None)
    flash("Infusion started. Stay with the patient; record any reaction below.", "success")
    return redirect(url_for("custody.infusion", infusion_id=infusion.id))


@bp.route("/event", methods=["POST"])
@roles_required(*WARD)
def event() -> Any:
    form = WardForm()
    if not form.validate_on_submit():
        return _ward(form, status=422)
    action = request.form.get("action", "")
    try:
        if action not in ACTIONS:  # who may do what: the bag state machine and the services say it
            raise ValidationFailed("Choose an action.")
        bag = services.bag_for_scan(db.session, form.bag.data or "", label_key())
        kwargs = dict(location=form.location.data or "", scan=form.bag.data or "")
        if action == "receive":
            services.receive(db.session, current_user, bag.id, **kwargs)
            flash(f"Bag {bag.din} received on the ward.", "success")
        elif action == "thaw":
            services.thaw(db.session, current_user, bag.id, **kwargs)
            lot = db.session.get(Lot, bag.lot_id)
            minutes = product_of(lot).post_thaw_limit_minutes if lot else 0
            flash(f"Bag {bag.din} thawed: give it within {minutes} minutes.", "success")
        elif action == "return":
            services.return_bag(db.session, current_user, bag.id, reason=form.reason.data or "", **kwargs)
            flash(f"Bag {bag.din} returned to the unit.", "success")
        elif action == "discard":
            services.discard(db.session, current_user, bag.id, reason=form.reason.data or "", **kwargs)
            flash(f"Bag {bag.din} recorded as DISCARDED ({(form.reason.data or '').strip()}). Dispose of it as "
                  "biological waste; if it was prescribed, tell the prescriber.", "success")
        elif action == "start":
            infusion = services.start_infusion(db.session, current_user, bag.id, wristband=form.wristband.data or "",
                                               bag_scan=form.bag.data or "", label_key=label_key(),
                                               valid_for=check_valid_for())
            flash("Infusion started. Stay with the patient; record any reaction below.", "success")
            return redirect(url_for("custody.infusion", infusion_id=infusion.id))
        elif action == "end":
            infusion = infusion_of_bag(db.session, bag.id)
            if infusion is None:
                raise ValidationFailed(f"Bag {bag.din} has no infusion recorded.")
            return redirect(url_for("custody.infusion", infusion_id=infusion.id, _anchor="end"))
    except DomainError as error:
        db.session.rollback()
        show_error(form, error)
        if set(error.errors) != {"reason"}:
            # a refused step leaves no scanned code behind for the next scan to pair with (only a missing reason
            # keeps the bag, for the same step again with its reason)
            form.wristband.data = form.bag.data = ""
        return _ward(form, status=error.status)
    return redirect(url_for("custody.ward"))


@bp.route("/dispatch", methods=["POST"])
@roles_required("technician")
def dispatch() -> Any:
    form = DispatchForm()
    if form.validate_on_submit():
        try:
            bag = services.bag_for_scan(db.session, form.bag.data, label_key())
            services.dispatch(db.session, current_user, bag.id, courier=form.courier.data,
                              shipper=form.shipper.data, temperature_logger_id=form.temperature_logger_id.data,
                              location=form.location.data or "", scan=form.bag.data)
        except DomainError as error:
            db.session.rollback()
            show_error(form, error)
            return _ward(dispatch_form=form, status=error.status)
        flash(f"Bag {bag.din} dispatched.", "success")
        return redirect(url_for("custody.ward"))
    return _ward(dispatch_form=form, status=422)


def _infusion_page(infusion_id: int, status: int = 200, **forms: Any) -> Any:
    db.session.rollback()
    infusion = services.get_infusion(db.session, infusion_id)
    bag = db.session.get(Bag, infusion.bag_id)
    lot = db.session.get(Lot, bag.lot_id) if bag else None
    patient = db.session.get(Patient, infusion.patient_id)
    reactions = list(db.session.query(InfusionReaction).filter(InfusionReaction.infusion_id == infusion.id)
                     .order_by(InfusionReaction.id))
    check = services.get_check(db.session, infusion.check_id)  # the two checkers, who may not be the starter
    ids = {check.checked_by_id, check.second_checker_id, infusion.started_by_id, infusion.ended_by_id}
    names = {u.id: u.full_name for u in db.session.query(User).filter(User.id.in_([i for i in ids if i]))}
    allocation = allocation_given(db.session, bag.id) if bag else None
    stop = stop_running(db.session, infusion, bag, patient, label_key())
    forms.setdefault("end_form", EndForm(formdata=None))
    forms.setdefault("reaction_form", ReactionForm(formdata=None))
    return render_template("custody/infusion.html", infusion=infusion, check=check, bag=bag, lot=lot,
                           patient=patient, reactions=reactions, names=names, terms=CTCAE_TERMS, grades=GRADES,
                           prescribed_ml=allocation.allocation.volume_ml if allocation else None,
                           outside=_outside(infusion, allocation), tz=site_config().tz, stop=stop,
                           poll_seconds=int(current_app.config.get("CUSTODY_STOP_POLL_SECONDS", 20)),
                           course_below_band=bool(bag and courses_below_band(db.session, [bag.id])), **forms), status


def _outside(infusion: Any, allocation: Any) -> str | None:
    """"more" / "less" than prescribed, once the volume is recorded (core.dosing.infused_against_prescribed)."""
    if allocation is None or infusion.volume_infused_ml is None:
        return None
    return infused_against_prescribed(infusion.volume_infused_ml, allocation.allocation.volume_ml,
                                      services.dose_tolerance(allocation.prescription.protocol_id))


@bp.route("/infusions/<int:infusion_id>")
@roles_required(*INFUSION_READERS)
def infusion(infusion_id: int) -> Any:
    return _infusion_page(infusion_id)


@bp.route("/infusions/<int:infusion_id>/stop.json")
@roles_required(*INFUSION_READERS)
def infusion_stop(infusion_id: int) -> Any:
    """What the infusion page's script polls while it is open, so that a recall, a late failed test or a reopened
    donor that arrives during the infusion shows STOP THE INFUSION NOW without a reload (and without losing what is
    typed). A passive endpoint (auth.loading.PASSIVE_ENDPOINTS): polling does not keep the session alive."""
    row = services.get_infusion(db.session, infusion_id)
    bag = db.session.get(Bag, row.bag_id)
    reasons = stop_running(db.session, row, bag, db.session.get(Patient, row.patient_id), label_key())
    response = jsonify(stop_now=bool(reasons), reasons=reasons, ended=row.ended_at is not None)
    response.headers["Cache-Control"] = "no-store"
    return response


#: what the STOP poll answers once the session has ended (the page's script shows it and stops polling)
SIGNED_OUT_POLL = "Signed out: this page no longer watches for STOP \u2014 sign in again."


@bp.after_request
def _signed_out_poll(response: Any) -> Any:
    """The STOP poll of a session that has ended answers 401 in JSON, which the page's script reads and says, not
    the sign-in page's redirect (access.signed_out_redirect) that a script cannot read and would retry forever."""
    if request.endpoint != "custody.infusion_stop" or response.status_code not in (302, 303) \
            or current_user.is_authenticated:
        return response
    session.pop("_flashes", None)  # the sign-in page's words are for a person who opens a page
    answer = jsonify(signed_out=True, message=SIGNED_OUT_POLL)
    answer.status_code = 401
    answer.headers["Cache-Control"] = "no-store"
    return answer


@bp.route("/infusions/<int:infusion_id>/end", methods=["POST"])
@roles_required(*BEDSIDE)
def end(infusion_id: int) -> Any:
    form = EndForm()
    if form.validate_on_submit():
        try:
            services.end_infusion(db.session, current_user, infusion_id, volume_ml=form.volume_ml.data,
                                  reason=form.reason.data or "")
        except DomainError as error:
            show_error(form, error)
            return _infusion_page(infusion_id, error.status, end_form=form)
        flash("Infusion ended.", "success")
        return redirect(url_for("custody.infusion", infusion_id=infusion_id))
    return _infusion_page(infusion_id, 422, end_form=form)


@bp.route("/infusions/<int:infusion_id>/reactions", methods=["POST"])
@roles_required(*BEDSIDE)
def reaction(infusion_id: int) -> Any:
    form = ReactionForm()
    if form.validate_on_submit():
        try:
            services.record_reaction(db.session, current_user, infusion_id, services.ReactionDetails(
                form.ctcae_term.data, form.grade.data, form.description.data or "",
                onset_at=site_time(form.onset_at.data)))
        except DomainError as error:
            show_error(form, error)
            return _infusion_page(infusion_id, error.status, reaction_form=form)
        flash("Reaction recorded. Tell the clinician.", "success")
        return redirect(url_for("custody.infusion", infusion_id=infusion_id, _anchor="reactions"))
    return _infusion_page(infusion_id, 422, reaction_form=form)
