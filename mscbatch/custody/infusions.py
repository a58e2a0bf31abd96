"""The infusion record: its start at the bedside (or its refusal, audited), its end with the volume given, and
the reactions recorded during it.

Infusion start needs a fresh scan of the patient's wristband and of the bag in hand, at the bedside: it is
refused when the bag scanned is not the bag being started (another thawed bag on the ward), without a passed,
confirmed two-person bedside check of this bag scanned within the last N minutes (app config
CUSTODY_CHECK_VALID_MINUTES, default 30), when any later scan of the bag said STOP, when the wristband is not the
patient of that check, or when the check run again on that wristband and bag says STOP. Ten concurrent starts record
exactly one infusion: the bag row lock serialises them, the bag leaves "thawed", and infusion.bag_id is UNIQUE.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mscbatch.api.plain_numbers import is_plain_number
from mscbatch.audit import trail
from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.core.dosing import cells_per_kg_words, infused_against_prescribed
from mscbatch.core.identifiers import din_shown
from mscbatch.core.numbers import plain
from mscbatch.core.protocols import format_cells_per_kg
from mscbatch.custody.bedside import (
    DEFAULT_CHECK_VALID,
    _require_bedside_role,
    later_stop,
    latest_confirmed_check,
)
from mscbatch.custody.checks import BedsideResult, evaluate, resolve_bag, stop_running
from mscbatch.custody.models import GRADES, Infusion, InfusionReaction, TwoPersonCheck
from mscbatch.custody.queries import COURSE_BELOW_BAND, CourseShort, course_short, lost_words
from mscbatch.custody.services import _text, lock_bag, record_event, require_authority
from mscbatch.database import utcnow
from mscbatch.errors import Conflict, NotFound, ValidationFailed
from mscbatch.lots.models import Bag
from mscbatch.patients.models import Allocation, Patient
from mscbatch.patients.queries import allocation_given, lock_patient, protocols
from mscbatch.site import local_and_utc


class StartRefused(Conflict):
    """An infusion start the system stopped at the bedside. `refusal` names it in the audit trail and the admin's
    monitoring (e.g. wrong_patient): each is someone about to give a bag that must not be given now."""

    def __init__(self, refusal: str, message: str, scanned_bag_id: int | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.refusal = refusal
        self.scanned_bag_id = scanned_bag_id  # WRONG BAG: the bag in the nurse's hand, not the bag being started


#: refusal code -> how the admin's monitoring page words it
START_REFUSALS = {
    "already_infused": "the bag was already infused",
    "no_confirmed_check": "no confirmed two-person check in the validity window",
    "later_stop": "a later scan of the bag said STOP",
    "wrong_patient": "WRONG PATIENT: the wristband scanned is not the checked patient's",
    "wrong_bag": "WRONG BAG: the bag scanned at the start is not the bag being started",
    "stop": "the check run again at the start said STOP",
}


def _refuse_infused(session: Session, bag: Bag) -> None:
    infusion = session.scalar(select(Infusion).where(Infusion.bag_id == bag.id))
    if infusion is not None and infusion.ended_at is None:  # its own infusion, still running: said as it is
        raise StartRefused("already_infused", f"Bag {din_shown(bag)} is being infused now: its infusion started on "
                                              f"{local_and_utc(infusion.started_at)} and has not been ended.")
    if bag.status == "infused" or infusion is not None:
        raise StartRefused("already_infused", f"Bag {din_shown(bag)} has already been infused.")


def no_confirmed_check_words(bag: Bag, valid_for: timedelta) -> str:
    """Why a start without a confirmed check of the bag was refused, and what to do (the refusal's last reason, after
    the bedside check's own: no_confirmed_check_refusal)."""
    minutes = int(valid_for.total_seconds() // 60)
    return (f"No confirmed two-person bedside check of bag {din_shown(bag)} in the last {minutes} minutes (counted "
            "from the scan): scan the wristband and the bag, and have a second person confirm.")


def no_confirmed_check_refusal(session: Session, bag: Bag, valid_for: timedelta, wristband: str, bag_scan: str,
                               label_key: str) -> StartRefused:
    """A start with no confirmed check: the bedside check run on the scans first, so that a bag that must not be
    given (past its post-thaw limit, recalled...) is said so before "have a second person confirm", which would send
    the nurse for a second person for a bag to put aside or discard; then the missing confirmation."""
    fresh = evaluate(session, wristband, bag_scan, label_key)
    words = no_confirmed_check_words(bag, valid_for)
    if fresh.failures:
        words = ("STOP, do not start: " + " ".join(finding.message for finding in fresh.failures)
                 + " Also: " + words)
    return StartRefused("no_confirmed_check", words)


def _check_to_start_on(session: Session, bag: Bag, valid_for: timedelta, wristband: str, bag_scan: str,
                       label_key: str) -> TwoPersonCheck:
    """The confirmed check the infusion stands on, or a refusal saying what to do."""
    check = latest_confirmed_check(session, bag.id, utcnow() - valid_for)
    if check is None:
        raise no_confirmed_check_refusal(session, bag, valid_for, wristband, bag_scan, label_key)
    stop = later_stop(session, check)
    if stop is not None:
        said = "; ".join(f["message"] for f in stop.failures) or "STOP"
        raise StartRefused("later_stop",
                           f"A later scan of this bag said STOP ({said}). The two-person check before it no longer "
                           "counts. Do not start: find out why, then scan again and have a second person confirm.")
    return check


def _refuse_another_patient(session: Session, check: TwoPersonCheck, fresh: BedsideResult) -> None:
    """The wristband scanned at the start must be the checked patient's: the check proved the bag against one
    patient, and the bag may since have been carried to another bed."""
    if fresh.patient is not None and fresh.patient.id == check.patient_id:
        return
    checked = session.get(Patient, check.patient_id)
    code = checked.code if checked is not None else "?"
    wearer = f"this wristband is {fresh.patient.code}'s" if fresh.patient else "this wristband is not known"
    raise StartRefused("wrong_patient",
                       f"WRONG PATIENT: this wristband is not the patient of the confirmed check. The bag was checked "
                       f"for patient {code}; {wearer}. Do not start the infusion: go to patient {code} and scan the "
                       "wristband on their arm.", field="wristband")


def _refuse_another_bag(session: Session, bag_id: int, bag_scan: str, label_key: str) -> None:
    """The bag scanned at the start, in the nurse's hand, must be the bag being started: with two thawed bags on
    the ward, the start pressed on one bag's page while the other is hung would record the wrong bag."""
    scanned, problem = resolve_bag(session, bag_scan, label_key)
    if scanned is None:
        raise ValidationFailed(f"Bag label scanned at the start: {problem}", field="bag")
    if scanned.id == bag_id:
        return
    started = session.get(Bag, bag_id)
    if started is None:
        raise NotFound(f"No bag {bag_id}.")
    raise StartRefused("wrong_bag",
                       f"WRONG BAG: the bag in your hand is {din_shown(scanned)}, not bag {din_shown(started)} whose "
                       f"two-person check you are starting. Do not start the infusion: hang bag {din_shown(started)}, "
                       f"or start bag {din_shown(scanned)} from its own confirmed check.", scanned_bag_id=scanned.id,
                       field="bag")


def start_infusion(session: Session, actor: Any, bag_id: int, *, wristband: str, bag_scan: str, label_key: str,
                   valid_for: timedelta = DEFAULT_CHECK_VALID) -> Infusion:
    """Start the infusion of a thawed bag on a fresh scan of the patient's wristband and of the bag in hand, taken
    at the bedside just before the start (the bag scan: its label's QR code, the DIN typed with its check
    character, or the label's Code 128, as at the bedside check): the scanned bag must be the bag started, and
    the confirmed check is run again on that wristband and that scan, so the bag is given to the patient it was
    checked for, and only if nothing has changed to STOP since."""
    _require_bedside_role(actor, "The person starting the infusion")
    wristband = _text(wristband, 120)
    bag_scan = _text(bag_scan, 600)
    if not wristband:
        raise ValidationFailed("Scan the patient's wristband again (on the patient's arm) to start the infusion.",
                               field="wristband")
    if not bag_scan:
        # worded as the field's label: the page's summary then says it once, not "label: label again"
        raise ValidationFailed("Scan the label of the bag in your hand (QR code, or the DIN with its check "
                               "character) to start the infusion.", field="bag")
    try:
        with use_case(session, actor):
            started = session.get(Bag, bag_id)
            if started is not None:  # who may start at all (a nurse), before the scans and the check are judged
                require_authority(actor, started, "infusion_started")
            _refuse_another_bag(session, bag_id, bag_scan, label_key)
            bag = lock_bag(session, bag_id)
            _refuse_infused(session, bag)
            if bag.status == "received":  # checked while frozen (the check's page said so): not an unsafe start
                raise Conflict(f"Thaw the bag first: bag {din_shown(bag)} is still frozen. Thaw it (Thaw, on the ward "
                               "page), then scan the wristband and the bag again.", field="bag")
            check = _check_to_start_on(session, bag, valid_for, wristband, bag_scan, label_key)
            if check.patient_id is not None:  # no weight recorded between this check and the commit (PostgreSQL)
                lock_patient(session, check.patient_id)
            fresh = evaluate(session, wristband, bag_scan, label_key)
            _refuse_another_patient(session, check, fresh)
            if not fresh.matches:
                raise StartRefused("stop", "STOP, do not start: " + " ".join(f.message for f in fresh.failures))
            assert check.patient_id is not None and check.second_checker_id is not None
            assert fresh.patient is not None  # _refuse_another_patient: the wristband is the checked patient's
            # the why of every audit event of the start (the infusion, its custody event, the bag's move)
            session.info["audit_reason"] = start_reason(bag, fresh.patient.code, check.id)
            infusion = Infusion(bag_id=bag.id, patient_id=check.patient_id, check_id=check.id,
                                started_at=utcnow(), started_by_id=actor.id, second_person_id=check.second_checker_id)
            session.add(infusion)
            session.flush()
            record_event(session, actor, bag, "infusion_started", scan=bag_scan,
                         details={"infusion_id": infusion.id, "check_id": check.id, "patient_id": check.patient_id,
                                  "wristband": wristband})
    except IntegrityError:
        raise Conflict("This bag's infusion was just recorded by someone else.") from None
    except StartRefused as refused:
        _audit_refused_start(session, actor, bag_id, wristband, refused)
        raise
    return infusion


def start_reason(bag: Bag, patient_code: str, check_id: int) -> str:
    """The audit trail's why of an infusion start, in words, as the other custody steps say theirs."""
    return (f"Infusion started: bag {din_shown(bag)} for patient {patient_code}, on confirmed bedside check "
            f"#{check_id}")


def _audit_refused_start(session: Session, actor: Any, bag_id: int, wristband: str, refused: StartRefused) -> None:
    """A refused start is recorded after the start's own transaction rolled back, in one of its own: what was
    about to be given, to whom, and why not (counted on the admin's monitoring page, logged as a warning)."""
    recorded: dict[str, Any] = {"refusal": refused.refusal, "wristband": wristband}
    if refused.scanned_bag_id is not None:
        recorded["scanned_bag_id"] = refused.scanned_bag_id
    with use_case(session, actor):
        trail.record(session, "infusion_start_refused", "bag", bag_id, new=recorded, reason=refused.message)


@dataclass(frozen=True)
class RefusedStart:
    """A refused start as recorded: its audit seq, the wristband scanned, the words of the refusal, and the bag
    scanned when it was another bag (WRONG BAG: the STOP screen shows that bag, the one not to give)."""

    seq: int
    wristband: str
    message: str
    scanned_bag_id: int | None = None
    refusal: str = ""  # its StartRefused.refusal (START_REFUSALS), as recorded


def refused_start(session: Session, actor: Any, bag_id: int, seq: int | None = None) -> RefusedStart | None:
    """This person's refused start of this bag as recorded (_audit_refused_start), the one with `seq`, or else the
    last. Read back from the server so the refusal's words (patients' codes) never travel in the session cookie,
    and shown to the person refused only."""
    query = select(AuditEvent).where(AuditEvent.action == "infusion_start_refused", AuditEvent.entity_type == "bag",
                                     AuditEvent.entity_id == str(bag_id), AuditEvent.actor_id == actor.id)
    if seq is not None:
        query = query.where(AuditEvent.seq == seq)
    event = session.scalars(query.order_by(AuditEvent.seq.desc()).limit(1)).first()
    if event is None:
        return None
    try:
        recorded = json.loads(event.new_value or "{}")
    except ValueError:
        recorded = {}
    recorded = recorded if isinstance(recorded, dict) else {}
    scanned_bag = str(recorded.get("scanned_bag_id") or "")  # the trail writes values as text (canonical_json)
    return RefusedStart(event.seq, str(recorded.get("wristband") or ""), event.reason or "",
                        int(scanned_bag) if scanned_bag.isascii() and scanned_bag.isdigit() else None,
                        str(recorded.get("refusal") or ""))


def get_infusion(session: Session, infusion_id: int) -> Infusion:
    infusion = session.get(Infusion, infusion_id)
    if infusion is None:
        raise NotFound(f"No infusion {infusion_id}.")
    return infusion


MAX_VOLUME_ML = 100_000


def _volume(text: Any) -> Decimal:
    typed = str(text).strip().replace(",", ".")
    try:
        if not is_plain_number(typed, signed=True):  # Decimal() reads "1_0" as 10 and "１２" as 12
            raise ValueError(typed)
        volume = Decimal(typed)
    except (InvalidOperation, ValueError):
        raise ValidationFailed("Volume infused: give a number of mL, e.g. 20.5.", field="volume_ml") from None
    # bounded before quantize(), which cannot hold more than 28 digits (a 500 found by tests/fuzz)
    if not volume.is_finite() or volume < 0 or volume >= MAX_VOLUME_ML:
        raise ValidationFailed(f"Volume infused: a number of mL, 0 or more and under {MAX_VOLUME_ML}.",
                               field="volume_ml")
    if volume != volume.quantize(Decimal("0.01")):  # stored with 2 decimals: never rounded silently
        raise ValidationFailed("Volume infused: at most 2 decimals (e.g. 20.55 mL).", field="volume_ml")
    # "-0" is 0: never "-0 mL" in the words, nor "-0.00" in the custody event beside the record's 0.00
    return volume.quantize(Decimal("0.01")).copy_abs()


def dose_tolerance(protocol_id: str) -> Decimal:
    """The protocol's dose tolerance (%); none when the protocol is gone: every shortfall then needs its reason."""
    protocol = protocols().get(protocol_id)
    return protocol.dosing.tolerance_percent if protocol is not None else Decimal(0)


def _outside_words(outside: str, volume: Decimal, prescribed: Any) -> str:
    if outside == "more":
        return (f"Volume infused: {volume.normalize():f} mL is MORE than the {prescribed.normalize():f} mL prescribed "
                "from this bag. If that much was given, say why (it is recorded and the clinician must be told).")
    return (f"Volume infused: {volume.normalize():f} mL is LESS than the {prescribed.normalize():f} mL prescribed "
            "from this bag, by more than the protocol's dose tolerance. Say why (for example: stopped for a "
            "reaction, the bag leaked): it is recorded and the clinician must be told.")


def _short_words(short: CourseShort, volume: Decimal) -> str:
    lost = (" (" + ", ".join(f"bag {din_shown(bag)} {lost_words(bag)}" for bag in short.lost) + ")") if short.lost else ""
    what = ("the prescriber stopped this course: with what was given before," if short.stopped else
            f"what was given, and the bags still to give as prescribed{lost}:")
    return (f"Volume infused: with {volume.normalize():f} mL from this bag ({what} "
            f"{cells_per_kg_words(short.expected_cells, short.weight_kg)} in all), the patient's dose is BELOW the "
            f"prescription's band: {format_cells_per_kg(short.level_cells_per_kg)} prescribed, no less than "
            f"{cells_per_kg_words(short.low_cells, short.weight_kg)}. Check the volume; if that is what was given, "
            "say why (it is recorded and the clinician must be told).")


#: the longest reason for a volume outside the prescription (the web form's and the API's limit alike)
END_REASON_MAX = 500
#: the infusion_ended detail that flags an infusion ended sooner than its protocol's infusion time (with its reason)
SHORTER_THAN_PROTOCOL = "shorter_than_protocol"
#: the one reason that covers a volume, course or time outside the prescription when the system itself said STOP THE
#: INFUSION NOW (its bag recalled or found unfit, or its course stopped by the prescriber, since the start:
#: checks.stop_running, what the page's STOP uses). Its words are kept as documented (README), the STOP's own words
#: being recorded with it.
#: Accepted only then: sent while the bag is still fit, it is refused (it would record a STOP that never was).
STOPPED_BY_SYSTEM = "Stopped: STOP THE INFUSION NOW (bag recalled / unfit)"
#: the infusion_ended detail that records an end on the system's STOP (with the STOP's words)
STOPPED_ON_STOP = "stopped_on_stop"


def infusion_hours(calculation: Any, protocol_id: str) -> Decimal | None:
    """The time the infusion is to be given over (h): the prescription's stored calculation's infusion_duration_h (the
    one its endotoxin limit K x weight x time was judged with), else its protocol's; None when neither has one."""
    try:
        hours = Decimal(str(calculation["infusion_duration_h"]))
    except (KeyError, TypeError, ValueError, ArithmeticError):
        protocol = protocols().get(protocol_id)
        hours = protocol.dosing.infusion_duration_h if protocol is not None else None
    return hours if hours is not None and hours.is_finite() and hours > 0 else None


def lasted_words(lasted: timedelta) -> str:
    """A duration as a nurse reads it: "0 min 1 s", "1 h 2 min 5 s"."""
    seconds = max(int(lasted.total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{f'{hours} h ' if hours else ''}{minutes} min {seconds} s"


@dataclass(frozen=True)
class BagTime:
    """The time the protocol gives this bag over: its share of the course's infusion time (infusion_hours, the time
    of the whole prescribed dose, which its endotoxin limit K x weight x time assumes), in proportion to the volume
    the prescription draws from it against the course's draws (three bags of 25 mL over 1 h: 20 min each)."""
    hours: Decimal  # the course's infusion time
    bag_ml: Decimal | None  # what the prescription draws from this bag (None: the whole time is the bag's)
    course_ml: Decimal | None  # what it draws from all its bags

    @property
    def share(self) -> Decimal:
        if self.bag_ml is None or not self.course_ml or self.course_ml <= 0 or self.bag_ml >= self.course_ml:
            return Decimal(1)
        return self.bag_ml / self.course_ml

    @property
    def expected(self) -> timedelta:
        return timedelta(seconds=round(float(self.hours * 3600 * self.share)))

    def words(self) -> str:
        over = duration_words(self.expected)
        if self.share == 1 or self.bag_ml is None or self.course_ml is None:
            return f"the protocol gives it over {over}"
        return (f"the protocol gives this bag ({plain(self.bag_ml)} of {plain(self.course_ml)} mL of the course) over "
                f"{over} (the course over {duration_words(timedelta(hours=float(self.hours)))})")


def duration_words(duration: timedelta) -> str:
    """An expected time as a nurse reads it, its zero parts left out: "1 h", "20 min", "1 h 30 min", "12 min 30 s"."""
    seconds = max(int(duration.total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else "", f"{seconds} s" if seconds else ""]
    return " ".join(part for part in parts if part) or "0 s"


def _bag_time(session: Session, allocation: Any) -> BagTime | None:
    """This bag's share of its course's infusion time, or None when the protocol gives no time. The course is every
    allocation the prescription was signed with (released ones too: a course stopped while this bag ran was still
    prescribed, and timed, as a whole)."""
    hours = infusion_hours(allocation.prescription.calculation, allocation.prescription.protocol_id)
    if hours is None:
        return None
    course_ml = session.scalar(select(func.sum(Allocation.volume_ml))
                               .where(Allocation.prescription_id == allocation.prescription.id))
    bag_ml = allocation.allocation.volume_ml
    return BagTime(hours, Decimal(bag_ml) if bag_ml is not None else None,
                   Decimal(str(course_ml)) if course_ml is not None else None)


def _too_fast_words(lasted: timedelta, time: BagTime) -> str:
    return (f"The infusion lasted {lasted_words(lasted)}; {time.words()}: say why (it is recorded and the clinician "
            "must be told).")


def end_infusion(session: Session, actor: Any, infusion_id: int, *, volume_ml: Any, reason: str = "",
                 label_key: str = "") -> Infusion:
    """Record the end and the volume given. More than the prescription draws from the bag (a partial dose given
    whole), or less by more than the protocol's dose tolerance (stopped early), is recorded as it happened, never
    refused, but only with the reason, and flagged on the record: the dose given is then outside the prescription
    and the clinician must know. So is a course whose total falls below the prescription's band although each bag
    is inside the tolerance (two bags each 9 % short): what the prescription has given, this bag at its volume, plus
    what its bags still to give would give as prescribed, below the band's lower limit (COURSE_BELOW_BAND). And so is
    an end recorded sooner than the infusion time the prescription (its protocol) gives the cells over
    (SHORTER_THAN_PROTOCOL: the protocols give them by slow IV infusion), the reason then named as the field.

    An infusion stopped because the system said STOP THE INFUSION NOW (its bag recalled or found unfit, or its course
    stopped by the prescriber, since the start, as the infusion page's STOP says: checks.stop_running) needs no three
    reasons: STOPPED_BY_SYSTEM covers them all, and is accepted only while that STOP stands (recorded as the end's
    reason, with the STOP's words)."""
    _require_bedside_role(actor, "The person ending the infusion")
    volume = _volume(volume_ml)
    reason = (reason or "").strip()
    if len(reason) > END_REASON_MAX:  # never cut: the record the pages flag keeps it whole, or refuses it
        raise ValidationFailed(f"Why the volume differs from the prescription: at most {END_REASON_MAX} characters "
                               f"({len(reason)} given).", field="reason")
    with use_case(session, actor, reason or None):
        infusion = session.get(Infusion, infusion_id, with_for_update=True, populate_existing=True)
        if infusion is None:
            raise NotFound(f"No infusion {infusion_id}.")
        bag = lock_bag(session, infusion.bag_id)
        if infusion.ended_at is not None:
            raise Conflict("This infusion has already ended.")
        if volume > bag.volume_ml:
            raise ValidationFailed(f"Volume infused: at most the bag's {bag.volume_ml.normalize():f} mL.",
                                   field="volume_ml")
        allocation = allocation_given(session, bag.id)  # also when the course was stopped since the start
        prescribed = allocation.allocation.volume_ml if allocation is not None else None
        outside = None if allocation is None or prescribed is None else infused_against_prescribed(
            volume, prescribed, dose_tolerance(allocation.prescription.protocol_id))
        short = None if allocation is None else course_short(session, allocation.prescription,
                                                               ending=(infusion.id, volume))
        now = utcnow()
        # the protocols give the cells by slow IV infusion over their infusion time: an end recorded sooner (25 mL
        # "given" in one second) is recorded only with the reason, as a volume outside the prescription is
        # over this bag's share of the course's time (the protocol's time is the whole prescribed dose's)
        time = None if allocation is None else _bag_time(session, allocation)
        lasted = now - _aware(infusion.started_at)
        too_fast = time is not None and lasted < time.expected
        stopped = _stopped_on_stop(session, infusion, bag, reason, label_key)
        if stopped and outside == "more":  # a STOP explains giving less, never more than prescribed
            raise ValidationFailed(f"{_outside_words(outside, volume, prescribed)} The system's STOP explains an "
                                   "infusion stopped early, not a volume above the prescription: say in your own "
                                   "words why more was given.", field="reason")
        if (outside or short or too_fast) and len(reason) < 5:
            words = [_outside_words(outside, volume, prescribed)] if outside else []
            words += [_short_words(short, volume)] if short else []
            words += [_too_fast_words(lasted, time)] if too_fast and time is not None else []
            # the volume named when it is outside (check it first), else the reason the time asks for
            raise ValidationFailed(" ".join(words), field="volume_ml" if (outside or short) else "reason")
        # the why of every audit event of the end: how it ended, and the reason given, in the nurse's words
        session.info["audit_reason"] = end_reason(infusion.id, bag, volume, stopped=bool(stopped), outside=outside,
                                                  prescribed=prescribed, short=bool(short),
                                                  lasted=lasted if too_fast else None, reason=reason)
        infusion.ended_at, infusion.ended_by_id, infusion.volume_infused_ml = now, actor.id, volume
        # why the volume, the course or the time is outside the prescription, on the record the pages show (audited)
        infusion.volume_reason = reason if (outside or short or too_fast or stopped) else None
        details: dict[str, Any] = {"infusion_id": infusion.id, "volume_infused_ml": str(volume)}
        if stopped:  # the system's STOP is the reason: its words are kept with it
            details.update({STOPPED_ON_STOP: True, "stop_reasons": stopped, "why": reason})
        if outside:
            details.update({f"{'over' if outside == 'more' else 'under'}_prescription": True,
                            "prescribed_ml": str(prescribed), "why": reason})
        if too_fast:
            assert time is not None
            details.update({SHORTER_THAN_PROTOCOL: True, "lasted_s": int(lasted.total_seconds()),
                            "protocol_hours": f"{time.hours.normalize():f}",
                            "bag_expected_s": int(time.expected.total_seconds()), "why": reason})
        if short:  # the course as a whole falls below the prescription's band: flagged as the bag's volume is
            details.update({COURSE_BELOW_BAND: True,
                            "course_expected_cells": f"{short.expected_cells.quantize(Decimal(1)):f}",
                            "course_low_cells": f"{short.low_cells.quantize(Decimal(1)):f}", "why": reason})
        record_event(session, actor, bag, "infusion_ended", details=details, reason=reason)
    return infusion


def end_reason(infusion_id: int, bag: Bag, volume: Decimal, *, stopped: bool = False, outside: str | None = None,
               prescribed: Any = None, short: bool = False, lasted: timedelta | None = None, reason: str = "") -> str:
    """The audit trail's why of an infusion end, in words: "Infusion #4 ended: 25 mL of bag G1234 17 654321 A
    given", then what differs from the prescription, then the reason given ("Why: ...")."""
    how = "stopped on the system's STOP THE INFUSION NOW" if stopped else "ended"
    words = f"Infusion #{infusion_id} {how}: {plain(volume)} mL of bag {din_shown(bag)} given"
    if outside and prescribed is not None:
        words += f", {'MORE' if outside == 'more' else 'LESS'} than the {plain(Decimal(prescribed))} mL prescribed"
    if short:
        words += ", the course below the prescription's band"
    if lasted is not None:
        words += f", after {lasted_words(lasted)} (sooner than the protocol's time)"
    return f"{words}. Why: {reason}" if reason else f"{words}."


def _stopped_on_stop(session: Session, infusion: Infusion, bag: Bag, reason: str, label_key: str) -> list[str]:
    """The STOP's words when the reason given is STOPPED_BY_SYSTEM and the system says STOP THE INFUSION NOW for this
    infusion now; [] for any other reason; a refusal when STOPPED_BY_SYSTEM is given while no STOP stands."""
    if reason != STOPPED_BY_SYSTEM:
        return []
    words = stop_running(session, infusion, bag, session.get(Patient, infusion.patient_id), label_key)
    if not words:
        raise ValidationFailed("The system has not said STOP THE INFUSION NOW for this infusion: its bag is not "
                               "recalled or unfit, and its course was not stopped. If the volume or the time differs "
                               "from the prescription, say why in your own words.", field="reason")
    return words


def _aware(moment: datetime) -> datetime:
    """A stored time as UTC-aware (a database without time zones gives it back naive, in UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ReactionDetails:
    ctcae_term: str
    grade: Any
    description: str = ""
    onset_at: datetime | None = None  # when the reaction began (time zone aware); None: now, as it is recorded


DESCRIPTION_MAX = 4000


def _onset(onset_at: datetime | None, infusion: Infusion, now: datetime) -> datetime:
    if onset_at is None:
        return now
    if onset_at.tzinfo is None or onset_at.utcoffset() is None:
        raise ValidationFailed("Onset: give the time with its time zone.", field="onset_at")
    # no slack, as every other "not in the future" time of the app (freezing, harvest, weights): a reaction dated
    # minutes ahead of the server (a fast ward device, a typo) would read on the record as after what followed it
    if onset_at > now:
        try:
            said = local_and_utc(onset_at.astimezone(UTC))  # as given, maybe with another offset: said in UTC too
        except OverflowError:  # the calendar's last day with an offset (9999-12-31T23:59-14:00) has no UTC time
            said = onset_at.isoformat()
        raise ValidationFailed(f"Onset: the reaction cannot begin in the future ({said} is after "
                               f"now, {local_and_utc(now)}). Give the time it began, or leave it empty for now.",
                               field="onset_at")
    started = infusion.started_at
    if onset_at < started:
        raise ValidationFailed(f"Onset: the reaction cannot begin before the infusion started "
                               f"({local_and_utc(started)}).", field="onset_at")
    return onset_at


def record_reaction(session: Session, actor: Any, infusion_id: int, details: ReactionDetails) -> InfusionReaction:
    _require_bedside_role(actor, "The person recording a reaction")
    term = (details.ctcae_term or "").strip()
    if not term or len(term) > 120:
        raise ValidationFailed("Give the CTCAE term (e.g. Infusion related reaction).", field="ctcae_term")
    try:
        grade = int(str(details.grade).strip())
    except ValueError:
        grade = 0
    if grade not in GRADES:
        raise ValidationFailed("Grade: 1 (mild) to 5 (death), as CTCAE defines.", field="grade")
    description = (details.description or "").strip()
    if len(description) > DESCRIPTION_MAX:  # never cut: the end of a clinical note is as much the record as its start
        raise ValidationFailed(f"What happened: at most {DESCRIPTION_MAX} characters ({len(description)} given).",
                               field="description")
    with use_case(session, actor):
        infusion = get_infusion(session, infusion_id)
        session.info["audit_reason"] = reaction_reason(infusion.id, term, grade)
        now = utcnow()
        reaction = InfusionReaction(infusion_id=infusion.id, ctcae_term=term, grade=grade, description=description,
                                    onset_at=_onset(details.onset_at, infusion, now), recorded_by_id=actor.id,
                                    recorded_at=now)
        session.add(reaction)
    return reaction


def reaction_reason(infusion_id: int, term: str, grade: int) -> str:
    """The audit trail's why of a recorded reaction: "Reaction recorded during infusion #4: grade 3 (severe) Fever"."""
    severity = GRADES[grade].split(" - ", 1)[-1]
    return f"Reaction recorded during infusion #{infusion_id}: grade {grade} ({severity}) {term}"
