"""The bedside check and its two-person confirmation: the check recorded at every scan (MATCHES or STOP), the
second person's credentials verified, both people signing; and which confirmed check of a bag still counts
(latest_confirmed_check, later_stop), read again by the infusion start."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, NoReturn

from flask import current_app, has_app_context
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mscbatch.audit import trail
from mscbatch.audit.context import acting_as, use_case
from mscbatch.auth.lockout import count_wrong_password, masked_name
from mscbatch.auth.models import User
from mscbatch.auth.passwords import dummy_hash, verify_password
from mscbatch.auth.services import admin_beside_words
from mscbatch.custody.checks import BedsideResult, evaluate
from mscbatch.custody.models import CustodyEvent, TwoPersonCheck
from mscbatch.custody.services import _text, lock_bag, record_event
from mscbatch.database import reading, utcnow
from mscbatch.errors import AuthenticationFailed, Conflict, NotFound, PermissionDenied, ValidationFailed
from mscbatch.signatures.services import sign

DEFAULT_CHECK_VALID = timedelta(minutes=30)
BEDSIDE_ROLES = ("nurse", "clinician")


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
    # the failures in short (their words are in the check's failures): "STOP (wrong patient, expired)"
    verdict = "MATCHES" if result.matches else \
        "STOP (" + ", ".join(f.code.replace("_", " ") for f in result.failures) + ")"
    # one audited row at every scan: written without the unit of work's cost
    with use_case(session, actor, f"Bedside check scanned: {verdict}"):
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


#: the one answer to every refused second person (an unknown name, a wrong password, a locked, disabled or
#: otherwise shut account, a role that may not confirm): telling them apart would let any signed-in ward user list
#: the accounts, their state and their roles. The audit events keep the true reason, for QA.
SECOND_PERSON_REFUSED = ("Second person: wrong user name or password. Ask them to type both again; if they are sure "
                         "of them, their account cannot confirm (locked, disabled, or not a nurse or a clinician): "
                         "ask another nurse or clinician.")


def _refused(session: Session, by: Any, password: str, reason: str, entity_id: Any,
             **new: Any) -> AuthenticationFailed:
    """A refusal that needs no password of the account's own: verified against the dummy hash, so that it takes
    the time of a real account's check (names none), and audited with its true reason."""
    profile = current_app.config.get("PASSWORD_HASH_PROFILE", "standard") if has_app_context() else "standard"
    verify_password(dummy_hash(profile), password)
    with use_case(session, by, reason):
        trail.record(session, "second_person_refused", "user_account", entity_id, **new)
    return AuthenticationFailed(SECOND_PERSON_REFUSED, field="second_password")


def verify_second_person(session: Session, username: str, password: str, by: Any = None) -> User:
    """Check another person's credentials without opening a session for them. Failures are audited and count
    towards the account lockout, as at sign-in; `by`, the signed-in person who typed them, is the events' actor
    (who guessed a colleague's password, or locked them out, is then in the trail, not "system"). Every refusal is
    the same answer (SECOND_PERSON_REFUSED, 401) after one password verification: an unknown name is verified
    against a dummy hash, as at sign-in, and an account refused for what it is (shut, or not a bedside role) against
    the dummy hash too, its own password untried and uncounted (a nurse cannot lock a QA account from the ward)."""
    if not password:  # nothing typed is no attempt: not a strike against the colleague, not audited (as at signing)
        raise ValidationFailed("Second person: type your password. Nothing was confirmed.", field="second_password")
    name = (username or "").strip().lower()
    user = session.scalar(select(User).where(User.username == name))
    if user is None:
        raise _refused(session, by, password, "second person: unknown user name", None, new=masked_name(name))
    if user.locked_out_at is not None or not user.is_enabled:
        raise _refused(session, by, password, "second person: account locked or disabled", user.id)
    if admin_beside_words(user):  # the administrator role held beside nurse (from an older version): may not sign in
        raise _refused(session, by, password, "second person: account may not sign in", user.id)
    if not user.has_role(*BEDSIDE_ROLES):  # before its own password: a wrong one would count towards a lockout that
        # a nurse could then inflict on any QA or admin account by typing its user name here
        raise _refused(session, by, password, NOT_BEDSIDE_ROLE_REASON, user.id)
    if not verify_password(user.password_hash, password or ""):
        with use_case(session, by, "second person: wrong password"):
            count_wrong_password(user)
            trail.record(session, "second_person_refused", "user_account", user.id)
        raise AuthenticationFailed(SECOND_PERSON_REFUSED, field="second_password")
    return user


#: The meanings of the two signatures on a confirmed bedside check (DOMAIN.md 8: "Both people sign").
CHECKED_MEANING = "Bedside check: this bag for this patient (scanned and checked)"
CONFIRMED_MEANING = "Bedside check: this bag for this patient (confirmed by a second person)"


def confirm_second_person(session: Session, actor: Any, check_id: int, *, username: str, password: str,
                          checker_password: str, label_key: str, valid_for: timedelta = DEFAULT_CHECK_VALID,
                          location: str | None = None) -> TwoPersonCheck:
    """A second qualified person confirms a MATCHES check with their own user name and password, and both people
    sign it: the person who scanned (the signed-in user, who re-enters their password: an open session or a
    scanner's token alone is not a person) and the second person. The two signatures lock the check.

    The audit trail names each person for what is theirs: the second person for their confirmation (second checker,
    confirmed time), their signature and the lock it completes; the person who scanned for their own signature and
    the custody event. `location`: where the check was done, if the caller knows it; else the ward where the bag was
    last received (see check_location).

    The refusals that do not depend on the second person come before their password is verified: a check that said
    STOP, one already confirmed, one too old, or one another person scanned is refused with no password tried, no
    failure counted towards anyone's lockout and nothing audited (else any signed-in nurse could lock a colleague's
    account by typing wrong passwords at an old STOP check). The same person twice is refused before the password
    too when the user name typed is the signed-in checker's own (it names no account they do not know), and, as a
    safeguard, again once the second person is known."""
    check = get_check(session, check_id)
    if check.result != "matches":
        raise Conflict("This check said STOP: it cannot be confirmed. Scan again.")
    if check.second_checker_id is not None:
        raise Conflict("This check is already confirmed.")
    if utcnow() - check.checked_at > valid_for:
        raise Conflict("This check is too old: scan the wristband and the bag again.")
    if actor.id != check.checked_by_id:
        raise PermissionDenied("Only the person who did the check can ask for its confirmation.")
    if (username or "").strip().lower() == (getattr(actor, "username", None) or "").strip().lower():
        _same_person(session, actor, check)
    second = verify_second_person(session, username, password, by=actor)
    if second.id == check.checked_by_id:
        _same_person(session, second, check)
    again = evaluate(session, check.wristband_scan, check.bag_scan, label_key)
    if earlier_trip(check, again.received_at):
        raise Conflict("Since this check, the bag left the ward and was received again: this check was for its "
                       "earlier trip. Scan the wristband and the bag again.")
    if not again.matches:
        raise Conflict("Since the scan, the check changed to STOP: " + " ".join(f.message for f in again.failures))
    reason = f"Bedside check confirmed by {second.full_name} ({second.username}), the second person"
    with use_case(session, actor, reason):
        check = session.get(TwoPersonCheck, check_id, with_for_update=True, populate_existing=True)
        assert check is not None and again.bag is not None
        if check.second_checker_id is not None:
            raise Conflict("This check is already confirmed.")
        with acting_as(session, second):  # the confirmation is the second person's
            check.second_checker_id, check.confirmed_at = second.id, utcnow()
        try:  # a wrong password rolls the confirmation back; sign() records the refusal and counts it
            # not locking yet: the check is locked by the second signature, which completes it
            sign(session, actor, checker_password, check, CHECKED_MEANING, lock=False)
        except AuthenticationFailed as refused:
            raise AuthenticationFailed(f"You, who scanned: {refused.message}", field="checker_password") from None
        with acting_as(session, second):
            sign(session, second, password, check, CONFIRMED_MEANING)
        bag = lock_bag(session, again.bag.id)
        record_event(session, actor, bag, "bedside_verified", location=check_location(session, bag.id, location),
                     scan=check.bag_scan,
                     details={"check_id": check.id, "wristband": check.wristband_scan, "first_checker": actor.id,
                              "second_checker": second.id, "patient_id": check.patient_id})
    return check


def _same_person(session: Session, who: Any, check: TwoPersonCheck) -> NoReturn:
    """Refuse the checker as their own second person (audited: SAME_PERSON_REASON, monitoring counts it apart)."""
    with use_case(session, who, SAME_PERSON_REASON):
        trail.record(session, "second_person_refused", "two_person_check", check.id)
    raise Conflict("Second person's user name: that is you, who scanned. The second person must be someone else: "
                   "the same person cannot check twice.", field="second_username")


def check_location(session: Session, bag_id: int, given: str | None = None) -> str:
    """Where the bedside check was done: the location given with it, if any. A check records no location of its own
    (two_person_check has no such column, and the ward's scan form does not pass its "Where" field to the check),
    so otherwise the ward where the bag was last received, on its present trip: the check is refused for a bag
    that was not received, and one scanned on an earlier trip is refused (earlier_trip)."""
    if given and given.strip():
        return given.strip()
    return session.scalar(select(CustodyEvent.location).where(CustodyEvent.bag_id == bag_id,
                                                              CustodyEvent.kind == "received")
                          .order_by(CustodyEvent.id.desc()).limit(1)) or ""


def last_receipt(session: Session, bag_id: int) -> datetime | None:
    """When the bag was last received on the ward (the start of its present trip there), or None."""
    return session.scalar(select(func.max(CustodyEvent.occurred_at)).where(CustodyEvent.bag_id == bag_id,
                                                                           CustodyEvent.kind == "received"))


def earlier_trip(check: TwoPersonCheck, received_at: datetime | None) -> bool:
    """The check was scanned before its bag's last receipt on the ward (`received_at`), on an earlier trip: it neither
    confirms nor starts this one."""
    return received_at is not None and check.checked_at < received_at


def latest_confirmed_check(session: Session, bag_id: int, since: datetime) -> TwoPersonCheck | None:
    """The bag's newest confirmed MATCHES scanned at or after `since`, and on the bag's present trip to the ward. The
    scan's time counts, not only the confirmation's: both people vouch for what was scanned then, and a confirmation
    late in the window must not stretch it to twice its length. A check from before the bag's last receipt vouched
    for an earlier trip (the bag returned, put back into stock, prescribed and sent again, maybe within minutes):
    it was made against another prescription, so it does not count."""
    received = last_receipt(session, bag_id)
    if received is not None and received > since:
        since = received
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
