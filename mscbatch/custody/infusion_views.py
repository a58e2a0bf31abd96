"""The infusion's page (issue 7 point 6), on the custody blueprint of views: its record, the STOP poll while it
runs, its end and its reactions; and the template globals of the infusions table of the patient and lot pages."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app, flash, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user
from itsdangerous import BadSignature, URLSafeTimedSerializer

from mscbatch.auth.access import public, roles_required
from mscbatch.auth.models import User
from mscbatch.core.dosing import infused_against_prescribed
from mscbatch.custody import bedside, infusions
from mscbatch.custody.checks import stop_running
from mscbatch.custody.forms import EndForm, ReactionForm
from mscbatch.custody.models import CTCAE_TERMS, GRADES, SERIOUS_GRADE, Infusion, InfusionReaction
from mscbatch.custody.queries import courses_below_band
from mscbatch.custody.views import BEDSIDE, INFUSION_READERS, bp, label_key
from mscbatch.custody.ward_words import REACTION_STOP, reaction_flag, reaction_stop_words
from mscbatch.database import utcnow
from mscbatch.errors import DomainError
from mscbatch.extensions import db
from mscbatch.interop.privacy import infusion_counts, may_read_patients
from mscbatch.lots.models import Bag, Lot
from mscbatch.patients.models import Patient
from mscbatch.patients.queries import allocation_given
from mscbatch.signatures.services import signatures_of
from mscbatch.site import site_config, site_time
from mscbatch.web.forms import show_error


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


@bp.app_template_global()
def infusion_counts_for_reader(rows: list[Any]) -> dict[str, Any] | None:
    """For templates/custody/_infusions.html: None for the readers of patient records (they see the rows), else only
    the counts (mscbatch.interop.privacy: infusions, reactions by grade): the lot page is read by every role."""
    return None if may_read_patients(current_user) else infusion_counts(rows)


def _infusion_page(infusion_id: int, status: int = 200, **forms: Any) -> Any:
    db.session.rollback()
    infusion = infusions.get_infusion(db.session, infusion_id)
    bag = db.session.get(Bag, infusion.bag_id)
    lot = db.session.get(Lot, bag.lot_id) if bag else None
    patient = db.session.get(Patient, infusion.patient_id)
    reactions = list(db.session.query(InfusionReaction).filter(InfusionReaction.infusion_id == infusion.id)
                     .order_by(InfusionReaction.id))
    check = bedside.get_check(db.session, infusion.check_id)  # the two checkers, who may not be the starter
    ids = {check.checked_by_id, check.second_checker_id, infusion.started_by_id, infusion.ended_by_id}
    names = {u.id: u.full_name for u in db.session.query(User).filter(User.id.in_([i for i in ids if i]))}
    allocation = allocation_given(db.session, bag.id) if bag else None
    stop = stop_running(db.session, infusion, bag, patient, label_key())
    # CTCAE: a reaction of grade 3 or higher means interrupting the infusion: said in large words while it runs
    serious = max((r.grade for r in reactions if r.grade >= SERIOUS_GRADE), default=None)
    reaction_stop = serious if serious is not None and infusion.ended_at is None else None
    forms.setdefault("end_form", EndForm(formdata=None))
    forms.setdefault("reaction_form", ReactionForm(formdata=None))
    # Part 11 (11.50): the check the infusion stands on is shown with its signatures (name, date-time, meaning)
    check_signatures = signatures_of(db.session, check)
    return render_template("custody/infusion.html", infusion=infusion, check=check, bag=bag, lot=lot,
                           check_signatures=check_signatures,
                           patient=patient, reactions=reactions, names=names, terms=CTCAE_TERMS, grades=GRADES,
                           prescribed_ml=allocation.allocation.volume_ml if allocation else None,
                           outside=_outside(infusion, allocation), tz=site_config().tz, stop=stop,
                           poll_seconds=int(current_app.config.get("CUSTODY_STOP_POLL_SECONDS", 20)),
                           watch_token=watch_token(infusion) if infusion.ended_at is None else None,
                           watch_header=WATCH_HEADER, stopped_by_system=infusions.STOPPED_BY_SYSTEM,
                           course_below_band=bool(bag and courses_below_band(db.session, [bag.id])),
                           reaction_stop=reaction_stop, reaction_stop_word=REACTION_STOP, serious_grade=SERIOUS_GRADE,
                           reaction_stop_words=reaction_stop_words(reaction_stop) if reaction_stop else [],
                           run_over=_run_over(infusion, allocation), **forms), status


def _run_over(infusion: Infusion, allocation: Any) -> tuple[str, datetime] | None:
    """While it runs: the least time the protocol gives this bag over ("20 min") and the time before which its end is
    refused without a reason, as the end's rule reads it (infusions._bag_time, BagTime.expected: this bag's share of
    the course's time); None when it has ended or the protocol gives no time."""
    if allocation is None or infusion.ended_at is not None or infusion.started_at is None:
        return None
    time = infusions._bag_time(db.session, allocation)  # the end's own rule (end_infusion's too_fast)
    if time is None:
        return None
    return infusions.duration_words(time.expected), infusions._aware(infusion.started_at) + time.expected


def _outside(infusion: Any, allocation: Any) -> str | None:
    """"more" / "less" than prescribed, once the volume is recorded (core.dosing.infused_against_prescribed)."""
    if allocation is None or infusion.volume_infused_ml is None:
        return None
    return infused_against_prescribed(infusion.volume_infused_ml, allocation.allocation.volume_ml,
                                      infusions.dose_tolerance(allocation.prescription.protocol_id))


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
    row = infusions.get_infusion(db.session, infusion_id)
    bag = db.session.get(Bag, row.bag_id)
    reasons = stop_running(db.session, row, bag, db.session.get(Patient, row.patient_id), label_key())
    # with a STOP, the words of its one-reason end (the button the script then offers): none on a page still fit
    response = jsonify(stop_now=bool(reasons), reasons=reasons, ended=row.ended_at is not None,
                       **({"end_reason": infusions.STOPPED_BY_SYSTEM} if reasons else {}))
    response.headers["Cache-Control"] = "no-store"
    return response


#: what the STOP poll answers once the session has ended (the page's script then says so in large words and goes on
#: watching through infusion_watch, with the page's watch token)
SIGNED_OUT_POLL = "Signed out: sign in again to record anything."

#: the header that carries the page's watch token (never the URL: addresses are logged)
WATCH_HEADER = "X-Stop-Watch"
_WATCH_SALT = "mscbatch.custody.infusion-stop-watch"


def _watch_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=_WATCH_SALT)


def watch_hours() -> float:
    """How long at most a watch token is good for, counted from the page that carries it and from the infusion's
    start alike (CUSTODY_STOP_WATCH_HOURS, default 12): an infusion lasts about an hour."""
    return float(current_app.config.get("CUSTODY_STOP_WATCH_HOURS", 12))


def _started(infusion: Infusion) -> int:
    moment = infusion.started_at
    return int((moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp())


def watch_token(infusion: Infusion) -> str:
    """The running infusion page's watch token: signed with the app's secret (itsdangerous), bound to this infusion
    (its id and its start), good while it runs and for watch_hours() at most. It lets the page's script go on asking
    whether to STOP after the session has ended (infusion_watch), and nothing else: it signs no one in."""
    return _watch_serializer().dumps({"infusion": infusion.id, "started": _started(infusion)})


def _watch_refused(status: int) -> Any:
    """A watch token missing (400), forged, expired, of another infusion or of an infusion that has ended: the same words
    for all, nothing of the infusion (a forged token learns nothing)."""
    answer = jsonify(watching=False, message="This page no longer watches for STOP. Sign in again to see the "
                                             "infusion.")
    answer.status_code = status
    answer.headers["Cache-Control"] = "no-store"
    return answer


@bp.route("/infusions/<int:infusion_id>/watch.json")
@public
def infusion_watch(infusion_id: int) -> Any:
    """The STOP poll of a running infusion page whose session has ended: the bedside tablet still shows STOP THE
    INFUSION NOW if the bag is recalled or found unfit, for the infusion's whole hour, without keeping the session
    alive (a passive endpoint: auth.loading.PASSIVE_ENDPOINTS; the script sends no cookie). Public, but answers only
    to the page's watch token (header WATCH_HEADER) and only what the page needs to show STOP: whether to stop and
    the STOP's words (the lot, the bag, the patient's code the page already shows), never another infusion. Nothing
    is audited per poll, as for stop.json."""
    token = request.headers.get(WATCH_HEADER, "").strip()
    if not token:  # a request without the page's token at all: malformed, not an identity refused
        return _watch_refused(400)
    hours = watch_hours()
    try:
        claim = _watch_serializer().loads(token, max_age=int(hours * 3600))
    except BadSignature:  # SignatureExpired included
        return _watch_refused(403)
    if not isinstance(claim, dict) or claim.get("infusion") != infusion_id:
        return _watch_refused(403)
    row = db.session.get(Infusion, infusion_id)
    if row is None or row.ended_at is not None or claim.get("started") != _started(row) \
            or utcnow() - datetime.fromtimestamp(_started(row), UTC) > timedelta(hours=hours):
        db.session.rollback()
        return _watch_refused(403)
    bag = db.session.get(Bag, row.bag_id)
    reasons = stop_running(db.session, row, bag, db.session.get(Patient, row.patient_id), label_key())
    db.session.rollback()
    response = jsonify(stop_now=bool(reasons), reasons=reasons,
                       **({"end_reason": infusions.STOPPED_BY_SYSTEM} if reasons else {}))
    response.headers["Cache-Control"] = "no-store"
    return response


#: what the ward list's refresh (bedside_views.ward_running) answers once the session has ended
SIGNED_OUT_REFRESH = "Signed out: this list no longer updates. Sign in again to see it."
#: the custody pages' own polls, and what each answers once the session has ended
SIGNED_OUT_POLLS = {"custody.infusion_stop": SIGNED_OUT_POLL, "custody.ward_running": SIGNED_OUT_REFRESH}


@bp.after_request
def _signed_out_poll(response: Any) -> Any:
    """A page's poll (the STOP poll, the ward list's refresh) of a session that has ended answers 401 in JSON, which
    the page's script reads and says, not the sign-in page's redirect (access.signed_out_redirect) that a script
    cannot read and would retry forever, or take for a list it cannot find."""
    message = SIGNED_OUT_POLLS.get(request.endpoint or "")
    if message is None or response.status_code not in (302, 303) or current_user.is_authenticated:
        return response
    session.pop("_flashes", None)  # the sign-in page's words are for a person who opens a page
    answer = jsonify(signed_out=True, message=message)
    answer.status_code = 401
    answer.headers["Cache-Control"] = "no-store"
    return answer


@bp.route("/infusions/<int:infusion_id>/end", methods=["POST"])
@roles_required(*BEDSIDE)
def end(infusion_id: int) -> Any:
    form = EndForm()
    if form.validate_on_submit():
        try:
            reason = form.reason.data or ""
            if request.form.get("stopped") and not reason.strip():  # "End: the system said STOP" (the page's button)
                reason = infusions.STOPPED_BY_SYSTEM
            infusions.end_infusion(db.session, current_user, infusion_id, volume_ml=form.volume_ml.data,
                                   reason=reason, label_key=label_key())
        except DomainError as error:
            show_error(form, error)
            return _infusion_page(infusion_id, error.status, end_form=form)
        flash("Infusion ended.", "success")
        return redirect(url_for("custody.infusion", infusion_id=infusion_id))
    return _infusion_page(infusion_id, 422, end_form=form)


#: beside a reaction of grade 3 or higher (CTCAE severe, life-threatening, death), on the page and in its confirmation
SERIOUS_REACTION = "Grade 3 or higher: report it as a serious adverse event as the protocol requires."


@bp.app_template_global()
def serious_reaction_words() -> str:
    """For templates/custody/infusion.html: the words beside a reaction of grade 3 or higher."""
    return SERIOUS_REACTION


bp.add_app_template_global(reaction_flag, "reaction_flag")  # the ward list's and banner's flag (ward_words)


def reaction_recorded_words(grade: int, by_clinician: bool, running: bool = False) -> str:
    """The confirmation of a reaction recorded: a nurse is asked to tell the clinician (a clinician recorded it
    themself); a reaction of grade 3 or higher also says to report it as a serious adverse event, and, on an
    infusion still running, to stop it now (CTCAE: interrupt the infusion), a grade 5 (death) that it must be ended."""
    if grade >= SERIOUS_GRADE and running:
        end = " It must be ended: record the volume given (End infusion)." if grade >= 5 else ""
        stop = "STOP THE INFUSION NOW" if by_clinician else REACTION_STOP  # a clinician is not told to call one
        return f"Reaction recorded. {stop}.{end} {SERIOUS_REACTION}"
    words = "Reaction recorded." if by_clinician else "Reaction recorded. Tell the clinician."
    return f"{words} {SERIOUS_REACTION}" if grade >= SERIOUS_GRADE else words


@bp.route("/infusions/<int:infusion_id>/reactions", methods=["POST"])
@roles_required(*BEDSIDE)
def reaction(infusion_id: int) -> Any:
    form = ReactionForm()
    if form.validate_on_submit():
        try:
            recorded = infusions.record_reaction(db.session, current_user, infusion_id, infusions.ReactionDetails(
                form.ctcae_term.data, form.grade.data, form.description.data or "",
                onset_at=site_time(form.onset_at.data, "onset_at", "Onset")))
        except DomainError as error:
            show_error(form, error)
            return _infusion_page(infusion_id, error.status, reaction_form=form)
        running = infusions.get_infusion(db.session, infusion_id).ended_at is None
        stop_now = running and recorded.grade >= SERIOUS_GRADE
        flash(reaction_recorded_words(recorded.grade, current_user.has_role("clinician"), running),
              "warning" if stop_now else "success")
        # a grade 3 or higher on a running infusion: the page opens on its STOP, whose next step is the End form
        return redirect(url_for("custody.infusion", infusion_id=infusion_id,
                                _anchor="reaction-stop" if stop_now else "reactions"))
    return _infusion_page(infusion_id, 422, reaction_form=form)
