"""Counts of refused logins, bedside checks answered STOP, refused infusion starts, refused signatures and second
persons refused at the bedside for who they are (not for a password), from the records themselves.

The page is the administrator's, who may not read patients (mscbatch.interop.privacy): a STOP or a refused start is
told by its kind (WRONG PATIENT, NOT PRESCRIBED...) and bag, never by the words the nurse saw, which name patients.

Failed logins, refused infusion starts and refused signatures are audit events (actions below); a STOP is a
TwoPersonCheck row. Each
count is one query per kind with the three windows as conditional sums, over the audit trail's
(action, occurred_at) index: cheap on a trail of millions of events.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, not_, or_, select
from sqlalchemy.orm import Session

from mscbatch.audit.models import AuditEvent
from mscbatch.auth.models import User
from mscbatch.custody.bedside import NOT_BEDSIDE_ROLE_REASON, SAME_PERSON_REASON
from mscbatch.custody.infusions import START_REFUSALS
from mscbatch.custody.models import TwoPersonCheck
from mscbatch.database import utcnow
from mscbatch.lots.models import Bag

#: every wrong password or refused account, wherever it was typed: at sign-in, as the bedside's second person, at a
#: password change or an API token's creation (the same count leads to the lockout)
FAILED_LOGIN_ACTIONS = ("login_failed", "login_refused", "second_person_refused", "password_change_refused",
                        "api_token_refused")
#: a bedside second person refused for who they are, after their password was checked or before it was asked: the
#: person who scanned typing their own name again (the check's row is the entity), or an account that is not a nurse
#: or a clinician. Neither is a wrong password nor a refused account (review 3 #15: they were counted as failed
#: sign-ins and wrong passwords, where an administrator looks for password guessing).
SECOND_PERSON_ACTION = "second_person_refused"
SECOND_PERSON_NOT_PASSWORD_REASONS = (SAME_PERSON_REASON, NOT_BEDSIDE_ROLE_REASON)
SIGNATURE_REFUSED_ACTIONS = ("signature_refused",)
START_REFUSED_ACTIONS = ("infusion_start_refused",)
RECENT = 20
WINDOWS = (("last_24_hours", timedelta(hours=24)), ("last_7_days", timedelta(days=7)))

# (key, heading) in the order the page shows them
KINDS = (("failed_logins", "Failed sign-ins and wrong passwords"), ("bedside_refused", "Bedside checks answered STOP"),
         ("infusion_start_refused", "Infusion starts refused"), ("signature_refused", "Refused signatures"),
         ("second_person_refused", "Bedside second person refused: the same person, or not a nurse or clinician"))

SECOND_PERSON_REASONS = {
    SAME_PERSON_REASON: "typed as the second person by the person who scanned: the same person cannot check twice "
                        "(the password was right)",
    NOT_BEDSIDE_ROLE_REASON: "typed as the second person, but not a nurse or a clinician (no password asked)",
}

#: bedside STOP code (mscbatch.custody.checks.judge) -> its kind, in words that name no patient
STOP_KINDS = {
    "no_wristband": "no wristband scanned", "unknown_wristband": "wristband not known",
    "patient_withdrawn": "patient withdrawn from the trial", "patient_not_enrolled": "patient not enrolled",
    "bag": "bag not identified (label not genuine, unknown or mistyped)", "already_infused": "bag already infused",
    "rejected": "lot rejected", "recalled": "lot recalled", "expired": "lot expired",
    "late_oos": "lot failed a test after its conditional release", "not_released": "lot not released",
    "exceptional_other": "exceptional release for another patient", "donor_not_cleared": "donor not cleared",
    "on_hold": "bag on hold", "discarded": "bag discarded", "returned": "bag returned to the unit",
    "not_on_ward": "bag not received on the ward", "bag_expired": "bag expired",
    "post_thaw": "past its post-thaw limit", "not_prescribed": "bag not prescribed",
    "wrong_patient": "WRONG PATIENT: the bag is prescribed for another patient",
    "weight_changed": "weight changed since the prescription", "weight_too_old": "weight too old",
    "directed_other": "directed donation for another recipient",
    "course_short": "the prescribed dose can no longer be given",
}
#: the span of the counts by kind
KIND_SPAN = ("last_7_days", timedelta(days=7))

LOGIN_REASONS = {
    "unknown user name": "no account has this user name",
    "wrong password": "wrong password",
    "account locked": "the account is locked after too many wrong passwords",
    "account disabled": "the account is disabled",
}


@dataclass(frozen=True)
class Incident:
    at: datetime
    who: str
    what: str


def _second_person_not_password() -> Any:
    """The second-person refusals that are not a wrong password nor a refused account."""
    return and_(AuditEvent.action == SECOND_PERSON_ACTION,
                or_(AuditEvent.entity_type == "two_person_check",
                    func.coalesce(AuditEvent.reason, "").in_(SECOND_PERSON_NOT_PASSWORD_REASONS)))


def _failed_logins() -> Any:
    return and_(AuditEvent.action.in_(FAILED_LOGIN_ACTIONS), not_(_second_person_not_password()))


def _windowed(session: Session, when: Any, condition: Any, now: datetime) -> dict[str, int]:
    columns = [func.count()] + [func.coalesce(func.sum(case((when >= now - span, 1), else_=0)), 0)
                                for _name, span in WINDOWS]
    total, *recent = session.execute(select(*columns).where(condition)).one()
    return {**{name: int(n) for (name, _span), n in zip(WINDOWS, recent, strict=True)}, "all_time": int(total)}


def counts(session: Session, now: datetime | None = None) -> dict[str, dict[str, int]]:
    now = now or utcnow()
    return {
        "failed_logins": _windowed(session, AuditEvent.occurred_at, _failed_logins(), now),
        "bedside_refused": _windowed(session, TwoPersonCheck.checked_at, TwoPersonCheck.result == "stop", now),
        "infusion_start_refused": _windowed(session, AuditEvent.occurred_at,
                                            AuditEvent.action.in_(START_REFUSED_ACTIONS), now),
        "signature_refused": _windowed(session, AuditEvent.occurred_at,
                                       AuditEvent.action.in_(SIGNATURE_REFUSED_ACTIONS), now),
        "second_person_refused": _windowed(session, AuditEvent.occurred_at, _second_person_not_password(), now),
    }


def _recent_events(session: Session, condition: Any) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(condition)
                                .order_by(AuditEvent.occurred_at.desc(), AuditEvent.seq.desc()).limit(RECENT)))


def _people(session: Session, ids: set[int]) -> dict[int, User]:
    return {u.id: u for u in session.scalars(select(User).where(User.id.in_(ids)))} if ids else {}


def _named(user: User | None, fallback: str) -> str:
    return f"{user.username} ({user.full_name})" if user else fallback


def recent_failed_logins(session: Session) -> list[Incident]:
    events = _recent_events(session, _failed_logins())
    people = _people(session, {int(e.entity_id) for e in events if e.entity_id and e.entity_id.isdigit()})
    incidents = []
    for e in events:
        user = people.get(int(e.entity_id)) if e.entity_id and e.entity_id.isdigit() else None
        who = _named(user, f"unknown name '{e.new_value or ''}'")
        incidents.append(Incident(e.occurred_at, who, LOGIN_REASONS.get(e.reason or "", e.reason or "refused")))
    return incidents


def recent_second_person_refusals(session: Session) -> list[Incident]:
    events = _recent_events(session, _second_person_not_password())
    people = _people(session, {e.actor_id for e in events if e.actor_id is not None}
                     | {int(e.entity_id) for e in events if e.entity_type == "user_account" and e.entity_id
                        and e.entity_id.isdigit()})
    incidents = []
    for e in events:
        typed = people.get(int(e.entity_id)) if e.entity_type == "user_account" and (e.entity_id or "").isdigit() \
            else people.get(e.actor_id or 0)
        what = SECOND_PERSON_REASONS.get(e.reason or "", e.reason or "refused")
        if e.entity_type == "two_person_check":
            what += f" (bedside check {e.entity_id})"
        incidents.append(Incident(e.occurred_at, _named(typed, e.actor_name or "?"), what))
    return incidents


def recent_refused_signatures(session: Session) -> list[Incident]:
    events = _recent_events(session, AuditEvent.action.in_(SIGNATURE_REFUSED_ACTIONS))
    people = _people(session, {e.actor_id for e in events if e.actor_id is not None})
    return [Incident(e.occurred_at, _named(people.get(e.actor_id or 0), e.actor_name),
                     f"wrong password when signing '{e.new_value or ''}' on {e.entity_type.replace('_', ' ')} "
                     f"{e.entity_id or ''}".strip())
            for e in events]


def _stop_kinds(failures: list[dict[str, Any]]) -> list[str]:
    return [STOP_KINDS.get(str(f.get("code")), "other reason") for f in failures] or ["STOP"]


def _start_kind(event: AuditEvent) -> str:
    value = _object(event.new_value)
    refusal = str(value.get("refusal")) if value else ""
    return START_REFUSALS.get(refusal, "refused")


def _object(text: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(text or "")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def recent_bedside_stops(session: Session) -> list[Incident]:
    rows = session.execute(
        select(TwoPersonCheck, User, Bag.din).join(User, User.id == TwoPersonCheck.checked_by_id)
        .outerjoin(Bag, Bag.id == TwoPersonCheck.bag_id).where(TwoPersonCheck.result == "stop")
        .order_by(TwoPersonCheck.checked_at.desc(), TwoPersonCheck.id.desc()).limit(RECENT)).all()
    return [Incident(check.checked_at, _named(user, ""),
                     f"bag {din or 'not identified'}: " + "; ".join(_stop_kinds(check.failures)))
            for check, user, din in rows]


def recent_refused_starts(session: Session) -> list[Incident]:
    events = _recent_events(session, AuditEvent.action.in_(START_REFUSED_ACTIONS))
    people = _people(session, {e.actor_id for e in events if e.actor_id is not None})
    bag_ids = {int(e.entity_id) for e in events if e.entity_id and e.entity_id.isdigit()}
    dins = dict(session.execute(select(Bag.id, Bag.din).where(Bag.id.in_(bag_ids))).all()) if bag_ids else {}
    return [Incident(e.occurred_at, _named(people.get(e.actor_id or 0), e.actor_name),
                     f"bag {dins.get(int(e.entity_id or 0), e.entity_id)}: {_start_kind(e)}")
            for e in events]


def by_kind(session: Session, now: datetime | None = None) -> dict[str, list[tuple[str, int]]]:
    """Bedside STOPs and refused starts of the last 7 days counted by kind, most frequent first (a STOP with two
    reasons counts under each)."""
    since = (now or utcnow()) - KIND_SPAN[1]
    stops: Counter[str] = Counter()
    for check in session.scalars(select(TwoPersonCheck).where(TwoPersonCheck.result == "stop",
                                                              TwoPersonCheck.checked_at >= since)):
        stops.update(set(_stop_kinds(check.failures)))
    starts = Counter(_start_kind(e) for e in session.scalars(
        select(AuditEvent).where(AuditEvent.action.in_(START_REFUSED_ACTIONS), AuditEvent.occurred_at >= since)))
    return {"bedside_refused": stops.most_common(), "infusion_start_refused": starts.most_common()}


def recent(session: Session) -> dict[str, list[Incident]]:
    return {"failed_logins": recent_failed_logins(session), "bedside_refused": recent_bedside_stops(session),
            "infusion_start_refused": recent_refused_starts(session),
            "signature_refused": recent_refused_signatures(session),
            "second_person_refused": recent_second_person_refusals(session)}
