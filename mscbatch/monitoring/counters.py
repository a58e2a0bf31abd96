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
from mscbatch.audit.words import known_name, record_type_words
from mscbatch.auth.models import User
from mscbatch.core.identifiers import din_shown
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

#: the wrong password that locked the account (auth counts it, then records the refusal in the same transaction)
LOCKING_WORDS = "wrong password: the account is now locked"
#: a lockout's event and the refusal it came with are a few events apart, in one transaction
LOCK_SPAN = 20

LOGIN_REASONS = {
    "unknown user name": "no account has this user name",
    "wrong password": "wrong password",
    "account locked": "refused: the account was already locked",
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


def _locking(session: Session, events: list[AuditEvent]) -> set[int]:
    """The seqs of those refusals that locked their account: each is the account's first refusal after the audited
    change that set its locked_out_at, in the same transaction (a few events later). The refusal's own reason is
    "wrong password" (auth writes it before it knows the count), so the lock is read off the account's change."""
    mine = [e for e in events if e.entity_type == "user_account" and e.entity_id and e.entity_id.isdigit()]
    if not mine:
        return set()
    locks = session.execute(select(AuditEvent.entity_id, AuditEvent.seq).where(
        AuditEvent.entity_type == "user_account", AuditEvent.field == "locked_out_at",
        AuditEvent.new_value.is_not(None), AuditEvent.entity_id.in_({e.entity_id for e in mine}),
        AuditEvent.seq >= min(e.seq for e in mine) - LOCK_SPAN)).all()
    found = set()
    for account, lock_seq in locks:
        after = [e.seq for e in mine if e.entity_id == account and lock_seq < e.seq <= lock_seq + LOCK_SPAN]
        if after:
            found.add(min(after))
    return found


def recent_failed_logins(session: Session) -> list[Incident]:
    events = _recent_events(session, _failed_logins())
    people = _people(session, {int(e.entity_id) for e in events if e.entity_id and e.entity_id.isdigit()})
    locking = _locking(session, events)
    incidents = []
    for e in events:
        user = people.get(int(e.entity_id)) if e.entity_id and e.entity_id.isdigit() else None
        who = _named(user, f"unknown name '{e.new_value or ''}'")
        what = LOCKING_WORDS if e.seq in locking else LOGIN_REASONS.get(e.reason or "", e.reason or "refused")
        incidents.append(Incident(e.occurred_at, who, what))
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


#: a signed record's parent, by which users know it (a decision is "of donor D-2026-0002")
_PARENT_COLUMNS = (("lot_id", "lot"), ("donor_id", "donor"), ("patient_id", "patient"), ("bag_id", "bag"))


def _known_as(record: Any, table: str) -> str | None:
    """A lot, donor, bag or recall by the name users know it by (audit.words.known_name: the audit page's words);
    a patient by no name (the administrator, who reads this page, may not read patients)."""
    if table == "patient":
        return "a patient's record"
    name = known_name(table, record)
    return f"{table} {name}" if name else None


def record_words(session: Session, table: str, record_id: str | None) -> str:
    """The record a refused signature was for, as users know it: "donor D-2026-0002", "release disposition of lot
    MSC-2026-0003"; never a database id alone, except for a record that is gone (then its type and id)."""
    from mscbatch.audit.reconcile import audited_models

    words = record_type_words(table).lower()
    models = {m.__tablename__: m for m in audited_models()}
    model = models.get(table)
    record = session.get(model, int(record_id)) if model is not None and (record_id or "").isdigit() else None
    if record is None:
        return f"{words} (record {record_id})" if record_id else words
    own = _known_as(record, table)
    if own:
        return own
    for column, parent_table in _PARENT_COLUMNS:
        parent_id = getattr(record, column, None)
        parent_model = models.get(parent_table)
        parent = session.get(parent_model, parent_id) if parent_id is not None and parent_model else None
        if parent is not None:
            return f"{words} of {_known_as(parent, parent_table)}"
    return f"{words} (record {record_id})"


def recent_refused_signatures(session: Session) -> list[Incident]:
    events = _recent_events(session, AuditEvent.action.in_(SIGNATURE_REFUSED_ACTIONS))
    people = _people(session, {e.actor_id for e in events if e.actor_id is not None})
    return [Incident(e.occurred_at, _named(people.get(e.actor_id or 0), e.actor_name),
                     f"wrong password when signing '{e.new_value or ''}' on "
                     f"{record_words(session, e.entity_type, e.entity_id)}")
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
        select(TwoPersonCheck, User, Bag).join(User, User.id == TwoPersonCheck.checked_by_id)
        .outerjoin(Bag, Bag.id == TwoPersonCheck.bag_id).where(TwoPersonCheck.result == "stop")
        .order_by(TwoPersonCheck.checked_at.desc(), TwoPersonCheck.id.desc()).limit(RECENT)).all()
    # the DIN as the label prints it, its check character included: the one the administrator looks up
    return [Incident(check.checked_at, _named(user, ""),
                     f"bag {din_shown(bag) if bag else 'not identified'}: " + "; ".join(_stop_kinds(check.failures)))
            for check, user, bag in rows]


def _bag_words(bags: dict[int, Bag], bag_id: str | None) -> str:
    bag = bags.get(int(bag_id)) if (bag_id or "").isdigit() else None
    return din_shown(bag) if bag else f"(record {bag_id})"


def recent_refused_starts(session: Session) -> list[Incident]:
    events = _recent_events(session, AuditEvent.action.in_(START_REFUSED_ACTIONS))
    people = _people(session, {e.actor_id for e in events if e.actor_id is not None})
    bag_ids = {int(e.entity_id) for e in events if e.entity_id and e.entity_id.isdigit()}
    bags = {bag.id: bag for bag in session.scalars(select(Bag).where(Bag.id.in_(bag_ids)))} if bag_ids else {}
    return [Incident(e.occurred_at, _named(people.get(e.actor_id or 0), e.actor_name),
                     f"bag {_bag_words(bags, e.entity_id)}: {_start_kind(e)}")
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
