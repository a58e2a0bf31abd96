"""The clinician of each patient a recall reached, told (DOMAIN.md section 5, late OOS: "notify the clinician of every
patient who received it"; section 8: "notify clinician for infused patients"; EU GMP Part IV 11).

The recall's notify list (report.patients_to_notify) names the patients given or sent affected product. For each,
one RecallNotice records that their clinician was told: QA records who was told, how and when (record_notice), or
the prescribing clinician confirms it in the app from their home page (acknowledge). A recall is completed only once
every patient on its list has one (services.complete_recall). Each is written in one use case (audited), under the
recall's lock, as the completion takes it: a notice and a completion never pass each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.core.identifiers import din_shown
from mscbatch.database import utcnow
from mscbatch.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from mscbatch.lots.models import Bag, Lot
from mscbatch.recall.models import NOTICE_HOW, QA_NOTICE_HOW, Recall, RecallNotice
from mscbatch.recall.queries import not_yet_told
from mscbatch.recall.report import PatientNotice, patients_to_notify
from mscbatch.recall.services import get_recall, locked_recall, typed_shown
from mscbatch.recall.traceability import Recipient
from mscbatch.site import local_and_utc

#: the longest clinician's name and note kept
MAX_CLINICIAN = 200
MAX_NOTICE_NOTE = 1000
#: the refusal of a "how" not offered (QA's ways; "in the app" is the clinician's own confirmation)
HOW_WORDS = ", ".join(NOTICE_HOW[how] for how in QA_NOTICE_HOW)


def _locked_entry(session: Session, recall_id: int, patient_id: int,
                  prescriber: Any = None) -> tuple[Recall, PatientNotice]:
    """The recall, locked and read again (services.locked_recall, as its completion and end lock it), refused unless
    active, and the patient's entry on its notify list (404 when the patient is not on it), refused when a notice is
    recorded already.
    `prescriber`: a clinician confirming in the app, refused (403) before anything of the notice is said unless they
    prescribed what the patient received."""
    recall = locked_recall(session, recall_id)  # refused below when closed, after the entry's own checks
    entry = next((e for e in patients_to_notify(session, recall) if e.patient.id == patient_id), None)
    if entry is None:
        raise NotFound(f"Recall R-{recall.id} lists no patient with id {patient_id} to notify: only a patient given or "
                       "sent its product is notified. Nothing was recorded.")
    if prescriber is not None and prescriber.id not in entry.prescriber_ids:
        raise PermissionDenied(f"You did not prescribe the product patient {entry.patient.code} received: their "
                               "prescribing clinician confirms it, or QA records who was told. Nothing was recorded.")
    if entry.notice is not None:
        raise Conflict(f"The clinician of patient {entry.patient.code} is recorded as told already "
                       f"({entry.told_words()} on {local_and_utc(entry.notice.told_at)}). Nothing was recorded.")
    if not recall.active:
        raise Conflict(f"Recall R-{recall.id} is {recall.status_words.lower()}: no notice is recorded under it. "
                       "Nothing was recorded.")
    return recall, entry


def record_notice(session: Session, actor: Any, recall_id: int, patient_id: int, *, clinician: str, how: str,
                  told_at: datetime | None, told_at_typed: str = "", note: str = "") -> RecallNotice:
    """QA records that a patient's clinician was told of the recall: who (a name), how, when (not in the future, not
    before the recall started), with an optional note. Every field's problem is said at once (422, by field);
    nothing is written unless all are right."""
    if not actor.has_role("qa"):
        raise PermissionDenied("Only QA records that a clinician was told of a recall; the clinician confirms it on "
                               "their home page.")
    clinician, how, note = (clinician or "").strip(), (how or "").strip(), (note or "").strip()
    recall = get_recall(session, recall_id)
    errors: dict[str, list[str]] = {}
    if not clinician:
        errors["clinician"] = ["Clinician told: give the name of the clinician who was told."]
    elif len(clinician) > MAX_CLINICIAN:
        errors["clinician"] = [f"Clinician told: at most {MAX_CLINICIAN} characters (this one has "
                               f"{len(clinician)})."]
    if how not in QA_NOTICE_HOW:
        errors["how"] = [f"How: one of {HOW_WORDS}, not {typed_shown(how)!r}." if how else
                         f"How: say how the clinician was told: {HOW_WORDS}."]
    now = utcnow()
    if told_at is None:
        errors["told_at"] = [f"When: {typed_shown(told_at_typed)!r} is not a date and time; type it as "
                             "YYYY-MM-DD HH:MM, site time." if told_at_typed else
                             "When: give the date and time the clinician was told (site time)."]
    elif told_at > now:
        errors["told_at"] = [f"When: {told_at:%Y-%m-%d %H:%M} is in the future: give when the clinician "
                             "was told."]
    elif told_at < recall.started_at.replace(second=0, microsecond=0):  # the form gives minutes: the start's own
        # the wall time as typed: a date picker's extremes (0001-01-01) have no UTC to convert to (a 500)
        errors["told_at"] = [f"When: {told_at:%Y-%m-%d %H:%M} is before recall R-{recall.id} started "
                             f"({local_and_utc(recall.started_at)}): a clinician is told of a recall once it is started."]
    if len(note) > MAX_NOTICE_NOTE:
        errors["note"] = [f"Note: at most {MAX_NOTICE_NOTE} characters (this one has {len(note)})."]
    if errors:
        first = next(iter(errors.values()))[0]
        raise ValidationFailed(first + " Nothing was recorded.", errors=errors)
    assert told_at is not None
    with use_case(session, actor, f"clinician told of recall R-{recall_id}: {clinician}, {NOTICE_HOW[how]}"):
        _recall, entry = _locked_entry(session, recall_id, patient_id)
        notice = RecallNotice(recall_id=recall_id, patient_id=entry.patient.id, clinician_name=clinician, how=how,
                              told_at=told_at, recorded_by_id=actor.id, recorded_at=utcnow(), note=note or None)
        session.add(notice)
        session.flush()
    return notice


def acknowledge(session: Session, actor: Any, recall_id: int, patient_id: int) -> RecallNotice:
    """The prescribing clinician confirms, on their home page, that they have been told of the recall reaching their
    patient: a notice with themselves as the clinician, "in the app", now. Refused (403) to anyone who did not
    prescribe the bags the patient received."""
    if not actor.has_role("clinician"):
        raise PermissionDenied("Only the patient's prescribing clinician confirms being told of a recall.")
    get_recall(session, recall_id)
    with use_case(session, actor, f"clinician confirmed being told of recall R-{recall_id}"):
        _recall, entry = _locked_entry(session, recall_id, patient_id, prescriber=actor)
        now = utcnow()
        notice = RecallNotice(recall_id=recall_id, patient_id=entry.patient.id, clinician_name=actor.full_name,
                              clinician_id=actor.id, how="in_app", told_at=now, recorded_by_id=actor.id,
                              recorded_at=now)
        session.add(notice)
        session.flush()
    return notice


#: what a clinician does for a bag of a recalled lot still running into their patient (the ward's STOP, in its words)
RUNNING_STOP = "STOP THE INFUSION NOW and follow the patient up"


@dataclass(frozen=True)
class OpenNotice:
    """A recall in force reaching a patient the clinician prescribed for, not yet recorded as told (the home page).
    `running`: the bags of the entry being infused now (an infusion started, no end recorded), each with its
    infusion's id (its page)."""

    recall: Recall
    entry: PatientNotice
    running: dict[int, int] = field(default_factory=dict)

    def running_infusions(self) -> list[tuple[Bag, int]]:
        """The bags being infused now, with their infusion's id: the page leads with STOP THE INFUSION NOW."""
        return [(bag, self.running[bag.id]) for bag, _lot, _recipient in self.entry.received if bag.id in self.running]

    def _bag_words(self, bag: Bag, lot: Lot, recipient: Recipient) -> str:
        """Whether the bag is being given now, was given or was only sent: a clinician must not read "received" as
        "infused", nor an infusion still running as one that is over (it would not be stopped)."""
        said = f"bag {din_shown(bag)} of lot {lot.lot_number} "
        if bag.id in self.running:
            started = f" (started {local_and_utc(recipient.infused_at)})" if recipient.infused_at is not None else ""
            return said + f"IS BEING INFUSED NOW{started}: {RUNNING_STOP}"
        if recipient.infused_at is not None:
            return said + f"was infused on {local_and_utc(recipient.infused_at)}"
        return said + ("was infused" if bag.status == "infused" else "was sent to the ward (not infused)")

    def words(self) -> str:
        """Per bag, what became of it, a bag running now first (its words are the urgent ones)."""
        received = sorted(self.entry.received, key=lambda row: row[0].id not in self.running)  # stable: else as listed
        bags = "; ".join(self._bag_words(bag, lot, recipient) for bag, lot, recipient in received)
        return f"Recall R-{self.recall.id}: for your patient {self.entry.patient.code}, {bags}"


def running_infusions(session: Session, bag_ids: list[int]) -> dict[int, int]:
    """The bags among `bag_ids` being infused now (an infusion started and not ended), each with its infusion's id;
    empty when the custody capability is not installed (as traceability.infusion_times reads it)."""
    if not bag_ids:
        return {}
    try:
        from mscbatch.custody.models import Infusion
    except ImportError:  # pragma: no cover  (custody capability not installed)
        return {}
    return {bag_id: infusion_id for bag_id, infusion_id in session.execute(
        select(Infusion.bag_id, Infusion.id).where(Infusion.bag_id.in_(bag_ids), Infusion.ended_at.is_(None)))}


def open_notices_for(session: Session, user: Any) -> list[OpenNotice]:
    """The active recalls' patients whose product `user` prescribed and whose clinician nobody has recorded as told,
    newest recall first, each with its bags being infused now."""
    if not getattr(user, "is_authenticated", False) or not user.has_role("clinician"):
        return []
    found: list[OpenNotice] = []
    for recall in session.scalars(select(Recall).where(Recall.status == "active").order_by(Recall.id.desc())):
        entries = not_yet_told(patients_to_notify(session, recall), user.id)
        running = running_infusions(session, [bag.id for entry in entries for bag, _lot, _r in entry.received])
        found += [OpenNotice(recall, entry, {bag.id: running[bag.id] for bag, _lot, _r in entry.received
                                             if bag.id in running}) for entry in entries]
    return found
