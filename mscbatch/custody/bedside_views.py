"""The bedside screens (issue 7 point 5), on the custody blueprint of views: a check's page and its two-person
confirmation, and the infusion's start from a confirmed check, with its STOP screen when the start is refused."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from markupsafe import Markup, escape
from sqlalchemy import select

from mscbatch.auth.access import roles_required
from mscbatch.auth.models import User
from mscbatch.custody import bedside, infusions
from mscbatch.custody.checks import BAG_UNFIT, CALL_UNIT, BedsideResult, Finding, evaluate, remaining
from mscbatch.custody.forms import SecondPersonForm, StartForm, WardForm
from mscbatch.custody.models import Infusion, TwoPersonCheck
from mscbatch.custody.views import ACTIONS, BEDSIDE, _ward, bp, check_valid_for, label_key
from mscbatch.custody.ward_list import RunningInfusion, running_infusion_of, running_infusions
from mscbatch.custody.ward_words import minutes_left_words, provisional_thaw_limit_words
from mscbatch.database import reading, utcnow
from mscbatch.errors import Conflict, DomainError, ValidationFailed
from mscbatch.extensions import db
from mscbatch.lots.models import Bag
from mscbatch.lots.queries import product_of
from mscbatch.patients.models import Allocation
from mscbatch.signatures.services import signatures_of
from mscbatch.site import local_parts, site_config
from mscbatch.web.forms import show_error

#: a code in a STOP's words (patient SLE-UC-001, lot MSC-2026-0003, donor D-2026-0002): read as one word
_CODE = re.compile(r"\b[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+\b")


@bp.app_template_filter("codes_unbroken")
def codes_unbroken(message: str) -> Markup:
    """The message, escaped, with each code kept on one line (a phone cut "SLE-UC-" / "002" at its hyphen)."""
    return Markup(_CODE.sub(lambda found: f'<span class="code">{found.group(0)}</span>', str(escape(message))))


@bp.app_template_global()
def ward_running_infusions() -> list[RunningInfusion]:
    """For templates/custody/ward.html: the infusions running now, each with STOP THE INFUSION NOW when its bag has
    since been found unfit (custody.ward_list.running_infusions)."""
    return running_infusions(db.session, label_key())


#: how often, by default, the ward page's script asks for its running infusions again (CUSTODY_WARD_REFRESH_SECONDS)
WARD_REFRESH_SECONDS = 30


@bp.app_template_global()
def ward_refresh_seconds() -> int:
    """For templates/custody/ward.html: the seconds between two refreshes of its running infusions (js/ward-running.js)."""
    return max(1, int(current_app.config.get("CUSTODY_WARD_REFRESH_SECONDS", WARD_REFRESH_SECONDS)))


@bp.app_template_filter("clock")
def clock(instant: datetime) -> Markup:
    """An instant's clock time as the pages say it, without its date: "21:48 CET (20:48 UTC)" (site.local_parts, the
    `local` filter's words): the ward list's "Updated" time, read at a glance on a tablet."""
    local, utc = local_parts(instant)
    return Markup('<span class="when"><span class="local">{}</span> <span class="utc hint">({})</span></span>').format(
        local.split(" ", 1)[1], utc)


@bp.app_template_filter("utc_iso")
def utc_iso(instant: datetime) -> str:
    """An instant for a page's script, in UTC and ISO 8601 ("2026-12-07T03:40:00Z"): the bedside page's post-thaw
    deadline and the time it was served (data-thaw-deadline, data-server-now: js/thaw-countdown.js)."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


bp.add_app_template_global(minutes_left_words)
bp.add_app_template_global(provisional_thaw_limit_words)


@bp.route("/running")
@roles_required(*BEDSIDE)
def ward_running() -> Any:
    """The ward page's "Infusions running now" alone (templates/custody/_running_list.html, as the page shows it),
    which the page's script (js/ward-running.js) fetches every ward_refresh_seconds() and puts in place without a
    reload: a tablet left open on the ward page shows a bag found unfit since (STOP THE INFUSION NOW) and an
    infusion started since. Reads only, audits nothing. A page's own poll, no person's doing: a passive endpoint
    (auth.loading.PASSIVE_ENDPOINTS), so that an unattended tablet still idles out. For the bedside roles, as the
    check and the start are: the page's other readers (QA, technicians) keep its Refresh link."""
    db.session.rollback()  # what loading the signed-in user began: the reads below take no write lock (reading)
    with reading(db.session):
        listed = render_template("custody/_running_list.html", running=running_infusions(db.session, label_key()),
                                 now=utcnow())
    return listed, 200, {"Cache-Control": "no-store"}



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
                 too_old: int | None = None, scanner: Any = None, may_sign: bool = True,
                 earlier_trip: bool = False, refused_as: str = "", waiting_check: Any = None,
                 started: Infusion | None = None) -> Any:
    """`too_old`: the check's validity in minutes when it is past it (no confirm nor start form); `earlier_trip`: the
    check was scanned before the bag's last receipt on the ward (no confirm nor start form either); `may_sign`: the
    person who scanned is looking (only they sign with the second person; others are told who must); `refused_as`:
    a refused start's headline when it is not "Do not give this bag" (_start_refused_page), `waiting_check` the check
    that waits for its second person, `started` the infusion started on this check (its signatures are shown
    whatever the bag's state now: a later STOP of the bag does not undo what was signed)."""
    signatures = signatures_of(db.session, confirmed) if confirmed is not None else []
    # a bag not identified because its label code is forged or names no bag of the unit ("Do not give it. Call the
    # cell therapy unit."): the page must not also say "scan its label again", kept for a scan not read whole
    bag_suspect = result.bag is None and any(f.code == "bag" and CALL_UNIT in f.message for f in result.failures)
    now = utcnow()  # one reading: the minutes left and the page's countdown (data-server-now) start from it
    return render_template(
        "custody/result.html", result=result, confirm_form=confirm_form or SecondPersonForm(formdata=None),
        start_form=start_form or StartForm(formdata=None), product=product_of(result.lot) if result.lot else None,
        left=remaining(result.give_before, now), now=now, tz=site_config().tz, confirmed=confirmed,
        signatures=signatures, prescribed=_prescribed_position(result), too_old=too_old, scanner=scanner,
        may_sign=may_sign, may_start=current_user.has_role(*ACTIONS["start"][0]), earlier_trip=earlier_trip,
        bag_suspect=bag_suspect, running=running_infusion_of(db.session, result.bag, label_key()),
        refused_as=refused_as, waiting_check=waiting_check, started=started), status


#: where a refused start is kept between its POST and the STOP screen shown by GET (post-redirect-get)
START_REFUSED = "custody_start_refused"


@bp.route("/check", methods=["POST"])
@bp.route("/checks/<int:check_id>", methods=["GET"])
@roles_required(*BEDSIDE)
def check(check_id: int | None = None) -> Any:
    """POST records a check and redirects to its page; GET shows a recorded check and never records one, so that
    a reload or Back neither records a second check nor asks to send the form again."""
    if check_id is not None:
        return _recorded_page(bedside.get_check(db.session, check_id))
    form = WardForm()
    if not form.validate_on_submit():
        return _ward(form, status=422)
    try:
        result = bedside.bedside_check(db.session, current_user, wristband=form.wristband.data or "",
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
    started = db.session.scalar(select(Infusion).where(Infusion.check_id == row.id).order_by(Infusion.id).limit(1)) \
        if confirmed is not None else None
    return _result_page(result, confirm_form=confirm_form, start_form=start_form, status=status, confirmed=confirmed,
                        too_old=too_old, scanner=scanner, may_sign=row.checked_by_id == current_user.id,
                        earlier_trip=bedside.earlier_trip(row, result.received_at), started=started)


@bp.route("/checks/<int:check_id>/confirm", methods=["POST"])
@roles_required(*BEDSIDE)
def confirm(check_id: int) -> Any:
    form = SecondPersonForm()
    if not form.validate_on_submit():
        return _recorded_page(bedside.get_check(db.session, check_id), confirm_form=form, status=422)
    try:
        bedside.confirm_second_person(
            db.session, current_user, check_id, username=form.second_username.data,
            password=form.second_password.data, checker_password=form.checker_password.data,
            label_key=label_key(), valid_for=check_valid_for())
    except DomainError as error:
        db.session.rollback()
        show_error(form, error)
        return _recorded_page(bedside.get_check(db.session, check_id), confirm_form=form, status=error.status)
    return redirect(url_for("custody.check", check_id=check_id, _method="GET"), 303)


def _start_refused_page(bag_id: int, wristband: str, message: str, status: int = 200,
                        scanned_bag_id: int | None = None, refusal: str = "") -> Any:
    """A refused start as a full STOP screen: the reason first, in words, and nothing to press but "New check: back
    to Ward scanning".
    The wristband just scanned is shown, so a wrong bed is seen at once, and the bag in the nurse's hand: the bag
    of the start, or the other bag scanned (WRONG BAG), since "Do not give this bag" beside the bag that was
    checked would read as "do not give the right bag".
    What the bedside check finds wrong with the bag now comes first: a start with no confirmed check of a bag past
    its post-thaw limit said only "have a second person confirm", sending the nurse for a second person for a bag to
    discard. "Do not give this bag" is said only of a bag that must not be given: not of a bag whose check waits for
    its second person (the page says so, with a link to that check), nor of another patient's bag fit for its own
    patient (WRONG PATIENT at the start: do not start, this bag is not for this patient)."""
    db.session.rollback()
    bag = db.session.get(Bag, scanned_bag_id if scanned_bag_id is not None else bag_id)
    result = evaluate(db.session, wristband, bag.din + bag.check_character if bag else "", label_key())
    refused, refused_as, waiting = Finding("start_refused", message), "", None
    if refusal == "no_confirmed_check" and bag is not None and result.failures:
        # the check's own reasons, in its order, then the missing confirmation (its words alone: the message
        # recorded said the check's reasons too, as they were then)
        failures = [*result.failures,
                    Finding("no_confirmed_check", infusions.no_confirmed_check_words(bag, check_valid_for()))]
    elif refusal == "no_confirmed_check" and bag is not None and not message.startswith("STOP"):
        failures = [refused]
        waiting = _waiting_for_second_person(bag)
        refused_as = "waiting" if waiting is not None else "no_check"
    elif refusal == "wrong_patient":
        unfit = [finding for finding in result.failures if finding.code in BAG_UNFIT]
        failures = [*unfit, refused]  # a bag unfit for anyone says so first: not "take it to its patient"
        refused_as = "" if unfit else "not_this_patient"
    else:
        failures = [refused]
    result.failures, result.notes, result.give_ml = failures, [], None
    return _result_page(result, status=status, refused_as=refused_as, waiting_check=waiting)


def _waiting_for_second_person(bag: Bag) -> TwoPersonCheck | None:
    """The bag's newest check that MATCHES, scanned within the validity window on its present trip to the ward, with
    no second person yet and no STOP scanned since: the one to confirm before the start."""
    since = utcnow() - check_valid_for()
    received = bedside.last_receipt(db.session, bag.id)
    if received is not None and received > since:
        since = received
    check = db.session.scalar(select(TwoPersonCheck).where(
        TwoPersonCheck.bag_id == bag.id, TwoPersonCheck.checked_at >= since)
        .order_by(TwoPersonCheck.id.desc()).limit(1))
    if check is None or check.result != "matches" or check.second_checker_id is not None:
        return None
    return check


def show_start_refused(bag_id: int, error: DomainError) -> Any:
    """Shown by GET (post-redirect-get): Back and reload show the refusal again, never "Confirm Form
    Resubmission", and never send the start again. The session cookie (signed, not encrypted) holds only the
    refusal's audit seq, never the wristband or the words (patients' codes): GET reads them back from the server.
    A refusal that was not audited (a start recorded meanwhile by someone else) keeps its words, which name no one."""
    db.session.rollback()
    recorded = infusions.refused_start(db.session, current_user, bag_id) \
        if isinstance(error, infusions.StartRefused) else None
    session[START_REFUSED] = {"bag_id": bag_id, "seq": recorded.seq} if recorded else \
        {"bag_id": bag_id, "message": error.message}
    return redirect(url_for("custody.start", bag_id=bag_id), 303)


def _confirmed_page(bag_id: int, start_form: StartForm, status: int) -> Any:
    """The confirmed check's page again, its start form showing what is missing (the wristband or the bag not
    scanned, or a bag label that cannot be read)."""
    db.session.rollback()
    check = bedside.latest_confirmed_check(db.session, bag_id, utcnow() - check_valid_for())
    if check is None:
        return show_start_refused(bag_id, Conflict(
            "No confirmed two-person bedside check of this bag is valid now: scan the wristband and the bag, "
            "and have a second person confirm."))
    if start_form.bag.errors:
        # the refused bag text is not shown back: left in the field, one tap on Start sent it again, and a code cut
        # short read as the bag's; the nurse scans the label again into an empty field
        start_form.bag.data = ""
        start_form.bag.raw_data = []
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
        recorded = infusions.refused_start(db.session, current_user, bag_id, seq=refused.get("seq"))
        if recorded is None:  # not this person's refusal: the normal page
            return redirect(url_for("custody.ward"))
        return _start_refused_page(bag_id, recorded.wristband, recorded.message,
                                   scanned_bag_id=recorded.scanned_bag_id, refusal=recorded.refusal)
    form = StartForm()
    if not form.validate_on_submit():
        return _confirmed_page(bag_id, form, 422)
    wristband = form.wristband.data or ""
    try:
        infusion = infusions.start_infusion(db.session, current_user, bag_id, wristband=wristband,
                                            bag_scan=form.bag.data or "", label_key=label_key(),
                                            valid_for=check_valid_for())
    except ValidationFailed as error:
        show_error(form, error)
        return _confirmed_page(bag_id, form, error.status)
    except DomainError as error:
        return show_start_refused(bag_id, error)
    session.pop(START_REFUSED, None)
    flash("Infusion started. Stay with the patient; record any reaction below.", "success")
    return redirect(url_for("custody.infusion", infusion_id=infusion.id))
