"""Reading recalls and holds: is this bag on hold (the bedside check asks), what a recall touches."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mscbatch.auth.models import User
from mscbatch.database import utcnow
from mscbatch.donors.models import Donor, DonorLookback, ScreeningResult
from mscbatch.donors.queries import rule_set_of
from mscbatch.errors import NotFound
from mscbatch.lots.models import Bag, Lot, ReagentUse
from mscbatch.lots.queries import same_supplier_lot
from mscbatch.recall.models import RECALL_SCOPES, BagHold, Recall
from mscbatch.site import site_day

if TYPE_CHECKING:
    from mscbatch.recall.report import PatientNotice
    from mscbatch.recall.traceability import ForwardTrace

#: a bag already given or destroyed is not held (recall/services.py holds the same ones); the bag's final states,
#: which every bag a recall holds must reach before the recall is completed (services.complete_recall)
NOT_HELD_BAG_STATES = ("infused", "discarded")
#: the recalls that still bar their origin: an active one, and a completed one (found valid: what its origin makes
#: or releases later is covered by it for good). Only a recall ended as invalid lets its origin go.
IN_FORCE = ("active", "completed")


def not_yet_told(entries: Iterable[PatientNotice], prescriber_id: int | None = None) -> list[PatientNotice]:
    """The patients on a recall's notify list (report.patients_to_notify) whose clinician nobody has recorded as told
    (no RecallNotice), in the list's order: what the recall's page offers to record and what stops its completion
    (report.RecallReport.not_notified, services.complete_recall); with `prescriber_id`, only those given or sent
    product that clinician prescribed (their home page: notices.open_notices_for)."""
    return [entry for entry in entries
            if entry.notice is None and (prescriber_id is None or prescriber_id in entry.prescriber_ids)]


def active_holds(session: Session, bag_id: int) -> list[tuple[BagHold, Recall]]:
    """The bag's active holds with their recalls, oldest first."""
    return [(hold, recall) for hold, recall in session.execute(
        select(BagHold, Recall).join(Recall, Recall.id == BagHold.recall_id)
        .where(BagHold.bag_id == bag_id, BagHold.lifted_at.is_(None)).order_by(BagHold.id))]


def is_held(bag_id: Any) -> Any:
    """Correlated EXISTS: the bag has an active hold (the bedside check reads it in its one statement and asks
    bag_hold for the words only when it is true)."""
    return select(BagHold.id).where(BagHold.bag_id == bag_id, BagHold.lifted_at.is_(None)).exists()


def bag_hold(session: Session, bag_id: int) -> str | None:
    """Why the bag is on hold, for the unit's pages (labels, dispatch, trace), or None when it is not on hold: each
    recall with its origin, days and QA's reason."""
    holds = active_holds(session, bag_id)
    if not holds:
        return None
    return "; ".join(f"on hold by {recall_words(recall)}" for _hold, recall in holds)


#: ids in one IN list: SQLite before 3.32 allows 999 parameters in a statement, and long lists plan badly
IDS_PER_STATEMENT = 900


def chunks(ids: list[int], size: int = IDS_PER_STATEMENT) -> Iterable[list[int]]:
    """The ids in lists of at most `size`, for set-based reads of thousands of rows (a recall's bags)."""
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def bag_holds(session: Session, bag_ids: Any) -> dict[int, str]:
    """bag_hold of many bags in one statement: `bag_ids` a list of ids (at most IDS_PER_STATEMENT: chunks) or a
    SELECT of bag ids. Only the bags on hold are keys; the words are bag_hold's, each recall in hold order."""
    found: dict[int, list[str]] = {}
    for hold, recall in session.execute(
            select(BagHold, Recall).join(Recall, Recall.id == BagHold.recall_id)
            .where(BagHold.bag_id.in_(bag_ids), BagHold.lifted_at.is_(None)).order_by(BagHold.id)):
        found.setdefault(hold.bag_id, []).append(f"on hold by {recall_words(recall)}")
    return {bag_id: "; ".join(words) for bag_id, words in found.items()}


def ward_hold(session: Session, bag_id: int) -> str | None:
    """Why the bag is on hold in a nurse's words (the bedside STOP), or None: the recall numbers only ("recall R-4"),
    which the unit looks up when called. QA's reason is free text written for the unit (a marker, a supplier notice,
    any length): on a ward screen it would push the STOP's own words off a tablet; and "completed" would read as
    "over" while the hold is kept."""
    holds = active_holds(session, bag_id)
    if not holds:
        return None
    return ("recall " if len(holds) == 1 else "recalls ") + ", ".join(f"R-{recall.id}" for _hold, recall in holds)


def held_bag_ids(session: Session, bag_ids: list[int]) -> set[int]:
    """Which of these bags have an active hold (for lists of bags)."""
    if not bag_ids:
        return set()
    return set(session.scalars(select(BagHold.bag_id).where(BagHold.bag_id.in_(bag_ids),
                                                             BagHold.lifted_at.is_(None))))


def recall_in_force_of(session: Session, scope: str, target_id: int) -> Recall | None:
    """The recall in force of this origin (active, or completed: IN_FORCE; a completed recall still covers what its
    origin makes later, so a new lot or a second recall of it is refused). A reagent lot's is of any row registered for the same supplier lot
    (lots.queries.same_supplier_lot), as the recall covers them all: a second recall under another row of it was
    not refused, and held every bag a second time."""
    if scope == "reagent_lot":
        origin = Recall.reagent_lot_id.in_(same_supplier_lot([target_id]))
    else:
        origin = {"donor": Recall.donor_id, "lot": Recall.lot_id}[scope] == target_id
    return session.scalar(select(Recall).where(Recall.scope == scope, origin, Recall.status.in_(IN_FORCE))
                          .order_by(Recall.id).limit(1))


def recalls_covering(session: Session, lot: Lot) -> list[Recall]:
    """The active recalls that cover the lot now: of the lot itself, of its donor, or of a reagent lot it used.
    A recall holds the bags that exist when it starts; the steps that make or release stock later (a new lot from
    the donor, a reagent use recorded, bags frozen, a release) ask this, so that what is made after a recall
    started is covered by it too. A completed recall too (IN_FORCE): completing one must not let a lot of its
    donor or reagent lot still in process (or a use of the reagent recorded since) be released, or its bags go out
    unheld."""
    return list(session.scalars(select(Recall).where(Recall.status.in_(IN_FORCE), _origins(lot)).order_by(Recall.id)))


def _origins(lot: Lot) -> Any:
    """A recall's origins that reach the lot: the lot itself, its donor, a reagent lot it used (under any row
    registered for the same supplier lot: lots.queries.same_supplier_lot)."""
    used = same_supplier_lot(select(ReagentUse.reagent_lot_id).where(ReagentUse.lot_id == lot.id))
    return or_(Recall.lot_id == lot.id, Recall.donor_id == lot.donor_id, Recall.reagent_lot_id.in_(used))


def recalls_of_lot(session: Session, lot: Lot) -> list[Recall]:
    """The recalls that cover the lot (recalls_covering) and those that did: one of the same origins that ended
    after the lot was made. Ending a recall lifts its holds but leaves the lot recalled and its signatures on the
    record (the certificate of analysis prints them)."""
    return list(session.scalars(select(Recall).where(
        _origins(lot), or_(Recall.status.in_(IN_FORCE), Recall.ended_at > lot.created_at)).order_by(Recall.id)))


def recall_words(recall: Recall) -> str:
    # a completed recall still holds its bags and bars its origin (IN_FORCE): the words say it was completed, not
    # that it is still under way
    # (days are the site's days, as every page says them: the UTC day of an evening recall is the next one)
    done = (f", completed {site_day(recall.ended_at):%Y-%m-%d}" if recall.status == "completed" and recall.ended_at
            else "")
    return (f"recall R-{recall.id} ({RECALL_SCOPES.get(recall.scope, recall.scope).lower()} recall started "
            f"{site_day(recall.started_at):%Y-%m-%d}{done}): {recall.reason}")


def hold_for_recalls(session: Session, lot: Lot, bags: list[Bag]) -> int:
    """Inside the caller's use case: hold each of these bags for every recall in force covering its lot (an active
    or a completed one: recalls_covering) that does not hold it yet. Returns the number of holds placed."""
    recalls = recalls_covering(session, lot)
    if not recalls or not bags:
        return 0
    session.flush()  # new bags need their ids
    held = {(recall_id, bag_id) for recall_id, bag_id in session.execute(
        select(BagHold.recall_id, BagHold.bag_id).where(BagHold.recall_id.in_([r.id for r in recalls]),
                                                       BagHold.lifted_at.is_(None)))}
    now, placed = utcnow(), 0
    for recall in recalls:
        for bag in bags:
            if bag.status not in NOT_HELD_BAG_STATES and (recall.id, bag.id) not in held:
                session.add(BagHold(recall_id=recall.id, bag_id=bag.id, bag_status_at_hold=bag.status, placed_at=now))
                placed += 1
    return placed


@dataclass(frozen=True)
class OpenLookback:
    """An approved donor reopened by later information (a late positive marker): what QA must decide on, with
    every lot made from the donor, its bags and the patients they reached (the donor's forward trace)."""

    lookback: DonorLookback
    donor: Donor
    trigger: ScreeningResult | None  # the late result, when a result (not other news) reopened the donor
    marker_name: str
    opened_by: str
    trace: ForwardTrace
    recall: Recall | None  # an active donor recall already covering the stock (then QA reads its report)

    @property
    def opened_at(self) -> datetime:
        return self.lookback.opened_at


def open_lookbacks(session: Session) -> list[OpenLookback]:
    """Every donor lookback not yet closed, oldest first. A lookback closes when QA starts the donor's
    recall, or when QA closes it under a recall of the donor already in force: until then the QA dashboard and the recalls page put it before QA, so that a late positive marker is
    never left on the donor page alone."""
    # traceability imports this module (bag_hold): imported when called
    from mscbatch.recall.traceability import forward_from_donor

    out = []
    for lookback in session.scalars(select(DonorLookback).where(DonorLookback.closed_at.is_(None))
                                    .order_by(DonorLookback.opened_at, DonorLookback.id)):
        trace = forward_from_donor(session, lookback.donor_id)
        donor = trace.donor
        assert donor is not None
        trigger = session.get(ScreeningResult, lookback.triggering_result_id) if lookback.triggering_result_id else None
        name = trigger.marker if trigger is not None else ""
        if trigger is not None:
            try:
                marker = rule_set_of(donor).marker(trigger.marker)
                name = marker.name if marker is not None else name
            except NotFound:  # the donor's rule set left config/donor_rules: its marker id still says what it was
                pass
        opener = session.get(User, lookback.opened_by_id)
        out.append(OpenLookback(lookback=lookback, donor=donor, trigger=trigger, marker_name=name,
                                opened_by=opener.full_name if opener else "?", trace=trace,
                                recall=recall_in_force_of(session, "donor", donor.id)))
    return out
