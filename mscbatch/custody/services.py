"""Chain of custody use cases: one function per use case, each one transaction, each audited.

Every custody event goes through record_event, which moves the bag through the BAG state machine of
mscbatch.core.states (impossible sequences and wrong roles are refused there: thawed before received, infused
twice...) and appends one CustodyEvent. The bag row is locked (SELECT ... FOR UPDATE on PostgreSQL; SQLite
serialises writers with BEGIN IMMEDIATE) so two hand-overs of one bag never interleave.

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
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mscbatch.audit import trail
from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.auth.lockout import count_wrong_password, masked_name
from mscbatch.auth.models import User
from mscbatch.auth.passwords import verify_password
from mscbatch.auth.services import admin_beside_words
from mscbatch.core.dosing import cells_per_kg_words, infused_against_prescribed
from mscbatch.core.protocols import format_cells_per_kg
from mscbatch.core.states import BAG, TransitionRefused
from mscbatch.custody.checks import (
    BedsideResult,
    donor_problem,
    evaluate,
    local_and_utc,
    lot_unusable,
    resolve_bag,
)
from mscbatch.custody.models import GRADES, CustodyEvent, Infusion, InfusionReaction, TwoPersonCheck
from mscbatch.custody.queries import COURSE_BELOW_BAND, CourseShort, course_short
from mscbatch.database import locked_row, reading, utcnow
from mscbatch.donors.models import Donor
from mscbatch.errors import AuthenticationFailed, Conflict, NotFound, PermissionDenied, ValidationFailed
from mscbatch.labelling.services import dispatch_label_problem
from mscbatch.lots.models import Bag, Lot
from mscbatch.patients.models import Patient
from mscbatch.patients.queries import allocation_given, allocation_of_bag, lock_patient, protocols
from mscbatch.recall.queries import bag_hold
from mscbatch.release.queries import bag_release
from mscbatch.signatures.services import sign

DEFAULT_CHECK_VALID = timedelta(minutes=30)
BEDSIDE_ROLES = ("nurse", "clinician")

#: event kind -> bag state it moves to (None: no state change, allowed only from the listed states)
EVENT_TARGETS: dict[str, str | None] = {
    "stored": "stored", "allocated": "allocated", "dispatched": "dispatched", "received": "received",
    "thawed": "thawed", "infusion_started": "infused", "returned": "returned", "discarded": "discarded",
    "labelled": None, "moved": None, "released": None, "bedside_verified": None, "infusion_ended": None,
}
#: a bag in these states never returns to the tank: its storage position is freed for another bag
FINAL_STATES = ("infused", "discarded")
STATELESS_FROM: dict[str, tuple[str, ...]] = {
    "labelled": ("stored", "allocated", "on_hold", "returned"),
    "moved": ("stored", "allocated", "on_hold", "returned"),
    "released": ("stored", "allocated", "on_hold"),
    "bedside_verified": ("received", "thawed"),
    "infusion_ended": ("infused",),
}


def _roles(actor: Any) -> frozenset[str]:
    return frozenset(getattr(actor, "role_names", ()) or ())


def lock_bag(session: Session, bag_id: int) -> Bag:
    return locked_row(session, Bag, bag_id, "bag")


def _text(value: Any, limit: int) -> str:
    return ("" if value is None else str(value)).strip()[:limit]


def record_event(session: Session, actor: Any, bag: Bag, kind: str, *, location: str = "", scan: str = "",
                 details: dict[str, Any] | None = None, reason: str = "", at: datetime | None = None) -> CustodyEvent:
    """Append one custody event and move the bag (inside the caller's use case; `bag` locked by the caller)."""
    if kind not in EVENT_TARGETS:
        raise ValidationFailed(f"Unknown custody event {kind!r}.", field="kind")
    target = EVENT_TARGETS[kind]
    subject = f"bag {bag.din}"
    current = bag.status
    if target is not None:
        try:
            BAG.check(current, target, _roles(actor), subject=subject)
        except TransitionRefused as refusal:
            raise (PermissionDenied if refusal.kind == "authority" else Conflict)(
                f"Refused: {refusal}.") from None
        bag.status = target
        if target in FINAL_STATES and bag.box_id is not None:
            details = dict(details or {}, freed_box_id=bag.box_id, freed_position=bag.position)
            bag.box_id, bag.position = None, None  # the slot was kept while the bag could come back; now it is free
    elif current not in STATELESS_FROM[kind]:
        raise Conflict(f"Refused: {subject} is {current.replace('_', ' ')}; "
                       f"'{kind.replace('_', ' ')}' cannot be recorded now.")
    event = CustodyEvent(bag_id=bag.id, kind=kind, occurred_at=at or utcnow(), actor_id=actor.id,
                         location=_text(location, 120), scan=_text(scan, 600), from_status=current,
                         to_status=target, details_json=json.dumps(details or {}, sort_keys=True),
                         reason=_text(reason, 2000))
    session.add(event)
    session.flush()
    return event


def events_of(session: Session, bag_id: int) -> list[CustodyEvent]:
    return list(session.scalars(select(CustodyEvent).where(CustodyEvent.bag_id == bag_id).order_by(CustodyEvent.id)))


def bag_for_scan(session: Session, scan: str, label_key: str) -> Bag:
    bag, problem = resolve_bag(session, scan, label_key)
    if bag is None:
        raise ValidationFailed(problem or "Unknown bag.", field="bag")
    return bag


# ---- hand-overs ------------------------------------------------------------------------------------------

def _simple(session: Session, actor: Any, bag_id: int, kind: str, *, location: str, scan: str,
            details: dict[str, Any] | None = None, reason: str = "") -> CustodyEvent:
    with use_case(session, actor, reason or None):
        bag = lock_bag(session, bag_id)
        event = record_event(session, actor, bag, kind, location=location, scan=scan, details=details, reason=reason)
    return event


def dispatch(session: Session, actor: Any, bag_id: int, *, courier: str, shipper: str, temperature_logger_id: str,
             location: str = "", scan: str = "") -> CustodyEvent:
    """The bag leaves the unit for the ward: courier, shipper and the temperature logger travelling with it."""
    details = {"courier": _text(courier, 120), "shipper": _text(shipper, 120),
               "temperature_logger_id": _text(temperature_logger_id, 60)}
    missing = [name for name, value in details.items() if not value]
    if missing:
        said = {name: f"Give the {name.replace('_', ' ')}." for name in missing}
        raise ValidationFailed(" ".join(said.values()), errors={name: [words] for name, words in said.items()})
    with use_case(session, actor):
        bag = lock_bag(session, bag_id)
        unfit = _unfit(session, bag)
        if unfit:
            raise Conflict(f"Bag {bag.din} cannot leave the unit: {unfit}")
        if allocation_of_bag(session, bag.id) is None:
            raise Conflict(f"Bag {bag.din} is not allocated to a patient by a signed prescription.")
        label = dispatch_label_problem(session, bag)  # the label the bag wears is what the ward will read
        if label:
            raise Conflict(f"Bag {bag.din} cannot leave the unit: {label}.")
        event = record_event(session, actor, bag, "dispatched", location=location, scan=scan, details=details)
    return event


def _dispatcher_id(session: Session, bag_id: int) -> int | None:
    """Who recorded the bag's latest dispatch (the giver of the hand-over now under way), or None."""
    return session.scalar(select(CustodyEvent.actor_id).where(CustodyEvent.bag_id == bag_id,
                                                              CustodyEvent.kind == "dispatched")
                          .order_by(CustodyEvent.id.desc()).limit(1))


def receive(session: Session, actor: Any, bag_id: int, *, location: str = "", scan: str = "") -> CustodyEvent:
    """The ward takes the bag over from the courier. A hand-over has two people: whoever dispatched the bag (one
    account may hold technician and nurse) cannot also record its receipt."""
    with use_case(session, actor):
        bag = lock_bag(session, bag_id)
        if bag.status == "dispatched" and _dispatcher_id(session, bag.id) == actor.id:
            raise Conflict(f"Refused: you dispatched bag {bag.din} yourself; its receipt on the ward is recorded by "
                           "someone else (the nurse who takes it over from the courier).")
        event = record_event(session, actor, bag, "received", location=location, scan=scan)
    return event


def thaw(session: Session, actor: Any, bag_id: int, *, location: str = "", scan: str = "") -> CustodyEvent:
    """Thawing starts the post-thaw clock (the limit comes from the product, config/products.toml). A bag that has
    become unfit since it left the unit (expired, its lot recalled or failed late, its donor reopened, on hold) is
    not thawed: the bedside check would stop it anyway, and a thawed bag can never be used again, nor be kept for
    the inquiry as it was."""
    with use_case(session, actor):
        bag = lock_bag(session, bag_id)
        unfit = _unfit(session, bag)
        if unfit:
            raise Conflict(f"DO NOT THAW bag {bag.din}: {unfit} Keep it frozen and call the cell therapy unit.")
        event = record_event(session, actor, bag, "thawed", location=location, scan=scan)
    return event


def _unfit(session: Session, bag: Bag) -> str | None:
    """What makes the bag unfit to be sent or thawed now, in words, or None: the product checks of the bedside
    (mscbatch.custody.checks.judge) that do not depend on the patient."""
    if bag.expires_at <= utcnow():
        return f"it expired on {local_and_utc(bag.expires_at)}."
    state = bag_release(session, bag.id)
    lot = session.get(Lot, bag.lot_id)
    unusable = lot_unusable(lot.lot_number, lot.status, state) if lot is not None else None
    if unusable:  # the bedside check's words (checks.judge)
        return unusable.message
    donor = session.execute(select(Donor.code, Donor.status).join(Lot, Lot.donor_id == Donor.id)
                            .where(Lot.id == bag.lot_id)).first()
    problem = donor_problem(*donor) if donor else None
    if problem:
        return problem
    hold = bag_hold(session, bag.id)
    if hold:
        return f"it is on hold ({hold})."
    return None


def return_bag(session: Session, actor: Any, bag_id: int, *, reason: str, location: str = "",
               scan: str = "") -> CustodyEvent:
    if not (reason or "").strip():
        raise ValidationFailed("Say why the bag is returned.", field="reason")
    return _simple(session, actor, bag_id, "returned", location=location, scan=scan, reason=reason)


def discard(session: Session, actor: Any, bag_id: int, *, reason: str, location: str = "",
            scan: str = "") -> CustodyEvent:
    if not (reason or "").strip():
        raise ValidationFailed("Say why the bag is discarded.", field="reason")
    return _simple(session, actor, bag_id, "discarded", location=location, scan=scan, reason=reason)


# ---- bedside check ---------------------------------------------------------------------------------------

def _require_bedside_role(user: Any, who: str) -> None:
    if not user.has_role(*BEDSIDE_ROLES):
        raise PermissionDenied(f"{who} must be a nurse or a clinician.")


def bedside_check(session: Session, actor: Any, *, wristband: str, bag_scan: str, label_key: str) -> BedsideResult:
    """Run the bedside check and record it (MATCHES or STOP) as a TwoPersonCheck awaiting its second person."""
    _require_bedside_role(actor, "The person doing the bedside check")
    empty = {name: [words] for name, value, words in (
        ("wristband", wristband, "Scan the patient's wristband."), ("bag", bag_scan, "Scan the bag label."))
        if not (value or "").strip()}
    if empty:  # nothing to check: not a STOP of a bag for a patient, and not counted as one
        raise ValidationFailed("Nothing was checked: " + " ".join(words[0] for words in empty.values()),
                               errors=empty)
    with reading(session):  # the check's record is then written in its own short write transaction
        result = evaluate(session, wristband, bag_scan, label_key)
    with use_case(session, actor):  # one audited row at every scan: written without the unit of work's cost
        result.check_id = trail.insert_audited(session, TwoPersonCheck, dict(
            bag_id=result.bag.id if result.bag else None, patient_id=result.patient.id if result.patient else None,
            wristband_scan=_text(wristband, 120), bag_scan=_text(bag_scan, 600),
            result="matches" if result.matches else "stop",
            failures_json=json.dumps([{"code": f.code, "message": f.message} for f in result.failures]),
            notes_json=json.dumps(result.notes), checked_by_id=actor.id)).id
    return result


def get_check(session: Session, check_id: int) -> TwoPersonCheck:
    check = session.get(TwoPersonCheck, check_id)
    if check is None:
        raise NotFound(f"No bedside check {check_id}.")
    return check


#: the audit reasons of a second person refused for who they are, not for a password (monitoring counts them apart)
SAME_PERSON_REASON = "second person is the first checker"
NOT_BEDSIDE_ROLE_REASON = "second person: not a nurse or a clinician"


def verify_second_person(session: Session, username: str, password: str, by: Any = None) -> User:
    """Check another person's credentials without opening a session for them. Failures are audited and count
    towards the account lockout, as at sign-in; `by`, the signed-in person who typed them, is the events' actor
    (who guessed a colleague's password, or locked them out, is then in the trail, not "system")."""
    name = (username or "").strip().lower()
    user = session.scalar(select(User).where(User.username == name))
    if user is None:
        with use_case(session, by, "second person: unknown user name"):
            trail.record(session, "second_person_refused", "user_account", None, new=masked_name(name))
        raise AuthenticationFailed("Second person: wrong user name or password.", field="second_password")
    if user.locked_out_at is not None or not user.is_enabled:
        with use_case(session, by, "second person: account locked or disabled"):
            trail.record(session, "second_person_refused", "user_account", user.id)
        raise AuthenticationFailed("Second person: this account is locked or disabled.", field="second_username")
    why = admin_beside_words(user)  # locked and disabled are refused above: the rest of User.is_active
    if why:  # the administrator role held beside nurse (from an older version): may not sign in
        with use_case(session, by, "second person: account may not sign in"):
            trail.record(session, "second_person_refused", "user_account", user.id)
        raise AuthenticationFailed(f"Second person: this account may not sign in, as {why}.", field="second_username")
    if not user.has_role(*BEDSIDE_ROLES):  # before the password: a wrong one would count towards a lockout that a
        # nurse could then inflict on any QA or admin account by typing its user name here
        with use_case(session, by, NOT_BEDSIDE_ROLE_REASON):
            trail.record(session, "second_person_refused", "user_account", user.id)
        raise PermissionDenied("The second person must be a nurse or a clinician.", field="second_username")
    if not verify_password(user.password_hash, password or ""):
        with use_case(session, by, "second person: wrong password"):
            count_wrong_password(user)
            trail.record(session, "second_person_refused", "user_account", user.id)
        raise AuthenticationFailed("Second person: wrong user name or password.", field="second_password")
    return user


#: The meanings of the two signatures on a confirmed bedside check (DOMAIN.md 8: "Both people sign").
CHECKED_MEANING = "Bedside check: this bag for this patient (scanned and checked)"
CONFIRMED_MEANING = "Bedside check: this bag for this patient (confirmed by a second person)"


def confirm_second_person(session: Session, actor: Any, check_id: int, *, username: str, password: str,
                          checker_password: str, label_key: str,
                          valid_for: timedelta = DEFAULT_CHECK_VALID) -> TwoPersonCheck:
    """A second qualified person confirms a MATCHES check with their own user name and password, and both people
    sign it: the person who scanned (the signed-in user, who re-enters their password: an open session or a
    scanner's token alone is not a person) and the second person. The two signatures lock the check."""
    get_check(session, check_id)
    second = verify_second_person(session, username, password, by=actor)
    check = get_check(session, check_id)
    if second.id == check.checked_by_id:
        with use_case(session, second, SAME_PERSON_REASON):
            trail.record(session, "second_person_refused", "two_person_check", check.id)
        raise Conflict("The second person must be someone else: the same person cannot check twice.",
                       field="second_username")
    if check.result != "matches":
        raise Conflict("This check said STOP: it cannot be confirmed. Scan again.")
    if check.second_checker_id is not None:
        raise Conflict("This check is already confirmed.")
    if utcnow() - check.checked_at > valid_for:
        raise Conflict("This check is too old: scan the wristband and the bag again.")
    if actor.id != check.checked_by_id:
        raise PermissionDenied("Only the person who did the check can ask for its confirmation.")
    again = evaluate(session, check.wristband_scan, check.bag_scan, label_key)
    if not again.matches:
        raise Conflict("Since the scan, the check changed to STOP: " + " ".join(f.message for f in again.failures))
    with use_case(session, actor):
        check = session.get(TwoPersonCheck, check_id, with_for_update=True, populate_existing=True)
        assert check is not None and again.bag is not None
        if check.second_checker_id is not None:
            raise Conflict("This check is already confirmed.")
        check.second_checker_id, check.confirmed_at = second.id, utcnow()
        try:  # a wrong password rolls the confirmation back; sign() records the refusal and counts it
            sign(session, actor, checker_password, check, CHECKED_MEANING)
        except AuthenticationFailed as refused:
            raise AuthenticationFailed(f"You, who scanned: {refused.message}", field="checker_password") from None
        sign(session, second, password, check, CONFIRMED_MEANING)
        bag = lock_bag(session, again.bag.id)
        record_event(session, actor, bag, "bedside_verified", scan=check.bag_scan,
                     details={"check_id": check.id, "wristband": check.wristband_scan, "first_checker": actor.id,
                              "second_checker": second.id, "patient_id": check.patient_id})
    return check


# ---- infusion --------------------------------------------------------------------------------------------

def latest_confirmed_check(session: Session, bag_id: int, since: datetime) -> TwoPersonCheck | None:
    """The bag's newest confirmed MATCHES scanned at or after `since`. The scan's time counts, not only the
    confirmation's: both people vouch for what was scanned then, and a confirmation late in the window must not
    stretch it to twice its length."""
    return session.scalar(select(TwoPersonCheck).where(
        TwoPersonCheck.bag_id == bag_id, TwoPersonCheck.result == "matches",
        TwoPersonCheck.second_checker_id.is_not(None), TwoPersonCheck.checked_at >= since,
        TwoPersonCheck.confirmed_at >= since)
        .order_by(TwoPersonCheck.id.desc()).limit(1))


def later_stop(session: Session, check: TwoPersonCheck) -> TwoPersonCheck | None:
    """The newest check of the same bag recorded after `check` that said STOP. Any mismatch suspends the
    infusion (DOMAIN.md 8): a STOP after the confirmed check (the bag scanned at another bed, a weight changed...)
    voids that check until the bag is scanned and confirmed again."""
    return session.scalar(select(TwoPersonCheck).where(
        TwoPersonCheck.bag_id == check.bag_id, TwoPersonCheck.result == "stop", TwoPersonCheck.id > check.id)
        .order_by(TwoPersonCheck.id.desc()).limit(1))


class StartRefused(Conflict):
    """An infusion start the system stopped at the bedside. `refusal` names it in the audit trail and the admin's
    monitoring (e.g. wrong_patient): each is someone about to give a bag that must not be given now."""

    def __init__(self, refusal: str, message: str, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.refusal = refusal


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
    if bag.status == "infused" or session.scalar(select(Infusion.id).where(Infusion.bag_id == bag.id)):
        raise StartRefused("already_infused", f"Bag {bag.din} has already been infused.")


def _check_to_start_on(session: Session, bag: Bag, valid_for: timedelta) -> TwoPersonCheck:
    """The confirmed check the infusion stands on, or a refusal saying what to do."""
    minutes = int(valid_for.total_seconds() // 60)
    check = latest_confirmed_check(session, bag.id, utcnow() - valid_for)
    if check is None:
        raise StartRefused("no_confirmed_check",
                           f"No confirmed two-person bedside check of bag {bag.din} in the last {minutes} minutes "
                           "(counted from the scan): scan the wristband and the bag, and have a second person "
                           "confirm.")
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
                       f"WRONG BAG: the bag in your hand is {scanned.din}, not bag {started.din} whose two-person "
                       f"check you are starting. Do not start the infusion: hang bag {started.din}, or start bag "
                       f"{scanned.din} from its own confirmed check.", field="bag")


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
        raise ValidationFailed("Scan the label of the bag in your hand (its QR code, or type its DIN with the check "
                               "character) to start the infusion.", field="bag")
    try:
        with use_case(session, actor):
            _refuse_another_bag(session, bag_id, bag_scan, label_key)
            bag = lock_bag(session, bag_id)
            _refuse_infused(session, bag)
            check = _check_to_start_on(session, bag, valid_for)
            if check.patient_id is not None:  # no weight recorded between this check and the commit (PostgreSQL)
                lock_patient(session, check.patient_id)
            fresh = evaluate(session, wristband, bag_scan, label_key)
            _refuse_another_patient(session, check, fresh)
            if not fresh.matches:
                raise StartRefused("stop", "STOP, do not start: " + " ".join(f.message for f in fresh.failures))
            assert check.patient_id is not None and check.second_checker_id is not None
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


def _audit_refused_start(session: Session, actor: Any, bag_id: int, wristband: str, refused: StartRefused) -> None:
    """A refused start is recorded after the start's own transaction rolled back, in one of its own: what was
    about to be given, to whom, and why not (counted on the admin's monitoring page, logged as a warning)."""
    with use_case(session, actor):
        trail.record(session, "infusion_start_refused", "bag", bag_id,
                     new={"refusal": refused.refusal, "wristband": wristband}, reason=refused.message)


def refused_start(session: Session, actor: Any, bag_id: int, seq: int | None = None) -> tuple[int, str, str] | None:
    """This person's refused start of this bag as recorded (_audit_refused_start): the event's seq, the wristband
    scanned and the words of the refusal; the one with `seq`, or else the last. Read back from the server so the
    refusal's words (patients' codes) never travel in the session cookie, and shown to the person refused only."""
    query = select(AuditEvent).where(AuditEvent.action == "infusion_start_refused", AuditEvent.entity_type == "bag",
                                     AuditEvent.entity_id == str(bag_id), AuditEvent.actor_id == actor.id)
    if seq is not None:
        query = query.where(AuditEvent.seq == seq)
    event = session.scalars(query.order_by(AuditEvent.seq.desc()).limit(1)).first()
    if event is None:
        return None
    try:
        scanned = json.loads(event.new_value or "{}").get("wristband", "")
    except (ValueError, AttributeError):
        scanned = ""
    return event.seq, str(scanned or ""), event.reason or ""


def get_infusion(session: Session, infusion_id: int) -> Infusion:
    infusion = session.get(Infusion, infusion_id)
    if infusion is None:
        raise NotFound(f"No infusion {infusion_id}.")
    return infusion


MAX_VOLUME_ML = 100_000


def _volume(text: Any) -> Decimal:
    try:
        volume = Decimal(str(text).strip().replace(",", "."))
    except (InvalidOperation, ValueError):
        raise ValidationFailed("Volume infused: give a number of mL, e.g. 20.5.", field="volume_ml") from None
    # bounded before quantize(), which cannot hold more than 28 digits (a 500 found by tests/fuzz)
    if not volume.is_finite() or volume < 0 or volume >= MAX_VOLUME_ML:
        raise ValidationFailed(f"Volume infused: a number of mL, 0 or more and under {MAX_VOLUME_ML}.",
                               field="volume_ml")
    if volume != volume.quantize(Decimal("0.01")):  # stored with 2 decimals: never rounded silently
        raise ValidationFailed("Volume infused: at most 2 decimals (e.g. 20.55 mL).", field="volume_ml")
    return volume.quantize(Decimal("0.01"))


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
    lost = (" (" + ", ".join(f"bag {bag.din} {bag.status}" for bag in short.lost) + ")") if short.lost else ""
    what = ("the prescriber stopped this course: with what was given before," if short.stopped else
            f"what was given, and the bags still to give as prescribed{lost}:")
    return (f"Volume infused: with {volume.normalize():f} mL from this bag ({what} "
            f"{cells_per_kg_words(short.expected_cells, short.weight_kg)} in all), the patient's dose is BELOW the "
            f"prescription's band: {format_cells_per_kg(short.level_cells_per_kg)} prescribed, no less than "
            f"{cells_per_kg_words(short.low_cells, short.weight_kg)}. Check the volume; if that is what was given, "
            "say why (it is recorded and the clinician must be told).")


def end_infusion(session: Session, actor: Any, infusion_id: int, *, volume_ml: Any, reason: str = "") -> Infusion:
    """Record the end and the volume given. More than the prescription draws from the bag (a partial dose given
    whole), or less by more than the protocol's dose tolerance (stopped early), is recorded as it happened, never
    refused, but only with the reason, and flagged on the record: the dose given is then outside the prescription
    and the clinician must know. So is a course whose total falls below the prescription's band although each bag
    is inside the tolerance (two bags each 9 % short): what the prescription has given, this bag at its volume, plus
    what its bags still to give would give as prescribed, below the band's lower limit (COURSE_BELOW_BAND)."""
    _require_bedside_role(actor, "The person ending the infusion")
    volume = _volume(volume_ml)
    reason = (reason or "").strip()
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
        if (outside or short) and len(reason) < 5:
            words = [_outside_words(outside, volume, prescribed)] if outside else []
            raise ValidationFailed(" ".join(words + ([_short_words(short, volume)] if short else [])),
                                   field="volume_ml")
        infusion.ended_at, infusion.ended_by_id, infusion.volume_infused_ml = utcnow(), actor.id, volume
        # why the volume or the course is outside the prescription, on the record the pages flag (and audited)
        infusion.volume_reason = reason[:500] if (outside or short) else None
        details: dict[str, Any] = {"infusion_id": infusion.id, "volume_infused_ml": str(volume)}
        if outside:
            details.update({f"{'over' if outside == 'more' else 'under'}_prescription": True,
                            "prescribed_ml": str(prescribed), "why": reason[:500]})
        if short:  # the course as a whole falls below the prescription's band: flagged as the bag's volume is
            details.update({COURSE_BELOW_BAND: True,
                            "course_expected_cells": f"{short.expected_cells.quantize(Decimal(1)):f}",
                            "course_low_cells": f"{short.low_cells.quantize(Decimal(1)):f}", "why": reason[:500]})
        record_event(session, actor, bag, "infusion_ended", details=details, reason=reason)
    return infusion


@dataclass(frozen=True)
class ReactionDetails:
    ctcae_term: str
    grade: Any
    description: str = ""
    onset_at: datetime | None = None  # when the reaction began (time zone aware); None: now, as it is recorded


DESCRIPTION_MAX = 4000
#: how far ahead of the server's clock an onset may be (a ward device's clock a little fast), not more
ONSET_CLOCK_SLACK = timedelta(minutes=2)


def _onset(onset_at: datetime | None, infusion: Infusion, now: datetime) -> datetime:
    if onset_at is None:
        return now
    if onset_at.tzinfo is None or onset_at.utcoffset() is None:
        raise ValidationFailed("Onset: give the time with its time zone.", field="onset_at")
    if onset_at > now + ONSET_CLOCK_SLACK:
        raise ValidationFailed("Onset: the reaction cannot begin in the future.", field="onset_at")
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
        now = utcnow()
        reaction = InfusionReaction(infusion_id=infusion.id, ctcae_term=term, grade=grade, description=description,
                                    onset_at=_onset(details.onset_at, infusion, now), recorded_by_id=actor.id,
                                    recorded_at=now)
        session.add(reaction)
    return reaction
