"""Release pages: result entry (one test or the flow panel), corrections, the QA review page with its signed
actions, OOS handling, the QA dashboard and the certificate of analysis. Views parse and authorise; the
services decide, sign and write."""
from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user
from sqlalchemy import select

from mscbatch.auth.access import roles_required
from mscbatch.donors.forms import choices
from mscbatch.errors import Conflict, DomainError, ValidationFailed
from mscbatch.extensions import db
from mscbatch.lots.queries import get_deviation, get_lot
from mscbatch.patients.views import READERS as PATIENT_READERS
from mscbatch.release import READERS, deviations, oos, release, results
from mscbatch.release.coa import certificate_pdf, certificate_refusal, release_signature_problem
from mscbatch.release.forms import (
    UNIT_CHOICE,
    UNIT_WORDS,
    AssessmentForm,
    CorrectionForm,
    ExceptionalForm,
    OosForm,
    PanelForm,
    ReleaseForm,
    ResultForm,
    spec_test_choices,
)
from mscbatch.release.queries import dashboard, release_state
from mscbatch.release.release import RecordChanged, Refused
from mscbatch.release.review import NOTHING_TO_WAIT_FOR, review_of
from mscbatch.release.specs import spec_of_lot
from mscbatch.web.forms import posted_id, show_error

bp = Blueprint("release", __name__, url_prefix="/release")


def _entry(form: Any, test_id: str = "", value: str = "", unit: str = "") -> results.ResultEntry:
    return results.ResultEntry(test_id=test_id, value=value, unit=unit, analyst=form.analyst.data or "",
                               tested_on=form.tested_on.data, method=form.method.data or "",
                               instrument=form.instrument.data or "", reagent_lot=form.reagent_lot.data or "")


def _upload(form: Any) -> results.Upload | None:
    """The file sent with the result, written in the result's own transaction (results.enter_result): a refused
    file leaves nothing recorded, so the technician's retry does not record the result twice."""
    upload = form.attachment.data
    if upload and getattr(upload, "filename", ""):
        return results.Upload(upload.filename, upload.mimetype or "", upload.read())
    return None


def _page(lot_id: int, status: int = 200, chosen_test: str = "", refused: Refused | None = None,
          posted_seen: str = "", **forms: Any) -> Any:
    """The review page; `chosen_test`: a test the page was opened for ("enter the result" of a row), chosen in the
    one-result form with its own unit; `refused`: a signature refused for several reasons, listed in the release
    form (_signed); `posted_seen`: the fingerprint a refused signature form was posted with (_signed)."""
    db.session.rollback()  # a refused use case may have left expired objects: read afresh
    review = review_of(db.session, lot_id, current_user)
    changed_since = None
    if posted_seen and review.fingerprint and posted_seen != review.fingerprint:
        # refused for another reason (a text too long, a wrong password) while the record changed under the page:
        # the page is shown again with the record as it is now, so it says so first, naming what changed
        try:
            release.check_seen(db.session, review.lot, posted_seen)
        except RecordChanged as changed:
            changed_since = changed.message
    if "result_form" not in forms:
        test = next((t for t in review.spec.tests if t.id == chosen_test), None)
        chosen = {} if test is None else {"test_id": test.id, "unit": UNIT_CHOICE.get(test.unit, "")}
        forms["result_form"] = ResultForm(prefix="result", formdata=None, data=chosen)
    forms["result_form"].test_id.choices = spec_test_choices(review.spec.tests)
    forms.setdefault("panel_form", PanelForm(prefix="panel", formdata=None))
    forms.setdefault("release_form", ReleaseForm(prefix="release", formdata=None))
    forms["release_form"].conditional_tests.choices = choices([(t.id, t.name) for t in review.spec.conditional_release_tests])
    forms.setdefault("oos_form", OosForm(prefix="oos", formdata=None))
    # the form of every open investigation but the one posted (refused): blank, with ids of its own
    forms.setdefault("oos_blank", {o.id: _blank_oos_form(o.id) for o in review.open_oos})
    forms.setdefault("exceptional_form", ExceptionalForm(prefix="exceptional", formdata=None))
    forms.setdefault("assess_form", AssessmentForm(prefix="assess", formdata=None))
    if review.next_to_assess is not None:  # before release: release may proceed or reject; after: stays or recall
        forms["assess_form"].outcome.choices = choices(list(review.outcomes_for(review.next_to_assess).items()))
    # the OOS section's words (oos.confirm_oos decides the same way): each open investigation's confirm button, and
    # a closed one's conclusion when its status alone does not say it (supplied under exceptional release)
    forms.setdefault("oos_confirm_words", {o.id: oos.confirm_words(db.session, o, review.lot) for o in review.open_oos})
    forms.setdefault("oos_not_oos", {o.id: oos.not_oos_words(db.session, o) for o in review.open_oos
                                     if oos.not_oos_refusal(db.session, o) is None})
    forms.setdefault("oos_conclusions", {o.id: words for o in review.oos
                                         if (words := oos.conclusion_words(db.session, o)) is not None})
    problem = release_signature_problem(db.session, review)
    return render_template("release/review.html", r=review, lot=review.lot, nothing_to_wait_for=NOTHING_TO_WAIT_FOR,
                           signature_broken=certificate_refusal(problem) if problem is not None else None,
                           refused=refused, changed_since=changed_since, sees_patients=current_user.has_role(*PATIENT_READERS), **forms), status


def _blank_oos_form(oos_id: int) -> OosForm:
    """The close form of an open investigation other than the one posted (templates/release/review.html): blank,
    its fields' ids its own ("oos7-investigation"), so that the page's error summary links to the refused form's
    fields ("oos-investigation"), never to another investigation's."""
    form = OosForm(prefix="oos", formdata=None)
    for one in form:
        if one.type not in ("CSRFTokenField", "HiddenField"):
            one.id = f"oos{oos_id}-{one.short_name}"
            one.label.field_id = one.id
    return form


@bp.route("/lots/<int:lot_id>")
@roles_required(*READERS)
def review(lot_id: int) -> Any:
    return _page(lot_id, chosen_test=request.args.get("test", ""))


def _unit_chosen(lot_id: int, form: Any) -> None:
    """The unit is there to catch a unit slip, so it is chosen, never assumed: left at "choose the unit" the result
    is refused, naming the unit the chosen test is reported in. (The API's `unit` is required and "" is a result
    word there: release.api.)"""
    if form.unit.data:
        return
    try:
        test = spec_of_lot(db.session, get_lot(db.session, lot_id)).test(form.test_id.data or "")
    except (DomainError, KeyError):  # no test chosen (or none of the lot's): said beside the test too
        unit = "Unit: choose the unit of the result, as the report gives it. Nothing was recorded."
        raise ValidationFailed(unit, errors={"test_id": ["Test: choose the test of this result."],
                                             "unit": [unit]}) from None
    raise ValidationFailed(f"Unit: choose the unit of the result, as the report gives it. {test.name} is reported "
                           f"in {UNIT_WORDS.get(test.unit, test.unit)}. Nothing was recorded.", field="unit")


@bp.route("/lots/<int:lot_id>/results", methods=["POST"])
@roles_required("technician")
def add_result(lot_id: int) -> Any:
    form = ResultForm(prefix="result")
    form.test_id.choices = choices([(request.form.get("result-test_id", ""), "")])
    try:
        _unit_chosen(lot_id, form)
        made = results.enter_result(db.session, current_user, lot_id,
                                    _entry(form, form.test_id.data, form.value.data or "", form.unit.data or ""),
                                    attachment=_upload(form))
    except DomainError as error:
        show_error(form, error)
        return _page(lot_id, error.status, result_form=form)
    _flash_recorded("Result recorded.", [made])
    return redirect(url_for("release.review", lot_id=lot_id) + "#results")


def _flash_recorded(done: str, made: list[Any]) -> None:
    """The confirmation of results entered; a result out of specification is said plainly, with the OOS it opened
    (release.results: a failing blocking result opens one in the same transaction), never as a plain "recorded"."""
    from mscbatch.release.models import OosInvestigation
    from mscbatch.release.review import Review

    ids = [r.id for r in made]
    opened = {o.result_id: o for o in db.session.scalars(
        select(OosInvestigation).where(OosInvestigation.result_id.in_(ids)))} if ids else {}
    if not opened:
        flash(done, "success")
        return
    spec = spec_of_lot(db.session, get_lot(db.session, made[0].lot_id))
    if len(made) > 1:  # the panel: recorded, then each marker out of specification
        flash(done, "success")
    for result in made:
        oos_opened = opened.get(result.id)
        if oos_opened is None:
            continue
        test = spec.test(result.test_id)
        status = ("recalled after its conditional release" if get_lot(db.session, result.lot_id).status == "recalled"
                  else "conditionally released")
        then = (f"the lot is {status}: QA investigates now, and the lot's page lists the patients who "
                "received it" if oos_opened.late else "QA investigates before any release")
        flash(f"Out of specification: {test.name} {Review.shown(result)} (limit {test.limit_text}). "
              f"{'Late OOS' if oos_opened.late else 'OOS'} {oos_opened.id} opened: {then}.", "warning")


@bp.route("/lots/<int:lot_id>/panel", methods=["POST"])
@roles_required("technician")
def add_panel(lot_id: int) -> Any:
    from mscbatch.release.specs import FLOW_PANEL

    form = PanelForm(prefix="panel")
    values = {f: (getattr(form, f).data or "") for f, _t, _l in FLOW_PANEL}
    try:
        made = results.enter_flow_panel(db.session, current_user, lot_id, values, _entry(form),
                                        attachment=_upload(form))
    except DomainError as error:
        show_error(form, error)
        return _page(lot_id, error.status, panel_form=form)
    _flash_recorded("Flow cytometry panel recorded (8 markers).", made)
    return redirect(url_for("release.review", lot_id=lot_id) + "#results")


@bp.route("/results/<int:result_id>/correct", methods=["GET", "POST"])
@roles_required("technician")
def correct(result_id: int) -> Any:
    from mscbatch.release.models import ReleaseResult

    result = db.session.get(ReleaseResult, result_id)
    if result is None:
        return render_template("errors/error.html", status=404, title="Not found", detail="No such result."), 404
    from mscbatch.core.release_spec import UNIT_SHOWN, shown_number
    from mscbatch.release.review import Review

    # a count is corrected in millions, as it was typed (release.forms.ResultForm)
    form = CorrectionForm(value=shown_number(result.unit, result.value), unit=UNIT_SHOWN.get(result.unit, result.unit))
    lot = get_lot(db.session, result.lot_id)
    try:
        name = spec_of_lot(db.session, lot).test(result.test_id).name
    except (DomainError, KeyError):
        name = result.test_id
    open_to_correction = results.accepts_results(db.session, lot, result.test_id)
    status = 200
    if request.method == "POST" and form.validate_on_submit():
        lot_id = result.lot_id
        try:
            results.correct_result(db.session, current_user, result_id, form.value.data or "", form.unit.data or "",
                                   form.reason.data or "")
        except DomainError as error:
            show_error(form, error)
            status = error.status
        else:
            flash("Result corrected; the previous value stays in the audit trail.", "success")
            return redirect(url_for("release.review", lot_id=lot_id) + "#results")
    return render_template("release/correct.html", form=form, result=result, test_name=name, lot=lot,
                           shown=Review.shown, open_to_correction=open_to_correction), status


def _seen() -> str:
    """The fingerprint of what the review page showed (release.release.page_fingerprint), posted with each of its
    signature forms: the service refuses the signature if the lot's record changed since. Missing: "" (refused)."""
    return request.form.get("seen", "")


def _signed(lot_id: int, form: Any, form_name: str, action: Any, done: str | Callable[[], str]) -> Any:
    try:
        action()
    except DomainError as error:
        # several reasons (only the release form's signatures give them): listed one a line, not run together
        refused = error if isinstance(error, Refused) and len(error.reasons) > 1 else None
        if refused is None:
            show_error(form, error)
        return _page(lot_id, error.status, refused=refused,
                     posted_seen="" if isinstance(error, RecordChanged) else _seen(), **{form_name: form})
    flash(done() if callable(done) else done, "success")
    return redirect(url_for("release.review", lot_id=lot_id))


@bp.route("/lots/<int:lot_id>/release", methods=["POST"])
@roles_required("qa")
def release_lot(lot_id: int) -> Any:
    form = ReleaseForm(prefix="release")
    action = request.form.get("action", "release")
    password = form.password.data or ""
    seen = _seen()
    if action == "reject":
        run = lambda: release.reject_lot(db.session, current_user, lot_id, password, form.justification.data or "",  # noqa: E731
                                         seen=seen)
        return _signed(lot_id, form, "release_form", run, "Lot rejected (signed).")
    if action == "complete":
        run = lambda: release.complete_conditional_release(db.session, current_user, lot_id, password,  # noqa: E731
                                                           form.count_justification.data or "", seen=seen)
        return _signed(lot_id, form, "release_form", run, "Conditional release completed (signed).")
    if action == "exceptional":  # QA countersigns the request the page showed, named by its id, never another
        request_id = posted_id(request.form.get("release-request_id"))

        def countersign() -> Any:
            if not request_id:
                raise Conflict("The form does not say which clinician's request you countersign: reload the lot's "
                               "page and countersign the request it shows. Nothing was signed.")
            return release.approve_exceptional_release(db.session, current_user, lot_id, password, request_id,
                                                       seen=seen)

        return _signed(lot_id, form, "release_form", countersign, lambda: (
            f"Exceptional release signed for patient {release_state(db.session, get_lot(db.session, lot_id)).patient_code} "
            "only."))
    tests = request.form.getlist("release-conditional_tests") if action == "conditional" else []
    run = lambda: release.release_lot(db.session, current_user, lot_id, password, conditional_tests=tests,  # noqa: E731
                                      justification=form.justification.data or "",
                                      count_justification=form.count_justification.data or "", seen=seen)
    return _signed(lot_id, form, "release_form", run,
                   "Lot conditionally released (signed)." if tests else "Lot released for clinical use (signed).")


@bp.route("/lots/<int:lot_id>/exceptional", methods=["POST"])
@roles_required("clinician")
def exceptional(lot_id: int) -> Any:
    form = ExceptionalForm(prefix="exceptional")
    made: list[Any] = []
    run = lambda: made.append(release.request_exceptional_release(  # noqa: E731
        db.session, current_user, lot_id, form.patient_code.data or "", form.justification.data or "",
        form.password.data or "", seen=_seen()))
    return _signed(lot_id, form, "exceptional_form", run, lambda: _requested(made[0]))


def _requested(made: Any) -> str:
    """The clinician is told when the new request withdrew one that was waiting (release.request_exceptional_release)."""
    from mscbatch.release.queries import exceptional_requests_of, superseded_by

    requests = exceptional_requests_of(db.session, made.lot_id)
    earlier = [r for r in requests if r.id < made.id and superseded_by(requests, r) is not None]
    replaced = (f" It replaces request {earlier[-1].id} for patient {earlier[-1].patient_code}, which is withdrawn: QA "
                "can no longer countersign it." if earlier else "")
    return f"Exceptional use for patient {made.patient_code} requested and signed; QA must countersign.{replaced}"


@bp.route("/oos/<int:oos_id>", methods=["POST"])
@roles_required("qa")
def close_oos(oos_id: int) -> Any:
    form = OosForm(prefix="oos")
    investigation = oos.get_oos(db.session, oos_id)
    lot_id = investigation.lot_id
    password, text, seen = form.password.data or "", form.investigation.data or "", _seen()
    if request.form.get("action") == "confirm":
        run = lambda: oos.confirm_oos(db.session, current_user, oos_id, text, password, seen=seen)  # noqa: E731
        return _signed(lot_id, form, "oos_form", run, lambda: _confirmed_words(oos_id, lot_id))
    if request.form.get("action") == "not_oos":  # a revised specification the result meets (oos.close_not_oos)
        run = lambda: oos.close_not_oos(db.session, current_user, oos_id, text, password, seen=seen)  # noqa: E731
        return _signed(lot_id, form, "oos_form", run, lambda: "OOS closed (signed). " + (
            oos.conclusion_words(db.session, oos.get_oos(db.session, oos_id)) or ""))
    # posted_id: any text is 0, and an id beyond the id column is no row (2^63 was a 500 in the query; tests/fuzz)
    retest = posted_id(request.form.get("oos-retest_result_id"))
    cause = request.form.get("oos-assignable_cause", "")  # required here: the service refuses none (422)
    run = lambda: oos.invalidate_oos(db.session, current_user, oos_id, retest, text, password, seen=seen,  # noqa: E731
                                     assignable_cause=cause)
    return _signed(lot_id, form, "oos_form", run, "OOS invalidated with the retest (signed).")


def _confirmed_words(oos_id: int, lot_id: int) -> str:
    """What the confirmation did to the lot, in the words of its conclusion (oos.confirm_oos)."""
    closed = oos.get_oos(db.session, oos_id)
    words = oos.conclusion_words(db.session, closed)
    if words is not None:  # supplied under exceptional release: the lot stays released for its one patient
        return f"OOS confirmed (signed). {words}"
    status = get_lot(db.session, lot_id).status
    return "OOS confirmed (signed). The lot is " + (
        "RECALLED: its unused bags are held, and the recall report lists the patients to notify."
        if status == "recalled" else f"{status}.")


@bp.route("/deviations/<int:deviation_id>/assess", methods=["POST"])
@roles_required("qa")
def assess_deviation(deviation_id: int) -> Any:
    form = AssessmentForm(prefix="assess")
    lot_id = get_deviation(db.session, deviation_id).lot_id
    run = lambda: deviations.assess_deviation(  # noqa: E731
        db.session, current_user, deviation_id, outcome=form.outcome.data or "", rationale=form.rationale.data or "",
        password=form.password.data or "", seen=_seen())
    return _signed(lot_id, form, "assess_form", run, lambda: "Deviation assessed (signed). " + _after_assessment(
        get_lot(db.session, lot_id).status))


def _after_assessment(status: str) -> str:
    if status == "recalled":
        return "The lot is RECALLED: its unused bags are held, and the recall report lists the patients to notify."
    if status == "rejected":
        return "The lot is REJECTED (signed): none of its bags can be used."
    if status in ("in_process", "quarantine"):
        return "This deviation no longer holds back the release."
    return "The lot stays in use."


@bp.route("/lots/<int:lot_id>/certificate.pdf")
@roles_required(*READERS)
def certificate(lot_id: int) -> Any:
    review = review_of(db.session, lot_id, current_user)
    problem = release_signature_problem(db.session, review)
    if problem is not None:  # a 409 page (or problem+json); the release page says it in red as well
        raise Conflict(certificate_refusal(problem))
    pdf = certificate_pdf(review)
    return Response(pdf, mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="CoA-{review.lot.lot_number}.pdf"'})


@bp.route("/attachments/<int:attachment_id>")
@roles_required(*READERS)
def attachment(attachment_id: int) -> Any:
    from mscbatch.release.models import ResultAttachment

    found = db.session.get(ResultAttachment, attachment_id)
    if found is None:
        return render_template("errors/error.html", status=404, title="Not found", detail="No such file."), 404
    # werkzeug's send_file writes any name into the header: HTTP header values are Latin-1, so a name such as
    # "CD73–CD90.pdf" (an en dash) or "报告.pdf" put as such made the server drop the download; it sends a plain
    # ASCII `filename` and the exact name, percent-encoded UTF-8, in `filename*` (RFC 6266), which browsers prefer
    response = send_file(io.BytesIO(found.content), mimetype=found.content_type, as_attachment=True,
                         download_name=found.filename, etag=False)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.route("")
@roles_required("qa", "admin", "technician")
def index() -> Any:
    return render_template("release/dashboard.html", d=dashboard(db.session))


@bp.app_template_global()
def release_flag_of(lot: Any) -> str:
    """For the lot page and other records: the conditional / exceptional release flag of a lot ("" if none)."""
    from mscbatch.release.queries import release_state

    return release_state(db.session, lot).flag
