"""Recall pages (list, start, report, end, complete, report PDF) and traceability pages (forward from a donor, a lot or a
reagent lot; backward from a patient; one bag), each also as a PDF. Views parse and authorise; services decide."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_login import current_user

from mscbatch.auth.access import roles_required
from mscbatch.core.identifiers import din_shown
from mscbatch.errors import DomainError, ValidationFailed
from mscbatch.extensions import db
from mscbatch.patients.dose_sheet import infusion_planned
from mscbatch.recall import notices, services
from mscbatch.recall.forms import (
    CloseLookbackForm,
    CompleteRecallForm,
    DiscardHeldBagForm,
    EndRecallForm,
    RecallNoticeForm,
    StartRecallForm,
)
from mscbatch.recall.queries import open_lookbacks
from mscbatch.recall.report import (
    COMPLETED_HOLDS,
    NO_LOOKBACK,
    NOT_YET_NOTIFIED,
    NOTIFY_HEADING,
    reagent_row_words,
    recall_report,
    recall_report_pdf,
    trace_pdf,
)
from mscbatch.recall.traceability import (
    backward_from_patient,
    bag_trace,
    forward_from_donor,
    forward_from_lot,
    forward_from_reagent_lot,
)
from mscbatch.signatures.services import PASSWORD_NOT_TYPED
from mscbatch.site import site_config, site_time
from mscbatch.web.date_fields import typed_text
from mscbatch.web.forms import show_error

bp = Blueprint("recall", __name__, url_prefix="/recalls")
trace_bp = Blueprint("trace", __name__, url_prefix="/trace")
READERS = ("qa", "clinician")
TRACERS = ("qa", "clinician")


def _pdf(content: bytes, filename: str) -> Response:
    return Response(content, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{filename}"'})


# ---- recalls --------------------------------------------------------------------------------------------

#: the blank fields of the signed recall forms, said all at once (before, an empty start form said only "Give the
#: donor code...", then the reason, then the password, one refusal at a time)
START_BLANKS = {"target": services.TARGET_MISSING, "reason": services.REASON_MISSING,
                "password": PASSWORD_NOT_TYPED}
END_BLANKS = {"reason": services.END_REASON_MISSING, "password": PASSWORD_NOT_TYPED}
COMPLETE_BLANKS = {"password": PASSWORD_NOT_TYPED}  # the note's own refusal says its length (at least 20)


def _refused(form: Any, error: DomainError | None, blanks: dict[str, str]) -> None:
    """A refusal of a signed recall form, each message next to its field: the service's (a wrong password, which
    names no field, beside the password, as the other signed forms say it), then every other field left blank when
    the form itself was incomplete (a 422), so that one refusal names them all."""
    if error is not None:
        if error.status == 401 and not error.errors:  # "Signature refused: wrong password" (signatures.sign)
            form.password.errors = [*form.password.errors, error.message]
        else:
            show_error(form, error)
    if error is None or isinstance(error, ValidationFailed):
        for name, message in blanks.items():
            field = getattr(form, name)
            if not (field.data or "").strip() and not field.errors:
                field.errors = [*field.errors, message]

@bp.route("")
@roles_required(*READERS)
def index() -> Any:
    return _index()


def _index(lookback_form: CloseLookbackForm | None = None, lookback_id: int | None = None, status: int = 200) -> Any:
    """The recalls page; `lookback_form` / `lookback_id`: a refused closing of a lookback, shown on its row."""
    recalls = services.list_recalls(db.session)
    targets = {r.id: services.target_label(db.session, r.scope, services.target_of(r)) for r in recalls}
    # open lookbacks first: a late positive marker waits here for QA's recall until one is started
    return render_template("recall/list.html", recalls=recalls, targets=targets, lookbacks=open_lookbacks(db.session),
                           lookback_form=lookback_form, lookback_refused_id=lookback_id), status


@bp.route("/lookbacks/<int:lookback_id>/close", methods=["POST"])
@roles_required("qa")
def close_lookback(lookback_id: int) -> Any:
    """QA closes a lookback opened while a recall of its donor is in force (services.close_lookback)."""
    form = CloseLookbackForm()
    try:
        lookback = services.close_lookback(db.session, current_user, lookback_id, note=form.note.data or "")
    except DomainError as error:
        db.session.rollback()
        show_error(form, error)
        form.note.id = f"lookback-note-{lookback_id}"  # the error summary's link goes to the row's own field
        return _index(form, lookback_id, error.status)
    flash(f"Lookback closed: {lookback.closure_note}", "success")
    return redirect(url_for("recall.index", _anchor="lookbacks"))


@bp.route("/new", methods=["GET", "POST"])
@roles_required("qa")
def start() -> Any:
    form = StartRecallForm()
    status = 200
    if request.method == "GET":
        form.scope.data = request.args.get("scope", form.scope.data)
        form.target.data = request.args.get("target", "")
    elif form.validate():
        try:
            scope = form.scope.data or ""
            target_id = services.resolve_target(db.session, scope, form.target.data or "")
            started = services.start_recall(db.session, current_user, scope=scope, target_id=target_id,
                                            reason=form.reason.data or "", password=form.password.data or "")
        except DomainError as error:
            db.session.rollback()
            _refused(form, error, START_BLANKS)
            status = error.status
        else:
            kept = "; ".join(_kept_words(lot) for lot in started.lots_kept)
            held = started.held_bags
            on_hold = ("no bag to put on hold" if not held else "1 bag on hold" if held == 1
                       else f"{held} bags on hold")
            flash(f"Recall R-{started.recall_id} started (signed): {on_hold}"
                  + (f"; lots recalled: {', '.join(started.recalled_lots)}" if started.recalled_lots else "")
                  + (f"; {kept}" if kept else "") + ".", "success")
            return redirect(url_for("recall.detail", recall_id=started.recall_id))
    else:  # the form's own checks (a reason over 2000 characters, a scope not offered), and every blank field
        _refused(form, None, START_BLANKS)
        status = 422
    return render_template("recall/new.html", form=form), status


def _kept_words(kept: services.KeptLot) -> str:
    """A lot the recall could not move to "recalled" (in process, in quarantine), with what is true of its bags."""
    words = f"{kept.lot_number} stays {kept.state.replace('_', ' ')}"
    if not kept.bags:
        return f"{words} (no bags yet: they will be held when made; it cannot be released while the recall is in force)"
    held = "1 bag" if kept.held == 1 else f"{kept.held} bags"
    return f"{words} ({held} held; it cannot be released while the recall is in force)"


#: rows of the affected bags table per page of the recall's page (the summary, the notify list and the PDF are whole)
BAGS_PER_PAGE = 200


def _page_of_bags(report: Any, discard_bag_id: int | None) -> tuple[int, int]:
    """The page of the bag table to show (the one holding a bag whose discard was refused, else ?page=) and the
    number of pages."""
    pages = max(1, -(-len(report.lines) // BAGS_PER_PAGE))
    if discard_bag_id is not None:
        at = next((i for i, line in enumerate(report.lines) if line.trace.bag.id == discard_bag_id), None)
        if at is not None:
            return at // BAGS_PER_PAGE + 1, pages
    page = request.args.get("page", 1, type=int) or 1
    return min(max(page, 1), pages), pages


def _detail(recall_id: int, form: EndRecallForm | None = None, status: int = 200,
            complete_form: CompleteRecallForm | None = None, discard_form: DiscardHeldBagForm | None = None,
            discard_bag_id: int | None = None, notice_form: RecallNoticeForm | None = None,
            notice_patient_id: int | None = None) -> Any:
    """The recall's page; `discard_form` / `discard_bag_id`: a refused discard, shown on that bag's row;
    `notice_form` / `notice_patient_id`: a refused notice, shown on that patient's form."""
    db.session.rollback()
    report = recall_report(db.session, recall_id)
    notice_forms: dict[int, RecallNoticeForm] = {}  # one per patient not yet notified, each field's id its own
    for entry in report.not_notified:
        pid = entry.patient.id
        shown = notice_form if notice_form is not None and notice_patient_id == pid else RecallNoticeForm(formdata=None)
        for name in NOTICE_FIELDS:
            getattr(shown, name).id = getattr(shown, name).label.field_id = f"notice-{name}-{pid}"
        notice_forms[pid] = shown
    page, pages = _page_of_bags(report, discard_bag_id)
    first = (page - 1) * BAGS_PER_PAGE
    return render_template("recall/detail.html", r=report, recall=report.recall, notice_forms=notice_forms,
                           lines=report.lines[first:first + BAGS_PER_PAGE], page=page, pages=pages,
                           first_shown=first + 1 if report.lines else 0,
                           last_shown=min(first + BAGS_PER_PAGE, len(report.lines)),
                           end_form=form or EndRecallForm(formdata=None),
                           complete_form=complete_form or CompleteRecallForm(formdata=None),
                           discard_form=discard_form or DiscardHeldBagForm(formdata=None),
                           notice_patient_id=notice_patient_id,
                           discard_bag_id=discard_bag_id, site=site_config(), infusion_planned=infusion_planned,
                           reagent_row_words=reagent_row_words,
                           completed_holds=COMPLETED_HOLDS, no_lookback=NO_LOOKBACK,
                           not_yet_notified=NOT_YET_NOTIFIED, notify_heading=NOTIFY_HEADING), status


@bp.route("/<int:recall_id>")
@roles_required(*READERS)
def detail(recall_id: int) -> Any:
    return _detail(recall_id)


@bp.route("/<int:recall_id>/report.pdf")
@roles_required(*READERS)
def report_pdf(recall_id: int) -> Any:
    return _pdf(recall_report_pdf(recall_report(db.session, recall_id)), f"recall-R-{recall_id}.pdf")


@bp.route("/<int:recall_id>/end", methods=["POST"])
@roles_required("qa")
def end(recall_id: int) -> Any:
    form = EndRecallForm()
    try:
        lifted = services.end_recall(db.session, current_user, recall_id, reason=form.reason.data or "",
                                     password=form.password.data or "")
    except DomainError as error:
        db.session.rollback()
        _refused(form, error, END_BLANKS)
        return _detail(recall_id, form, error.status)
    still = services.lots_left_recalled(db.session, recall_id)
    lots = (f" Lot {', '.join(still)} stays RECALLED: a recalled lot is never used again, and its bags cannot be "
            "given." if still else "")
    holds = "no hold lifted" if not lifted else ("1 bag hold lifted" if lifted == 1 else f"{lifted} bag holds lifted")
    flash(f"Recall R-{recall_id} ended (signed); {holds}.{lots}", "success")
    return redirect(url_for("recall.detail", recall_id=recall_id))


@bp.route("/<int:recall_id>/complete", methods=["POST"])
@roles_required("qa")
def complete(recall_id: int) -> Any:
    form = CompleteRecallForm()
    try:
        services.complete_recall(db.session, current_user, recall_id, note=form.note.data or "",
                                 password=form.password.data or "")
    except DomainError as error:
        db.session.rollback()
        _refused(form, error, COMPLETE_BLANKS)
        return _detail(recall_id, complete_form=form, status=error.status)
    flash(f"Recall R-{recall_id} completed (signed). Its bags stay on hold and its lots stay recalled.", "success")
    return redirect(url_for("recall.detail", recall_id=recall_id))


@bp.route("/<int:recall_id>/bags/<int:bag_id>/discard", methods=["POST"])
@roles_required("qa")
def discard_bag(recall_id: int, bag_id: int) -> Any:
    """QA destroys a bag the recall holds in stock (services.discard_held_bag), then back to the recall's page."""
    form = DiscardHeldBagForm()
    try:
        bag = services.discard_held_bag(db.session, current_user, recall_id, bag_id, reason=form.reason.data or "")
    except DomainError as error:
        db.session.rollback()
        show_error(form, error)  # shown on the bag's row (no such recall: _detail's own 404 page)
        return _detail(recall_id, status=error.status, discard_form=form, discard_bag_id=bag_id)
    flash(f"Bag {din_shown(bag)} recorded as DISCARDED under recall R-{recall_id} ({(form.reason.data or '').strip()}). "
          "Dispose of it as biological waste; its hold stays, as the record of the recall.", "success")
    page = request.args.get("page", type=int)  # the page of the bag table the discard was made from
    return redirect(url_for("recall.detail", recall_id=recall_id, page=page if page and page > 1 else None,
                            _anchor="bags"))


NOTICE_FIELDS = ("clinician", "how", "told_at", "note")


@bp.route("/<int:recall_id>/patients/<int:patient_id>/notice", methods=["POST"])
@roles_required("qa")
def record_notice(recall_id: int, patient_id: int) -> Any:
    """QA records that the clinician of a patient on the recall's notify list was told (notices.record_notice)."""
    form = RecallNoticeForm()
    try:
        told_at = site_time(form.told_at.data, "told_at", "When")
        notice = notices.record_notice(
            db.session, current_user, recall_id, patient_id, clinician=form.clinician.data or "",
            how=form.how.data or "", told_at=told_at,
            told_at_typed=typed_text(form.told_at) if form.told_at.data is None else "", note=form.note.data or "")
    except DomainError as error:
        db.session.rollback()
        form.told_at.process_errors = []  # said once, by the service, naming the field
        show_error(form, error)  # on this patient's form (_detail gives its fields their own ids)
        return _detail(recall_id, status=error.status, notice_form=form, notice_patient_id=patient_id)
    flash(f"Recorded: {notice.clinician_name} told {notice.how_words} of recall R-{recall_id}.", "success")
    return redirect(url_for("recall.detail", recall_id=recall_id, _anchor="notify"))


@bp.route("/<int:recall_id>/patients/<int:patient_id>/acknowledge", methods=["POST"])
@roles_required("clinician")
def acknowledge_notice(recall_id: int, patient_id: int) -> Any:
    """The prescribing clinician confirms, from their home page, being told of the recall (notices.acknowledge)."""
    from mscbatch.web.views import home_page

    try:
        notices.acknowledge(db.session, current_user, recall_id, patient_id)
    except DomainError as error:
        db.session.rollback()
        return home_page(refusal=error.message, status=error.status)
    flash(f"Recorded: you have been told of recall R-{recall_id}.", "success")
    return redirect(url_for("web.home"))


# ---- traceability ----------------------------------------------------------------------------------------

@trace_bp.route("/donors/<int:donor_id>")
@roles_required(*TRACERS)
def donor(donor_id: int) -> Any:
    trace = forward_from_donor(db.session, donor_id)
    return render_template("recall/forward.html", t=trace, title=f"Forward trace: donor {trace.donor.code}",
                           pdf_url=url_for("trace.donor_pdf", donor_id=donor_id), site=site_config())


@trace_bp.route("/donors/<int:donor_id>.pdf")
@roles_required(*TRACERS)
def donor_pdf(donor_id: int) -> Any:
    trace = forward_from_donor(db.session, donor_id)
    return _pdf(trace_pdf(f"Forward trace: donor {trace.donor.code}", forward=trace), f"trace-{trace.donor.code}.pdf")


@trace_bp.route("/lots/<int:lot_id>")
@roles_required(*TRACERS)
def lot(lot_id: int) -> Any:
    trace = forward_from_lot(db.session, lot_id)
    number = trace.lots[0].lot.lot_number
    return render_template("recall/forward.html", t=trace, title=f"Forward trace: lot {number}",
                           pdf_url=url_for("trace.lot_pdf", lot_id=lot_id), site=site_config())


@trace_bp.route("/lots/<int:lot_id>.pdf")
@roles_required(*TRACERS)
def lot_pdf(lot_id: int) -> Any:
    trace = forward_from_lot(db.session, lot_id)
    number = trace.lots[0].lot.lot_number
    return _pdf(trace_pdf(f"Forward trace: lot {number}", forward=trace), f"trace-{number}.pdf")


@trace_bp.route("/reagents/<int:reagent_lot_id>")
@roles_required(*TRACERS)
def reagent(reagent_lot_id: int) -> Any:
    trace = forward_from_reagent_lot(db.session, reagent_lot_id)
    assert trace.reagent_lot is not None
    title = f"Forward trace: reagent lot {trace.reagent_lot.name} {trace.reagent_lot.lot_number}"
    return render_template("recall/forward.html", t=trace, title=title,
                           pdf_url=url_for("trace.reagent_pdf", reagent_lot_id=reagent_lot_id), site=site_config())


@trace_bp.route("/reagents/<int:reagent_lot_id>.pdf")
@roles_required(*TRACERS)
def reagent_pdf(reagent_lot_id: int) -> Any:
    trace = forward_from_reagent_lot(db.session, reagent_lot_id)
    assert trace.reagent_lot is not None
    title = f"Forward trace: reagent lot {trace.reagent_lot.name} {trace.reagent_lot.lot_number}"
    return _pdf(trace_pdf(title, forward=trace), f"trace-reagent-{reagent_lot_id}.pdf")


@trace_bp.route("/patients/<int:patient_id>")
@roles_required(*TRACERS)
def patient(patient_id: int) -> Any:
    trace = backward_from_patient(db.session, patient_id)
    return render_template("recall/backward.html", t=trace, site=site_config())


@trace_bp.route("/patients/<int:patient_id>.pdf")
@roles_required(*TRACERS)
def patient_pdf(patient_id: int) -> Any:
    trace = backward_from_patient(db.session, patient_id)
    return _pdf(trace_pdf(f"Backward trace: patient {trace.patient.code}", backward=trace),
                f"trace-{trace.patient.code}.pdf")


#: what the trace form starts from (its "kind" field), with the words its select shows
TRACE_KINDS = {"donor": "Donor code", "lot": "Lot number", "patient": "Patient code"}
#: the longest code or number the trace form takes (donor and patient codes, lot numbers are far shorter); a longer
#: one is refused, not looked up nor echoed whole
MAX_TRACE_CODE = 64


@trace_bp.route("")
@roles_required(*TRACERS)
def find() -> Any:
    """Start a trace from a donor code, a lot number or a patient code (GET form; redirects to the trace). A kind not
    offered, or a code over MAX_TRACE_CODE characters, is refused (422) naming the field and its rule; a code not found
    says so (404), with how the unit writes lot numbers when it is not written that way (as the recall form says)."""
    typed_kind = (request.args.get("kind") or "").strip()
    kind, code = typed_kind.lower() or "donor", (request.args.get("code") or "").strip()
    problems: list[str] = []
    if kind not in TRACE_KINDS:
        problems.append(f"Start from (kind): one of {', '.join(TRACE_KINDS)}, not {services.typed_shown(typed_kind)!r}.")
        kind = "donor"
    if len(code) > MAX_TRACE_CODE:
        problems.append(f"Code or number (code): at most {MAX_TRACE_CODE} characters (this one has {len(code)}).")
    if problems:
        return render_template("recall/find.html", kind=kind, code=code[:MAX_TRACE_CODE], problems=problems,
                               kinds=TRACE_KINDS, max_code=MAX_TRACE_CODE), 422
    if code:
        found = resolve_trace_start(kind, code)
        if found is not None:
            return redirect(found)
        hint = services._spelling_hint(kind, code) if kind == "lot" else ""
        problems.append(f"Nothing found for {TRACE_KINDS[kind].lower()} {code!r}.{hint}")
    return render_template("recall/find.html", kind=kind, code=code, problems=problems,
                           kinds=TRACE_KINDS, max_code=MAX_TRACE_CODE), 404 if problems else 200


def resolve_trace_start(kind: str, code: str) -> str | None:
    from sqlalchemy import select

    from mscbatch.donors.models import Donor
    from mscbatch.lots.models import Lot
    from mscbatch.patients.models import Patient

    if kind == "patient":
        patient_id = db.session.scalar(select(Patient.id).where(Patient.code == code.upper()))
        return url_for("trace.patient", patient_id=patient_id) if patient_id else None
    if kind == "lot":
        lot_id = db.session.scalar(select(Lot.id).where(Lot.lot_number == code.upper()))
        return url_for("trace.lot", lot_id=lot_id) if lot_id else None
    donor_id = db.session.scalar(select(Donor.id).where(Donor.code == code.upper()))
    return url_for("trace.donor", donor_id=donor_id) if donor_id else None


@trace_bp.route("/bags/<int:bag_id>")
@roles_required("qa", "clinician", "nurse", "technician")
def bag(bag_id: int) -> Any:
    trace, lot_row, donor_row = bag_trace(db.session, bag_id)
    show_patients = current_user.has_role("qa", "clinician", "nurse")
    return render_template("recall/bag.html", t=trace, lot=lot_row, donor=donor_row, show_patients=show_patients,
                           site=site_config(), events=custody_timeline(bag_id))


def custody_timeline(bag_id: int) -> list[Any]:
    """The bag's custody events (who, when, where), when the custody capability is installed."""
    try:
        from mscbatch.custody.queries import timeline
    except ImportError:  # pragma: no cover
        return []
    return list(timeline(db.session, bag_id))
