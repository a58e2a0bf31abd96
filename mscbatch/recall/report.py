"""The recall / lookback report (page and PDF): every affected lot and bag with what to do for it, and each
affected patient who already received product, with dates, for clinician notification (DOMAIN.md section 8). Its
reconciliation counts the affected bags by outcome, and a completed recall's closing (who, when, the note, the
signature) makes it the final report (EU GMP Part I 8.30)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from io import BytesIO
from typing import Any, Literal

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import BaseDocTemplate, Frame, PageTemplate, Paragraph, Spacer, Table, TableStyle
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, aliased

from mscbatch.auth.models import User
from mscbatch.core.identifiers import din_shown
from mscbatch.core.pdf_pages import NumberedCanvas
from mscbatch.custody.models import CustodyEvent
from mscbatch.database import utcnow
from mscbatch.donors.models import Donor, DonorLookback, ScreeningResult
from mscbatch.lots.models import Bag, Lot, ReagentLot
from mscbatch.lots.queries import lots_of_donor, same_supplier_lot
from mscbatch.patients.models import Patient
from mscbatch.patients.queries import protocol_name
from mscbatch.recall.models import RECALL_SCOPES, BagHold, Recall, RecallNotice
from mscbatch.recall.queries import IN_FORCE, NOT_HELD_BAG_STATES, chunks, not_yet_told, recall_in_force_of
from mscbatch.recall.services import (
    DISCARDABLE_HERE,
    affected_lots,
    get_recall,
    outstanding_bags,
    outstanding_words,
    target_label,
    target_of,
)
from mscbatch.recall.traceability import (
    BackwardEntry,
    BackwardTrace,
    BagTrace,
    ForwardTrace,
    LotTrace,
    Recipient,
    trace_lots,
)
from mscbatch.signatures.models import Signature
from mscbatch.signatures.services import signatures_of
from mscbatch.site import local_and_utc, site_day


@dataclass(frozen=True)
class EarlierDiscard:
    """A bag this recall does not hold because another recall held it first and it was destroyed under that hold
    (discarded_under_other_recalls): the recall's number and the instant of the bag's 'discarded' custody event."""

    recall_id: int
    discarded_at: datetime

    def words(self) -> str:
        return f"Discarded under recall R-{self.recall_id} on {site_day(self.discarded_at):%Y-%m-%d}: no action"


#: a bag's standing under this recall's hold (BagLine.hold_kind): not held by it, held and still in stock or on the
#: ward, held then destroyed or given (final: the hold is kept as the record of the recall), or held then lifted
HoldKind = Literal["none", "on_hold", "kept_destroyed", "kept_infused", "lifted"]
KEPT = ("kept_destroyed", "kept_infused")

#: what the report tells the unit to do with a bag (BagLine.action_kind; _action writes the words)
ActionKind = Literal["notify", "notified", "no_notice", "discarded_before", "discarded_under_earlier", "destroyed_since", "not_held",
                     "hold_lifted", "returned", "reserved", "on_the_ward", "in_stock"]


#: each action kind in a few words, for the page's summary of the bags (RecallReport.action_counts)
ACTION_SUMMARY: dict[str, str] = {
    "notify": "given or sent to a patient: NOTIFY CLINICIAN", "notified": "given or sent to a patient: clinician notified",
    "no_notice": "given or sent to a patient: no notice recorded", "reserved": "ON HOLD, reserved for a patient",
    "on_the_ward": "ON HOLD on the ward", "returned": "ON HOLD, returned from the ward", "in_stock": "ON HOLD in stock",
    "not_held": "not held (made after the recall started): assess", "hold_lifted": "hold lifted (recall ended)",
    "destroyed_since": "discarded after the recall started", "discarded_under_earlier": "discarded under an earlier recall",
    "discarded_before": "discarded before the recall"}


def hold_kind(bag: Bag, hold: BagHold | None) -> HoldKind:
    """A bag's standing under this recall's hold: the counts, the Hold column and the PDF decide from it."""
    if hold is None:
        return "none"
    if hold.lifted_at is not None:
        return "lifted"
    if bag.status in NOT_HELD_BAG_STATES:  # given or destroyed under the hold: final, the hold stays
        return "kept_destroyed" if bag.status == "discarded" else "kept_infused"
    return "on_hold"


@dataclass
class BagLine:
    trace: BagTrace
    lot: Lot
    hold: BagHold | None
    hold_kind: HoldKind
    action_kind: ActionKind
    action: str  # the words of action_kind, for display
    earlier: EarlierDiscard | None = None  # destroyed under another recall's hold before this one started

    @property
    def hold_words(self) -> str:
        """The Hold column: a bag destroyed (or given) under its hold is no longer "ON HOLD" as if still in stock;
        its hold stays, the record of the recall, and the column says both. A bag destroyed under an earlier recall's
        hold names that recall (its "—" read as a bag never held)."""
        if self.hold_kind == "none":
            return f"— (held by R-{self.earlier.recall_id}, destroyed)" if self.earlier is not None else "—"
        return {"lifted": "lifted", "kept_destroyed": "destroyed (hold kept)", "kept_infused": "infused (hold kept)",
                "on_hold": "ON HOLD"}[self.hold_kind]

    @property
    def discardable(self) -> bool:
        """QA may discard it from the recall's page now (services.discard_held_bag): held, in stock in the unit."""
        return self.hold is not None and self.hold.lifted_at is None and self.trace.bag.status in DISCARDABLE_HERE


#: a patient on the notify list whose clinician nobody has recorded as told (the page, the PDF, the refusal)
NOT_YET_NOTIFIED = "Not yet notified"
#: the notify section's heading, before RecallReport.notify_heading_end (page and PDF)
NOTIFY_HEADING = "Patients given or sent affected product (infused, or the bag left the unit for them)"


@dataclass
class PatientNotice:
    """A patient on the recall's notify list (given, or sent, affected product), the bags they received, and the
    record that their clinician was told (RecallNotice), if any, with who recorded it."""

    patient: Patient
    received: list[tuple[Bag, Lot, Recipient]] = field(default_factory=list)
    notice: RecallNotice | None = None
    recorded_by: str = ""  # the recorder's printed name (the clinician, for an acknowledgement in the app)

    @property
    def protocol_shown(self) -> str:
        """The patient's protocol by the short name the patients list uses ("SLE-UC")."""
        return protocol_name(self.patient.protocol_id)

    @property
    def prescriber_ids(self) -> set[int]:
        """The clinicians who prescribed the bags the patient received: theirs is the home page that says so."""
        return {recipient.prescription.prescribed_by_id for _bag, _lot, recipient in self.received}

    def told_words(self) -> str:
        """Who was told and how, without the times (the page marks them up, the PDF writes them out)."""
        notice = self.notice
        if notice is None:
            return NOT_YET_NOTIFIED
        if notice.how == "in_app":
            return f"{notice.clinician_name} acknowledged it in the app"
        return f"{notice.clinician_name} told {notice.how_words}"

    def paper_words(self) -> str:
        """The notice in one plain sentence, for the PDF: NOT YET NOTIFIED, or who, how, when and by whom."""
        notice = self.notice
        if notice is None:
            return NOT_YET_NOTIFIED.upper()
        text = (f"{self.told_words()} on {local_and_utc(notice.told_at)}; recorded by {self.recorded_by} on "
                f"{local_and_utc(notice.recorded_at)}")
        return text + (f". Note: {notice.note}" if notice.note else "")

    def done_words(self) -> str:
        """A recorded notice as what was done (the bag's Action, page and PDF): when the clinician was told (site
        time, UTC beside), who was told and how, and who recorded it (a clinician confirming in the app recorded it
        themselves). The instruction "NOTIFY CLINICIAN" stayed there after the notice, and on the final report."""
        notice = self.notice
        if notice is None:
            return NOT_YET_NOTIFIED
        text = f"Clinician notified {local_and_utc(notice.told_at)}: {self.told_words()}"
        return text if notice.how == "in_app" else f"{text}; recorded by {self.recorded_by}"


def notices_of(session: Session, recall_id: int) -> dict[int, RecallNotice]:
    """The recall's notices by patient id."""
    return {notice.patient_id: notice for notice in session.scalars(
        select(RecallNotice).where(RecallNotice.recall_id == recall_id))}


def notify_list(session: Session, lots: list[LotTrace], notices: dict[int, RecallNotice]) -> list[PatientNotice]:
    """The patients given or sent product of these lots' bags (a recipient who received it), by patient code,
    each with the notice recorded for them (if any) and its recorder's name."""
    found: dict[int, PatientNotice] = {}
    for lot_trace in lots:
        for bag_trace in lot_trace.bags:
            for recipient in bag_trace.recipients:
                if recipient.received:
                    entry = found.setdefault(recipient.patient.id, PatientNotice(
                        recipient.patient, notice=notices.get(recipient.patient.id)))
                    entry.received.append((bag_trace.bag, lot_trace.lot, recipient))
    recorders = {notice.recorded_by_id for notice in notices.values()}
    names = {u.id: u.full_name for u in session.scalars(select(User).where(User.id.in_(recorders)))} if recorders \
        else {}
    for entry in found.values():
        if entry.notice is not None:
            entry.recorded_by = names.get(entry.notice.recorded_by_id, "?")
    return sorted(found.values(), key=lambda n: n.patient.code)


def patients_to_notify(session: Session, recall: Recall) -> list[PatientNotice]:
    """The recall's notify list (as its report lists it), each patient with their notice, if recorded."""
    affected = affected_lots(session, recall.scope, target_of(recall) or 0)
    return notify_list(session, trace_lots(session, affected), notices_of(session, recall.id))


def not_notified_words(patients: list[PatientNotice]) -> str:
    """'the clinician of patient X (and of ...) is not yet recorded as told' for the refusal and the page."""
    codes = ", ".join(n.patient.code for n in patients)
    if len(patients) == 1:
        return f"the clinician of patient {codes} is not yet recorded as told"
    return f"the clinicians of {len(patients)} patients ({codes}) are not yet recorded as told"


@dataclass(frozen=True)
class Reconciliation:
    """The affected bags by outcome: each is counted once, and the four add up to `bags`."""

    bags: int
    infused: int  # given: their patients are on the notification list
    discarded_before: int  # destroyed before the recall started
    destroyed_since: int  # held by the recall, then discarded
    not_final: int  # neither infused nor discarded (on hold, in stock or on the ward)

    def words(self) -> str:
        return (f"{self.bags} affected bag{'s' if self.bags != 1 else ''}: {self.infused} infused, "
                f"{self.discarded_before} discarded before the recall, {self.destroyed_since} destroyed under the "
                f"recall, {self.not_final} not yet infused or destroyed.")


@dataclass(frozen=True)
class DonorOtherLots:
    """A lot recall's donor and the donor's other lots, which the recall does not cover: a lot recalled because its
    donor was found ineligible (a marker found positive later) leaves them in stock unless the donor is recalled, so
    the recall's page lists them with the donor's standing (lookback, recall of the donor)."""

    donor: Donor
    lots: list[Lot]  # the donor's other lots, oldest first
    lookback_open: bool
    donor_recall: Recall | None  # a recall of the donor in force: it covers them already

    @property
    def donor_in_question(self) -> bool:
        """Something already says the donor is in doubt: QA's approval not in force, or a lookback open."""
        return self.donor.status != "approved" or self.lookback_open


def donor_other_lots(session: Session, recall: Recall) -> DonorOtherLots | None:
    """For a lot recall: its donor's other lots (DOMAIN.md section 8, a donor's lookback reaches every lot of the
    donor); None for a donor or reagent recall, or a lot with no donor."""
    lot = session.get(Lot, recall.lot_id) if recall.scope == "lot" and recall.lot_id is not None else None
    donor = session.get(Donor, lot.donor_id) if lot is not None and lot.donor_id is not None else None
    if lot is None or donor is None:
        return None
    others = sorted((other for other in lots_of_donor(session, donor.id) if other.id != lot.id), key=lambda o: o.id)
    lookback = session.scalar(select(DonorLookback.id).where(DonorLookback.donor_id == donor.id,
                                                             DonorLookback.closed_at.is_(None)).limit(1))
    return DonorOtherLots(donor=donor, lots=others, lookback_open=lookback is not None,
                          donor_recall=recall_in_force_of(session, "donor", donor.id))


def discarded_under_other_recalls(session: Session, recall: Recall, bag_ids: list[int]) -> dict[int, EarlierDiscard]:
    """For these discarded bags, which this recall does not hold: the ones destroyed under another recall's hold.
    A recall holds no discarded bag (NOT_HELD_BAG_STATES), so such a bag was discarded before this recall started;
    it was discarded under recall R-k when R-k held it at the instant of its 'discarded' custody event (the hold
    placed at or before it, not lifted before it), as _action decides for the recall's own holds: from the recall's
    page (services.discard_held_bag, "Recall R-k: ..."), the ward page or the assessment of a return. The oldest such
    recall is named. A bag discarded with no hold in force then (before any recall, or after a hold was lifted) is
    not returned: "Discarded before the recall: no action"."""
    if not bag_ids:
        return {}
    events: dict[int, CustodyEvent] = {}
    for chunk in chunks(bag_ids):
        for event in session.scalars(select(CustodyEvent).where(CustodyEvent.bag_id.in_(chunk),
                                                                CustodyEvent.kind == "discarded")
                                     .order_by(CustodyEvent.id)):
            events[event.bag_id] = event  # the last one (a bag is discarded once)
    found: dict[int, EarlierDiscard] = {}
    other_holds = [hold for chunk in chunks(list(events)) for hold in session.scalars(
        select(BagHold).where(BagHold.bag_id.in_(chunk), BagHold.recall_id != recall.id))]
    for hold in sorted(other_holds, key=lambda h: (h.recall_id, h.id)):
        event = events[hold.bag_id]
        if hold.bag_id in found or hold.placed_at > event.occurred_at:
            continue
        if hold.lifted_at is not None and hold.lifted_at < event.occurred_at:
            continue
        found[hold.bag_id] = EarlierDiscard(recall_id=hold.recall_id, discarded_at=event.occurred_at)
    return found


@dataclass(frozen=True)
class RecallLookback:
    """A donor lookback a donor recall covers (lookbacks_of_recall): why and when it was opened, and how it was
    closed, for the report (traceability of the lookback: EU directive 2004/23, EU GMP Part I 8.30)."""

    lookback: DonorLookback
    opened_by: str
    closed_by: str | None
    lab_reference: str | None  # the late result's report, when a result opened it
    reopened: bool = False  # closed by the recall at its start, opened again when the recall was ended as invalid

    def words(self) -> str:
        """The lookback in one sentence, the same on the recall's page and in its PDF."""
        lookback = self.lookback
        why = lookback.reason.rstrip(".") + (f" (report {self.lab_reference})" if self.lab_reference else "")
        text = f"Lookback opened {local_and_utc(lookback.opened_at)} by {self.opened_by}: {why}."
        if self.reopened:
            text += " Closed when this recall started; opened again when it was ended as invalid."
            if lookback.closed_at is None:
                return text + " Open now."
            return text + f" Closed since {local_and_utc(lookback.closed_at)} by {self.closed_by}: {lookback.closure_note}"
        return text + f" Closed {local_and_utc(lookback.closed_at)} by {self.closed_by}: {lookback.closure_note}"


def lookbacks_of_recall(session: Session, recall: Recall) -> list[RecallLookback]:
    """The donor's lookbacks this donor recall closed, oldest first: at its start (start_recall_in_use_case, closure
    note "Recall R-n started: ...") or under it since (close_lookback, "Covered by recall R-n (...): ..."). The rule,
    as services._reopen_lookback reads it: the donor's lookbacks closed at or after the recall's start and, for a
    recall ended as invalid, at or before its end. While it is in force (active or completed) nothing else closes
    the donor's lookbacks (a second recall of the donor is refused), and after its end only a later recall of the
    donor does, after its end. Its end opens the newest one again: that one (Recall.lookback_id, the one it answered
    at its start) is listed too, saying so. Empty for a lot or reagent recall."""
    if recall.scope != "donor" or recall.donor_id is None:
        return []
    window = [DonorLookback.donor_id == recall.donor_id, DonorLookback.closed_at >= recall.started_at]
    if recall.status == "ended" and recall.ended_at is not None:
        window.append(DonorLookback.closed_at <= recall.ended_at)
    closed_under = and_(*window).label("closed_under")
    wanted = closed_under
    if recall.status == "ended" and recall.lookback_id is not None:  # and the one its end opened again
        wanted = or_(closed_under, DonorLookback.id == recall.lookback_id)
    # one statement: each lookback with its late result's report and the names of who opened and closed it
    opener, closer = aliased(User), aliased(User)
    rows = session.execute(
        select(DonorLookback, ScreeningResult.lab_reference, opener.full_name, closer.full_name, closed_under)
        .outerjoin(ScreeningResult, ScreeningResult.id == DonorLookback.triggering_result_id)
        .outerjoin(opener, opener.id == DonorLookback.opened_by_id)
        .outerjoin(closer, closer.id == DonorLookback.closed_by_id)
        .where(wanted).order_by(DonorLookback.opened_at, DonorLookback.id))
    # closed_under is NULL (or false) for the reopened one: open again, or closed since by a later recall
    return [RecallLookback(lookback=row, opened_by=opened_by or "?",
                           closed_by=(closed_by or "?") if row.closed_by_id else None,
                           lab_reference=lab_reference or None, reopened=not in_window)
            for row, lab_reference, opened_by, closed_by, in_window in rows]


@dataclass
class RecallReport:
    recall: Recall
    target: str
    started_by: str
    ended_by: str | None
    signatures: list[Signature]
    lots: list[LotTrace]
    lines: list[BagLine]
    notify: list[PatientNotice]
    held_now: int  # held and not yet infused or destroyed: in stock or on the ward, never to be given
    held_final: int  # held, then destroyed (or given): final, the hold kept as the record of the recall
    generated_at: datetime
    reconciliation: Reconciliation
    outstanding: list[Bag]  # what stops an active recall's completion (services.outstanding_bags)
    donor_lots: DonorOtherLots | None = None  # a lot recall: the donor's other lots, not covered by it
    lookbacks: list[RecallLookback] = field(default_factory=list)  # a donor recall: the lookbacks it closed
    # a reagent recall: every registered row of its supplier lot (lots.queries.same_supplier_lot), listed when the
    # lot was registered more than once or under spellings a recall folds together ("FBS-0099", "FBS/0099")
    reagent_rows: list[ReagentLot] = field(default_factory=list)

    def reagent_rows_lead(self) -> str:
        """What the list of a supplier lot registered more than once is (the page lists the rows, linked, under
        it; the PDF writes them after it); "" for one row."""
        if len(self.reagent_rows) < 2:
            return ""
        return (f"This recall covers the {len(self.reagent_rows)} reagent lots registered for this supplier lot "
                "(the same number, written differently)")

    def reagent_rows_words(self) -> str:
        """The lead and the rows in one sentence (the PDF); "" for one row."""
        lead = self.reagent_rows_lead()
        return lead and lead + ": " + "; ".join(reagent_row_words(row) for row in self.reagent_rows) + "."

    @property
    def outstanding_words(self) -> str:
        return outstanding_words(self.outstanding) if self.outstanding else ""

    @property
    def not_notified(self) -> list[PatientNotice]:
        """The patients on the notify list whose clinician is not yet recorded as told: an active recall is not
        completed while there is one (services.complete_recall)."""
        return not_yet_told(self.notify)

    @property
    def notify_heading_end(self) -> str:
        """The end of the notify section's heading (page and PDF): the instruction while the recall is active, what
        was done once it is closed (a completed recall's final report said "notify their clinician")."""
        if self.recall.active:
            return "notify their clinician"
        return "their clinicians were told" if not self.not_notified else "whether their clinician was told"

    @property
    def completion_blockers(self) -> str:
        """What stops an active recall's completion, in words ("" once nothing does, or when it is closed)."""
        if not self.recall.active:
            return ""
        parts = ([self.outstanding_words] if self.outstanding else []) + (
            [not_notified_words(self.not_notified)] if self.not_notified else [])
        return "; ".join(parts)

    @property
    def bagless_lots(self) -> list[tuple[Lot, str]]:
        """The affected lots with no bag yet (a lot still in process), each with what the recall does to it: the
        bag rows alone left such a lot off the page and the PDF, and the work on it carried on unaware."""
        return [(lot_trace.lot, bagless_words(lot_trace.lot, self.recall)) for lot_trace in self.lots
                if not lot_trace.bags]

    def status_counts(self) -> list[tuple[str, int]]:
        """The affected bags by status, most first (the page's summary: whole, whatever page of bags is shown)."""
        counts = Counter(_words(line.trace.bag.status) for line in self.lines)
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))

    def action_counts(self) -> list[tuple[str, int]]:
        """The affected bags by what the report says to do with them (ACTION_SUMMARY), in that order."""
        counts = Counter(line.action_kind for line in self.lines)
        return [(words, counts[kind]) for kind, words in ACTION_SUMMARY.items() if counts[kind]]

    def held_words(self) -> str:
        """The held bags in words, agreeing with the rows: how many are still to be dealt with, how many are final.
        A completed recall counts its holds kept, then the bags still in stock or on the ward (none): "Bags on hold
        now: 0" beside "4 held bags destroyed (the hold is kept)" and rows saying "destroyed (hold kept)" read as
        a contradiction. The page says the same, its counts in bold (recall/detail.html)."""
        if self.recall.status == "completed":
            return (f"Holds kept: {self.held_kept}{self.kept_detail()}; bags still in stock or on the ward: "
                    f"{self.held_now}. {COMPLETED_HOLDS}")
        return f"Bags on hold now: {self.held_now}{self.held_detail()}."

    @property
    def held_kept(self) -> int:
        """The holds this recall keeps: on the bags still in stock or on the ward, and on those destroyed since."""
        return self.held_now + self.held_final

    def kept_detail(self) -> str:
        """What follows a completed recall's count of holds kept: what became of their bags."""
        if not self.held_kept:
            return " (the recall held no bag)"
        given = any(line.hold_kind == "kept_infused" for line in self.lines)  # never, the bedside stops it
        gone = "destroyed or infused" if given else "destroyed"
        if self.held_final == self.held_kept:
            return f" (all {gone})" if self.held_kept > 1 else f" ({gone})"
        return f" ({self.held_final} {gone})"

    def held_detail(self) -> str:
        """What follows the count of bags on hold now (the page puts the count in bold)."""
        words = " (in stock or on the ward: never to be given)"
        if self.held_final:
            given = any(line.hold_kind == "kept_infused" for line in self.lines)  # never, the bedside stops it
            words += (f"; {self.held_final} held bag{'s' if self.held_final != 1 else ''} "
                      f"{'destroyed or infused' if given else 'destroyed'} since (final: the hold is kept as the "
                      "record of the recall)")
        if self.recall.status == "ended":
            words += "; the recall was ended as invalid and its holds were lifted"
        return words

    @property
    def closing(self) -> str:
        """How the recall was closed, in words, or "" while it is active."""
        recall = self.recall
        if recall.ended_at is None or recall.active:
            return ""
        if recall.status == "completed":
            return f"Completed by {self.ended_by}. Closing note (effectiveness check, reconciliation): " \
                   f"{recall.end_reason}"
        return f"Ended as found invalid by {self.ended_by} (holds lifted): {recall.end_reason}"


#: a donor recall that closed no lookback (started on other news, e.g. a collection site's notice)
NO_LOOKBACK = "No lookback of the donor was open when this recall started, and none was closed under it."


#: after a completed recall's counts: what completing did not do
COMPLETED_HOLDS = "Completing lifts no hold: the bedside check still stops every bag this recall held."


def bagless_words(lot: Lot, recall: Recall) -> str:
    """An affected lot with no bag, in words (the recall's page and PDF, one row for the lot)."""
    state = lot.status.replace("_", " ")
    if recall.status not in IN_FORCE:  # ended as found invalid: it no longer covers the lot
        return f"{state.capitalize()}, no bags: the recall has ended, it no longer covers this lot"
    if lot.status == "in_process":
        return ("In process, no bags yet: its bags will be held when made; it cannot be released while the recall "
                "is in force")
    return f"{state.capitalize()}, no bags: nothing to hold; it cannot be released while the recall is in force"


#: a bag out of the unit but not given: with no allocation in force it is on the ward, not in stock
ON_THE_WARD = ("dispatched", "received", "thawed")


def _action(trace: BagTrace, hold: BagHold | None, recall: Recall | None,
            earlier: EarlierDiscard | None = None, told: PatientNotice | None = None) -> tuple[ActionKind, str]:
    """What to do with the bag: its kind (which the report decides from) and its words (which it shows). A bag a
    patient received: `told` is the patient's entry on the notify list; once their clinician is recorded as told
    the words say what was done, and a closed recall (completed, or ended) gives no instruction any more."""
    bag = trace.bag
    recipient = trace.current_recipient
    if recipient is not None and recipient.received:
        when = f" on {local_and_utc(recipient.infused_at)}" if recipient.infused_at else ""  # the site's time: whom to call
        verb = "infused into" if bag.status == "infused" else f"{bag.status} for"
        given = f"{verb} patient {recipient.patient.code}{when}"
        if told is not None and told.notice is not None:
            return "notified", f"{told.done_words()}. {given[0].upper()}{given[1:]}"
        if recall is not None and not recall.active:  # no instruction on a closed recall's report
            closed = "ended as found invalid" if recall.status == "ended" else recall.status_words.lower()
            return "no_notice", f"No notice of the clinician recorded; the recall is {closed}: {given}"
        return "notify", f"NOTIFY CLINICIAN: {given}"
    if bag.status == "discarded":
        # a recall holds no discarded bag (NOT_HELD_BAG_STATES): a hold means it was discarded after the recall
        # started (the ward or QA destroying a held bag), which the report must not date before it
        if hold is None:  # before it started: under another recall's hold (which it names), or for another reason
            if earlier is not None:
                return "discarded_under_earlier", earlier.words()
            return "discarded_before", "Discarded before the recall: no action"
        return "destroyed_since", "Discarded after the recall started (it was on hold): destroyed, no further action"
    if hold is None:
        return "not_held", "Not held (bag made after the recall started): assess"
    if hold.lifted_at is not None:
        return "hold_lifted", f"Hold lifted {local_and_utc(hold.lifted_at)} (recall ended)"
    if bag.status == "returned":  # back from the ward, not in stock: QA's assessment of the return decides
        # (whether or not a course still reserves it: the assessment discards a reserved bag; the recall's page
        # and a cancelled course do not move it, so "the prescriber cancels, then QA discards it" led nowhere)
        reserved = (f", still reserved for patient {recipient.patient.code} by prescription "
                    f"#{recipient.prescription.id}" if recipient is not None else "")
        return "returned", (f"ON HOLD, returned from the ward (not in stock{reserved}): do not put it back into "
                            "stock; QA discards it (Returned bags), or assesses its return once the recall has ended")
    if recipient is not None:  # a reserved bag is never discarded behind its course (custody.ward_words)
        return "reserved", (f"ON HOLD: reserved for patient {recipient.patient.code} by prescription "
                            f"#{recipient.prescription.id}, not given: do not give; the prescriber cancels the course, "
                            "then QA discards it")
    if bag.status in ON_THE_WARD:  # left the unit, its allocation since ended (e.g. the patient withdrawn)
        return "on_the_ward", (f"ON HOLD on the ward ({bag.status}, not allocated to any patient): do not give; "
                               "retrieve it or have it discarded")
    return "in_stock", IN_STOCK_ACTION


#: a held bag in stock: the page's action, beside its Discard (recalled) button, and the same on paper (no button)
IN_STOCK_ACTION = "ON HOLD in stock: do not issue; QA discards it (Discard (recalled), on this row of the recall's page)"
IN_STOCK_ON_PAPER = "ON HOLD in stock: do not issue; QA to discard it"


def paper_action(line: BagLine) -> str:
    """A bag's action as the PDF prints it: the page's words, except where they point at the page's own controls."""
    return IN_STOCK_ON_PAPER if line.action_kind == "in_stock" else line.action


def signed_words(signature: Signature) -> str:
    """A signature as the recall's PDF prints it: its manifestation (local time with UTC beside), as the pages say it."""
    return f"Signed: {signature.manifestation()}"


def reagent_row_words(row: ReagentLot) -> str:
    return f"#{row.id} {row.name}, {row.supplier} lot {row.lot_number}, expires {row.expiry_date}"


def reagent_rows_of(session: Session, recall: Recall) -> list[ReagentLot]:
    if recall.scope != "reagent_lot" or recall.reagent_lot_id is None:
        return []
    return list(session.scalars(select(ReagentLot).where(
        ReagentLot.id.in_(same_supplier_lot([recall.reagent_lot_id]))).order_by(ReagentLot.id)))


def recall_report(session: Session, recall_id: int) -> RecallReport:
    recall = get_recall(session, recall_id)
    target_id = target_of(recall)
    affected = affected_lots(session, recall.scope, target_id or 0)
    lots = trace_lots(session, affected)  # set-based: a few statements, not two per bag
    holds = {hold.bag_id: hold for hold in session.scalars(select(BagHold).where(BagHold.recall_id == recall.id))}
    earlier = discarded_under_other_recalls(session, recall, [
        bag_trace.bag.id for lot_trace in lots for bag_trace in lot_trace.bags
        if bag_trace.bag.status == "discarded" and bag_trace.bag.id not in holds])
    notify = notify_list(session, lots, notices_of(session, recall.id))
    told = {entry.patient.id: entry for entry in notify}
    lines: list[BagLine] = []
    for lot_trace in lots:
        for bag_trace in lot_trace.bags:
            hold = holds.get(bag_trace.bag.id)
            before = earlier.get(bag_trace.bag.id)
            recipient = bag_trace.current_recipient
            action_kind, action = _action(bag_trace, hold, recall, before,
                                          told.get(recipient.patient.id) if recipient is not None else None)
            lines.append(BagLine(trace=bag_trace, lot=lot_trace.lot, hold=hold, earlier=before,
                                 hold_kind=hold_kind(bag_trace.bag, hold), action_kind=action_kind, action=action))
    finals = [line for line in lines if line.trace.bag.status in ("infused", "discarded")]
    reconciliation = Reconciliation(
        bags=len(lines), infused=sum(1 for line in finals if line.trace.bag.status == "infused"),
        discarded_before=sum(1 for line in finals if line.trace.bag.status == "discarded" and line.hold is None),
        destroyed_since=sum(1 for line in finals if line.trace.bag.status == "discarded" and line.hold is not None),
        not_final=len(lines) - len(finals))
    users = {u.id: u.full_name for u in session.scalars(select(User).where(
        User.id.in_([i for i in (recall.started_by_id, recall.ended_by_id) if i is not None])))}
    return RecallReport(
        recall=recall, target=target_label(session, recall.scope, target_id),
        started_by=users.get(recall.started_by_id, "?"),
        ended_by=users.get(recall.ended_by_id) if recall.ended_by_id else None,
        signatures=signatures_of(session, recall), lots=lots, lines=lines,
        notify=notify,
        # a held bag discarded since is destroyed, no longer "on hold" (its hold stays, as the record of the recall)
        held_now=sum(1 for line in lines if line.hold_kind == "on_hold"),
        held_final=sum(1 for line in lines if line.hold_kind in KEPT), generated_at=utcnow(),
        reconciliation=reconciliation, outstanding=outstanding_bags(session, recall, affected) if recall.active else [],
        donor_lots=donor_other_lots(session, recall), lookbacks=lookbacks_of_recall(session, recall),
        reagent_rows=reagent_rows_of(session, recall))


# ---- PDF ----------------------------------------------------------------------------------------------------

_styles = getSampleStyleSheet()
SMALL = ParagraphStyle("rsmall", parent=_styles["BodyText"], fontSize=7.5, leading=9)
BODY = ParagraphStyle("rbody", parent=_styles["BodyText"], fontSize=9, leading=11)
FLAG = ParagraphStyle("rflag", parent=BODY, textColor=colors.HexColor("#9a1b1b"), fontName="Helvetica-Bold")


def _p(text: Any, style: ParagraphStyle = SMALL) -> Paragraph:
    safe = str(text if text is not None else "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return Paragraph(safe, style)


def _cell(text: Any, width: float) -> Any:
    """A table cell: the text as is (drawn in the body's font, grid) when it fits on one line of the column
    (`width`, its padding of 6 points each side taken off), a wrapping paragraph otherwise. Thousands of paragraphs
    are what kept a report of 10 000 bags from finishing."""
    text = str(text if text is not None else "")
    if "\n" not in text and stringWidth(text, "Helvetica", 7.5) <= width - 12:
        return text
    return _p(text)


def _words(status: str) -> str:
    """A status as the pages show it (macros.html status_badge): "in process", not the code "in_process"."""
    return (status or "").replace("_", " ")


#: the page of the recall report and the trace reports, its margins, and the width the tables are laid out in: the
#: frame has no side padding (build_pdf), so the frame is doc.width and a table as wide stays inside the margins
PAGE = landscape(A4)
MARGIN = 12 * mm
FRAME_WIDTH = PAGE[0] - 2 * MARGIN


def fit(widths: list[float]) -> list[float]:
    """Column widths scaled, in their proportions, to the frame's width (FRAME_WIDTH): a table summed by hand over
    the frame reached past the right margin."""
    total = sum(widths)
    return [width * FRAME_WIDTH / total for width in widths]


def grid(rows: list[list[Any]], widths: list[float]) -> Table:
    """A table of the reports: widths are the columns' proportions, laid out over the frame's width (fit)."""
    table = Table(rows, colWidths=fit(widths), repeatRows=1, hAlign="LEFT")
    table.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8), ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8ecf2")),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#9aa5b5")), ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ("FONT", (0, 1), (-1, -1), "Helvetica", 7.5)]))  # the body's plain-text cells (short words), as SMALL
    return table


#: rows of one table of a long report: reportlab measures a table's remaining rows again at each page it splits,
#: so one table of 10 000 bags never finished; tables of this many rows, each with its header, follow each other
ROWS_PER_TABLE = 30


def grids(rows: list[list[Any]], widths: list[float]) -> list[Table]:
    """A long table (rows[0] its header) as consecutive tables of ROWS_PER_TABLE rows, each under the header: every
    row is printed, in order, and the report finishes."""
    header, body = rows[0], rows[1:]
    if not body:
        return [grid(rows, widths)]
    return [grid([header, *body[start:start + ROWS_PER_TABLE]], widths)
            for start in range(0, len(body), ROWS_PER_TABLE)]


def _planned(prescription: Any) -> str:
    """The planned administration, or "not planned" when the clinician gave none (planned_at is then the minute of
    signing: shown as a time, it read as a plan the prescription page does not have)."""
    from mscbatch.patients.dose_sheet import infusion_planned  # patients read recalls: imported when called

    return local_and_utc(prescription.planned_at) if infusion_planned(prescription) else "not planned"


def build_pdf(title: str, story: list[Any]) -> bytes:
    """The report laid out on landscape A4, its title at the head of every page and "page x of y" at the foot."""
    buffer = BytesIO()
    doc = BaseDocTemplate(buffer, pagesize=PAGE, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN,
                          bottomMargin=MARGIN, title=title, author="mscbatch", invariant=1)
    # no side padding: the frame is doc.width wide, the width the tables are fitted to (fit)
    frame = Frame(doc.leftMargin, doc.bottomMargin, doc.width, doc.height, leftPadding=0, rightPadding=0, id="body")
    doc.addPageTemplates([PageTemplate(id="report", frames=[frame])])
    doc.build(story, canvasmaker=partial(NumberedCanvas, header=f"mscbatch — {title}", margin=MARGIN))
    return buffer.getvalue()


def donor_lots_words(found: DonorOtherLots) -> str:
    """The donor's other lots in one sentence, for the PDF (the page shows them as a list with links)."""
    code = found.donor.code
    lots = ", ".join(f"{lot.lot_number} ({lot.status.replace('_', ' ')})" for lot in found.lots)
    text = (f"Other lots from donor {code}, not covered by this recall: {lots}." if lots
            else f"No other lot was made from donor {code}.")
    if found.donor_recall is not None:
        return text + f" Recall R-{found.donor_recall.id} of the donor covers every lot of the donor."
    if found.donor_in_question:
        text += (f" Donor {code} is {found.donor.status.replace('_', ' ')}"
                 + (" with an open lookback" if found.lookback_open else "") + ".")
    if lots:
        text += (" If this recall is about the donor (a marker found positive, the donor found ineligible), recall "
                 "the donor: that holds the bags of every lot from the donor.")
    return text


def recall_report_pdf(report: RecallReport) -> bytes:
    recall = report.recall
    story: list[Any] = [
        _p(f"Recall / lookback report R-{recall.id}", _styles["Title"]),
        _p(f"{RECALL_SCOPES[recall.scope]} recall of {report.target}. Status: {recall.status_words.upper()}"
           + (" (final report)." if recall.status == "completed" else "."), BODY),
        _p(f"Reason: {recall.reason}", BODY),
        _p(f"Started {local_and_utc(recall.started_at)} by {report.started_by}.", BODY)]
    if report.closing:
        story.append(_p(f"{local_and_utc(recall.ended_at)}: {report.closing}", BODY))
    for signature in report.signatures:
        story.append(_p(signed_words(signature), BODY))
    story.append(_p(f"Reconciliation: {report.reconciliation.words()}", BODY))
    if report.completion_blockers:
        story.append(_p(f"Before this recall can be completed: {report.completion_blockers}.", BODY))
    story.append(_p(f"{report.held_words()} Report generated {local_and_utc(report.generated_at)}.", BODY))
    if report.reagent_rows_words():
        story.append(_p(report.reagent_rows_words(), BODY))
    if report.donor_lots is not None:
        story.append(_p(donor_lots_words(report.donor_lots), FLAG if report.donor_lots.donor_in_question else BODY))
    if recall.scope == "donor":
        story += [Spacer(1, 4 * mm), _p("Donor lookbacks covered by this recall", _styles["Heading2"])]
        for covered in report.lookbacks:
            story.append(_p(covered.words(), BODY))
        if not report.lookbacks:
            story.append(_p(NO_LOOKBACK, BODY))
    story += [Spacer(1, 4 * mm), _p(f"{NOTIFY_HEADING}: {report.notify_heading_end}", _styles["Heading2"])]
    if report.notify:
        rows: list[list[Any]] = [[_p(h) for h in ("Patient", "Protocol", "Bag (DIN)", "Lot", "Bag status",
                                                  "Allocated", "Planned administration", "Infusion started",
                                                  "Clinician notified")]]
        widths = [24 * mm, 26 * mm, 30 * mm, 24 * mm, 16 * mm, 32 * mm, 32 * mm, 32 * mm, 57 * mm]
        fitted = fit(widths)
        for notice in report.notify:
            for bag, lot, recipient in notice.received:
                rows.append([_cell(text, width) for text, width in zip((
                    notice.patient.code, notice.protocol_shown, din_shown(bag), lot.lot_number, _words(bag.status),
                    local_and_utc(recipient.allocation.allocated_at), _planned(recipient.prescription),
                    local_and_utc(recipient.infused_at), notice.paper_words()), fitted, strict=True)])
        story += grids(rows, widths)
    else:
        story.append(_p("No patient has received product from the affected bags.", BODY))
    story += [Spacer(1, 4 * mm), _p("Affected lots and bags", _styles["Heading2"])]
    rows = [[_p(h) for h in ("Lot", "Lot status now", "Bag", "DIN", "Bag status", "Hold", "Action")]]
    widths = [28 * mm, 26 * mm, 16 * mm, 34 * mm, 20 * mm, 22 * mm, 122 * mm]
    fitted = fit(widths)
    for line in report.lines:
        bag = line.trace.bag
        rows.append([_cell(text, width) for text, width in zip((
            line.lot.lot_number, line.lot.status.replace("_", " "), f"{bag.bag_number} of {bag.bag_count}",
            din_shown(bag), _words(bag.status), line.hold_words, paper_action(line)), fitted, strict=True)])
    for lot, words in report.bagless_lots:
        rows.append([_p(lot.lot_number), _p(lot.status.replace("_", " ")), _p("—"), _p("—"), _p("—"), _p("—"),
                     _p(words)])
    story += grids(rows, widths)
    return build_pdf(f"Recall R-{recall.id}", story)


def prescription_words(backward: BackwardTrace, entry: BackwardEntry) -> str:
    """The prescription's state as the patient page's list says it (templates/patients/detail.html, from
    patients.course.CourseSummary): "COMPLETED: every bag given" for a course whose every bag was given (with
    "(closed)" once it was closed), otherwise its status."""
    prescription = entry.recipient.prescription
    course = backward.courses.get(prescription.id)
    if course is None or course.state_words == prescription.status:
        return _words(prescription.status)
    return course.state_words + course.closed_words


def lot_record_heading(lot: Lot) -> str:
    """The heading of a lot trace's manufacturing-record section (its corrections after first entry)."""
    return f"Lot {lot.lot_number}: manufacturing record"


def trace_pdf(title: str, forward: ForwardTrace | None = None, backward: Any = None) -> bytes:
    """Traceability report: forward (origin -> lots -> bags -> patients) or backward (patient -> ... -> reagents)."""
    story: list[Any] = [_p(title, _styles["Title"]), _p(f"Generated {local_and_utc(utcnow())}.", BODY), Spacer(1, 3 * mm)]
    if forward is not None:
        rows: list[list[Any]] = [[_p(h) for h in ("Donor", "Lot", "Lot status", "Reagent lots", "Bag", "DIN",
                                                  "Bag status", "Hold", "Patients (allocation)")]]
        for lot_trace in forward.lots:
            reagents = "; ".join(f"{r.name} {r.lot_number}" for _u, r in lot_trace.reagents) or "—"
            for bag_trace in lot_trace.bags or [None]:  # type: ignore[list-item]
                if bag_trace is None:
                    rows.append([_p(lot_trace.donor.code), _p(lot_trace.lot.lot_number), _p(_words(lot_trace.lot.status)),
                                 _p(reagents), _p("—"), _p("—"), _p("—"), _p("—"), _p("—")])
                    continue
                bag = bag_trace.bag
                # the allocation's instant as the page says it (site time, UTC beside), never a bare day
                patients = "; ".join(
                    f"{r.patient.code} ({'cancelled' if r.cancelled else ('received' if r.received else 'allocated')}; "
                    f"allocated {local_and_utc(r.allocation.allocated_at)}"
                    + (f"; infusion started {local_and_utc(r.infused_at)}" if r.infused_at else "") + ")"
                    for r in bag_trace.recipients) or "—"
                rows.append([_p(lot_trace.donor.code), _p(lot_trace.lot.lot_number), _p(_words(lot_trace.lot.status)),
                             _p(reagents), _p(f"{bag.bag_number} of {bag.bag_count}"), _p(din_shown(bag)),
                             _p(_words(bag.status)), _p("ON HOLD" if bag_trace.hold else "—"), _p(patients)])
        story.append(grid(rows, [24 * mm, 26 * mm, 20 * mm, 44 * mm, 14 * mm, 32 * mm, 18 * mm, 16 * mm, 78 * mm]))
        for lot_trace in forward.lots:  # a lot's own trace (forward_from_lot) read its record's corrections
            if lot_trace.corrections is not None:
                # the certificate's section (release.coa: user text escaped, instants local with UTC), under a
                # heading naming the lot (a plain line above it read as stray); imported here, release reads recalls
                from mscbatch.release.coa import corrections_section

                story += [Spacer(1, 3 * mm), _p(lot_record_heading(lot_trace.lot), _styles["Heading2"]),
                          corrections_section(lot_trace.corrections)]
    if backward is not None:
        rows = [[_p(h) for h in ("Allocated", "Prescription", "Bag status", "Infusion started", "DIN", "Lot",
                                 "Lot status", "Donor", "Reagent lots", "Hold")]]
        for entry in backward.entries:
            reagents = "; ".join(f"{r.name} {r.lot_number} ({r.supplier})" for _u, r in entry.reagents) or "—"
            rows.append([_p(local_and_utc(entry.recipient.allocation.allocated_at)
                            + (" (cancelled)" if entry.recipient.cancelled else "")),
                         _p(f"#{entry.recipient.prescription.id} {prescription_words(backward, entry)}"),
                         _p(_words(entry.bag.status)), _p(local_and_utc(entry.recipient.infused_at)),
                         _p(din_shown(entry.bag)), _p(entry.lot.lot_number),
                         _p(_words(entry.lot.status)), _p(entry.donor.code), _p(reagents), _p("ON HOLD" if entry.hold else "—")])
        story.append(grid(rows, [30 * mm, 30 * mm, 16 * mm, 30 * mm, 30 * mm, 24 * mm, 18 * mm, 22 * mm, 56 * mm,
                                 14 * mm]))
    return build_pdf(title, story)
