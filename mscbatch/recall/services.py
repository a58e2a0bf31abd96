"""Recall and lookback (issue 7, DOMAIN.md section 8).

start_recall: QA, with a reason and an electronic signature, recalls from a donor (late positive marker), a lot
or a reagent lot. In the same transaction every affected bag not yet infused (nor discarded) gets an active
BagHold, so the bedside check refuses it at once (mscbatch.recall.queries.bag_hold), and every affected lot
the lot state table lets go to "recalled" goes there (released / conditionally released lots); the others
(in process, in quarantine) keep their state and are held bag by bag. A donor recall links and closes the
donor's open lookbacks; ended as invalid it opens the newest again (_reopen_lookback); a lookback opened while
the donor's recall is in force is closed by QA under it (close_lookback). end_recall: signed by QA when the
recall proves unfounded; lifts its holds (a lot already "recalled" stays so: the state is final and the report
says it). complete_recall: signed by QA when a
valid recall is done (EU GMP Part I 8.30: a closing note with the reconciliation, a final report); refused while a
bag it reaches is not yet infused or destroyed; lifts nothing, and its origin stays recalled (queries.IN_FORCE).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import literal, select
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.core.bounds import MAX_ROW_ID, whole_number
from mscbatch.core.identifiers import din_shown
from mscbatch.core.states import LOT, TransitionRefused
from mscbatch.custody import handover
from mscbatch.database import utcnow
from mscbatch.donors.models import APPROVED, Donor, DonorLookback, EligibilityDecision
from mscbatch.donors.queries import lock_donor
from mscbatch.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from mscbatch.lots.models import Bag, Lot, ReagentLot
from mscbatch.lots.queries import (
    NOT_COUNTED_WORDS,
    bags_of,
    lots_of_donor,
    lots_using_reagent,
    recall_key,
    same_supplier_lot,
)
from mscbatch.lots.reagents import lock_reagent_lots
from mscbatch.lots.services import apply_lot_transition, lock_lot
from mscbatch.patients.queries import allocation_of_bag
from mscbatch.recall.models import COMPLETE_MEANING, END_MEANING, RECALL_SCOPES, BagHold, Recall
from mscbatch.recall.queries import IN_FORCE, NOT_HELD_BAG_STATES, not_yet_told, recall_in_force_of
from mscbatch.signatures.services import sign
from mscbatch.site import site_config, site_today

START_MEANING = "Recall started: affected stock on hold"
#: the longest reason for starting or ending a recall, as other reasons in the app (a 5000-character reason made
#: the recall's page 59 000 px wide); the form says the same (forms.StartRecallForm, forms.EndRecallForm)
MAX_REASON = 2000
#: the answer to a recall started without a reason (the start form says it beside every other blank field)
REASON_MISSING = ("Give the reason for the recall (e.g. late positive marker, reagent supplier notice): it is signed "
                  "and goes on the report.")
#: the answer to a recall started with no origin typed
TARGET_MISSING = "Give the donor code, lot number or reagent lot number to recall."
#: the answer to a recall ended without a reason
END_REASON_MISSING = "Say why the recall is ended (e.g. the positive marker was a false positive, confirmed by ...)."
#: what a refusal repeats of a typed text at most (a 5000-character target was repeated whole)
SHOWN_TYPED = 40


def typed_shown(text: str) -> str:
    """A typed text as a refusal repeats it: its first SHOWN_TYPED characters, then "…" when it is longer."""
    return text if len(text) <= SHOWN_TYPED else text[:SHOWN_TYPED] + "…"


def reason_too_long(reason: str, what: str = "reason") -> ValidationFailed | None:
    """The refusal of a reason over MAX_REASON characters (after its outer spaces are stripped), or None."""
    if len(reason) <= MAX_REASON:
        return None
    return ValidationFailed(f"The {what} has at most {MAX_REASON} characters (this one has {len(reason)}). Nothing "
                            "was signed.", field="reason")


def affected_lots(session: Session, scope: str, target_id: int) -> list[Lot]:
    """Every lot a recall of this origin touches, oldest first."""
    if scope == "donor":
        if session.get(Donor, target_id) is None:
            raise NotFound(f"No donor with id {target_id}.")
        lots = lots_of_donor(session, target_id)
    elif scope == "lot":
        lot = session.get(Lot, target_id)
        if lot is None:
            raise NotFound(f"No lot with id {target_id}.")
        lots = [lot]
    elif scope == "reagent_lot":
        if session.get(ReagentLot, target_id) is None:
            raise NotFound(f"No reagent lot with id {target_id}.")
        lots = list({lot.id: lot for _use, lot in lots_using_reagent(session, target_id)}.values())
    else:
        raise ValidationFailed(f"A recall starts from a donor, a lot or a reagent lot, not {scope!r}.", field="scope")
    return sorted(lots, key=lambda lot: lot.id)


def lock_target(session: Session, scope: str, target_id: int) -> None:
    """Lock the recall's origin row before its lots are listed: the donor, the lot, or every row of the reagent's
    supplier lot (lots.reagents.lock_reagent_lots). A lot started from the donor, or a use of the reagent recorded
    or corrected onto it, takes the same lock before its cell lot (lots.services.create_lot, lots.reagents,
    lots.reagent_corrections): on PostgreSQL (READ COMMITTED) it then either commits before the lots are listed
    (and its lot is recalled or held) or waits and finds the recall active (and is refused). Without it both saw
    nothing of the other and the lot escaped the recall. A second recall of the same origin waits here too, then
    finds the first active (Conflict). Origin first, then lots in id order: the order every writer takes.
    A lot recall's origin is its one lot, whose list cannot grow: start_recall_in_use_case locks it just after
    listing it (before the check for an active recall), and the lot's bags are read under that lock. An unknown
    scope locks nothing: affected_lots refuses it."""
    if scope == "donor":
        lock_donor(session, target_id)  # NotFound "No donor with id ...", as affected_lots says it
    elif scope == "reagent_lot":
        lock_reagent_lots(session, [target_id])


def target_label(session: Session, scope: str, target_id: int | None) -> str:
    if target_id is None:
        return "?"
    if scope == "donor":
        donor = session.get(Donor, target_id)
        return f"donor {donor.code}" if donor else f"donor #{target_id}"
    if scope == "lot":
        lot = session.get(Lot, target_id)
        return f"lot {lot.lot_number}" if lot else f"lot #{target_id}"
    reagent = session.get(ReagentLot, target_id)
    return f"reagent lot {reagent.name} {reagent.lot_number} ({reagent.supplier})" if reagent else f"#{target_id}"


def target_of(recall: Recall) -> int | None:
    return {"donor": recall.donor_id, "lot": recall.lot_id, "reagent_lot": recall.reagent_lot_id}[recall.scope]


@dataclass(frozen=True)
class KeptLot:
    """A lot the recall could not move to "recalled" (in process, in quarantine), with what is true of its bags: the
    start message says per lot what was held (it once said "(bags held)" of a lot with none)."""

    lot_number: str
    state: str
    bags: int
    held: int


@dataclass(frozen=True)
class RecallStarted:
    recall_id: int
    held_bags: int
    recalled_lots: list[str]
    lots_kept: list[KeptLot]  # lots that could not go to "recalled"


def start_recall(session: Session, actor: Any, *, scope: str, target_id: int, reason: str,
                 password: str) -> RecallStarted:
    """Start a recall (QA, signed): hold every affected bag not yet infused, recall the lots that may be."""
    reason = (reason or "").strip()
    if not actor.has_role("qa"):
        raise PermissionDenied("Only QA may start a recall.")
    if not reason:
        raise ValidationFailed(REASON_MISSING, field="reason")
    too_long = reason_too_long(reason)
    if too_long is not None:  # refused before anything is written (the use case below)
        raise too_long
    if scope not in RECALL_SCOPES:
        raise ValidationFailed(f"A recall starts from a donor, a lot or a reagent lot, not {scope!r}.", field="scope")
    if not target_id:
        raise ValidationFailed(f"Choose the {RECALL_SCOPES[scope].lower()} to recall.", field="target_id")
    with use_case(session, actor, f"recall: {reason}"):
        return start_recall_in_use_case(session, actor, scope=scope, target_id=target_id, reason=reason,
                                        password=password)


def start_recall_in_use_case(session: Session, actor: Any, *, scope: str, target_id: int, reason: str,
                             password: str) -> RecallStarted:
    """The recall itself, inside the caller's use case (start_recall, or QA confirming a late OOS)."""
    lock_target(session, scope, target_id)
    lots = affected_lots(session, scope, target_id)
    if scope == "lot":  # its one lot, locked before anything is decided (see lock_target)
        refuse_rejected(lock_lot(session, target_id))
    if recall_in_force_of(session, scope, target_id) is not None:
        raise Conflict(f"A recall of {target_label(session, scope, target_id)} is in force already (active, or "
                       "completed: a completed recall still covers what it reached).")
    recalled: list[str] = []
    kept: list[KeptLot] = []
    now = utcnow()
    recall = Recall(scope=scope, reason=reason, status="active", started_by_id=actor.id, started_at=now,
                    donor_id=target_id if scope == "donor" else None,
                    lot_id=target_id if scope == "lot" else None,
                    reagent_lot_id=target_id if scope == "reagent_lot" else None)
    # every open lookback of the donor: a donor approved again, then reopened by newer news, has two, and the older
    # one left open could never be closed (a second recall of the donor is refused while this one is in force)
    lookbacks = list(session.scalars(select(DonorLookback).where(
        DonorLookback.donor_id == target_id, DonorLookback.closed_at.is_(None))
        .order_by(DonorLookback.id.desc()))) if scope == "donor" else []
    if lookbacks:
        recall.lookback_id = lookbacks[0].id  # the newest: the one it answers (its end reopens by time: _reopen_lookback)
    session.add(recall)
    session.flush()
    held = 0
    for listed in lots:
        # read afresh under the lot's lock (in id order, as every recall takes them): a release committed since
        # the list was read is recalled, and its trail event says released -> recalled, not quarantine -> recalled
        lot = lock_lot(session, listed.id)
        if _may_recall(lot):
            apply_lot_transition(session, actor, lot, "recalled")
            recalled.append(lot.lot_number)
        bags = bags_of(session, lot.id)
        held_of_lot = 0
        for bag in bags:
            if bag.status in NOT_HELD_BAG_STATES:
                continue
            session.add(BagHold(recall_id=recall.id, bag_id=bag.id, bag_status_at_hold=bag.status, placed_at=now))
            held_of_lot += 1
        held += held_of_lot
        if lot.status != "recalled":  # neither recalled now nor before: in process or in quarantine
            kept.append(KeptLot(lot.lot_number, lot.status, len(bags), held_of_lot))
    for lookback in lookbacks:
        lookback.closed_at = now
        lookback.closed_by_id = actor.id
        lookback.closure_note = f"Recall R-{recall.id} started: {reason}"
    sign(session, actor, password, recall, START_MEANING, required_role="qa")
    recall_id = recall.id
    return RecallStarted(recall_id=recall_id, held_bags=held, recalled_lots=recalled, lots_kept=kept)


def refuse_rejected(lot: Lot) -> None:
    """Refuse a recall of a rejected lot: rejected before any release (the state machine allows no other way), none of
    its bags was labelled, sent or given, and none ever will be, so such a recall would be a signed, active record of
    a lot gone out that never did, holding nothing. (A lot in process or in quarantine may still be recalled: its
    bags are then held while the alert is investigated, and released again if the recall is ended.)"""
    if lot.status == "rejected":
        raise Conflict(f"Lot {lot.lot_number} is rejected: it was never released and none of its bags can be "
                       "labelled, sent or given, so there is nothing to recall. Nothing was recorded.")


def _may_recall(lot: Lot) -> bool:
    try:
        LOT.check(lot.status, "recalled", {"qa"})
    except TransitionRefused:
        return False
    return True


def get_recall(session: Session, recall_id: int) -> Recall:
    recall = session.get(Recall, recall_id)
    if recall is None:
        raise NotFound(f"No recall with id {recall_id}.")
    return recall


def locked_recall(session: Session, recall_id: int, closed_words: dict[str, str] | None = None) -> Recall:
    """The recall, locked and read again inside the use case's transaction (its end, its completion and a notice
    under it all take it here), and with `closed_words` refused (409) unless still active, the words by status.
    Two QA people closing it at once (PostgreSQL: one ending it, found invalid, the other completing it, or both
    ending it) both saw it active; without the lock both signed, and the second overwrote the first's reason with a
    wrong old value in the trail. Now the second waits, then finds it closed. Without `closed_words` the caller
    refuses a closed recall itself, after its own checks (recall.notices: the patient's entry is checked first)."""
    recall = session.get(Recall, recall_id, with_for_update=True, populate_existing=True)
    if recall is None:
        raise NotFound(f"No recall {recall_id}.")
    if closed_words is not None and not recall.active:
        raise Conflict(f"Recall R-{recall.id} {closed_words.get(recall.status, 'is closed.')}")
    return recall


def end_recall(session: Session, actor: Any, recall_id: int, *, reason: str, password: str) -> int:
    """End a recall found invalid (QA, signed): lift its holds. Returns how many holds were lifted."""
    reason = (reason or "").strip()
    if not actor.has_role("qa"):
        raise PermissionDenied("Only QA may end a recall.")
    if not reason:
        raise ValidationFailed(END_REASON_MISSING, field="reason")
    too_long = reason_too_long(reason, "reason for ending the recall")
    if too_long is not None:
        raise too_long
    get_recall(session, recall_id)
    with use_case(session, actor, f"recall ended: {reason}"):
        recall = locked_recall(session, recall_id, {
            "ended": "is already ended.",
            "completed": "is already completed (found valid and closed): it cannot be ended, and its holds stay."})
        now = utcnow()
        holds = list(session.scalars(select(BagHold).where(BagHold.recall_id == recall.id,
                                                           BagHold.lifted_at.is_(None))))
        for hold in holds:
            hold.lifted_at = now
            hold.lifted_by_id = actor.id
        recall.status = "ended"
        recall.ended_at = now
        recall.ended_by_id = actor.id
        recall.end_reason = reason
        _reopen_lookback(session, recall)
        sign(session, actor, password, recall, END_MEANING, required_role="qa", lock=False)
        lifted = len(holds)
    return lifted


def lots_left_recalled(session: Session, recall_id: int) -> list[str]:
    """The numbers of the lots this recall reaches that are recalled: ending a recall found invalid lifts its bag
    holds but never takes a lot out of "recalled" (a final state: core.states), so the end's message must say so, not
    let "holds lifted" read as "usable again"."""
    recall = get_recall(session, recall_id)
    target = target_of(recall)
    if target is None:
        return []
    return [lot.lot_number for lot in affected_lots(session, recall.scope, target) if lot.status == "recalled"]


def _reopen_lookback(session: Session, recall: Recall) -> None:
    """A donor recall closed the donor's lookbacks when it started (start_recall_in_use_case), and QA may close one
    opened since under it (close_lookback): the recall was to hold the lots and list the patients to tell. Ended as
    invalid, it does neither any more, while the news that opened the lookback (a late positive marker, QA's
    "ineligible") still stands: the newest lookback it closed is opened again, back on the QA dashboard and the
    recalls page with the donor's lots and patients, until a recall of the donor is started. Not when QA has signed
    the donor's approval again since that lookback opened (the news was weighed and cleared), nor when another
    lookback of the donor is open (it lists the same lots)."""
    if recall.scope != "donor":
        return
    # closed at or after the recall's start: while it is in force nothing else closes the donor's lookbacks (a
    # second recall of the donor is refused), so each was closed by it, at its start or under it since
    lookback = session.scalar(select(DonorLookback).where(
        DonorLookback.donor_id == recall.donor_id, DonorLookback.closed_at >= recall.started_at)
        .order_by(DonorLookback.id.desc()).limit(1))
    if lookback is None:
        return
    approved_again = session.scalar(select(EligibilityDecision.id).where(
        EligibilityDecision.donor_id == lookback.donor_id, EligibilityDecision.meaning == APPROVED,
        EligibilityDecision.superseded_at.is_(None), EligibilityDecision.judged_at > lookback.opened_at).limit(1))
    other_open = session.scalar(select(DonorLookback.id).where(
        DonorLookback.donor_id == lookback.donor_id, DonorLookback.closed_at.is_(None)).limit(1))
    if approved_again is not None or other_open is not None:
        return
    lookback.closed_at = None
    lookback.closed_by_id = None
    lookback.closure_note = None  # the audit trail keeps the recall's closing note


#: the shortest note that closes a lookback under a recall in force: a sentence saying why the recall covers it
MIN_LOOKBACK_NOTE = 20
#: the longest (the lookback's closure note keeps "Covered by recall R-<id> (...): " before it)
MAX_LOOKBACK_NOTE = 2000


def close_lookback(session: Session, actor: Any, lookback_id: int, *, note: str) -> DonorLookback:
    """QA closes a donor lookback opened while a recall of the donor is in force (a second late result, or QA's
    "ineligible", recorded after the recall started: the donor pages open one then). Before, nothing could close it:
    only the start of a donor recall closes a lookback, and a second recall of the donor is refused while the first
    is in force, so it stayed on the QA dashboard for good. The recall in force already holds every lot of the donor
    and lists the patients to tell (and covers what is made later); QA says so in the note, which is kept with the
    recall's number on the lookback and is the audit event's reason. Refused (409) when no recall of the donor is in
    force: the way out is then to start one, which closes the lookback. The recall's end (found invalid) opens the
    lookback again (_reopen_lookback)."""
    note = (note or "").strip()
    if not actor.has_role("qa"):
        raise PermissionDenied("Only QA closes a donor lookback.")
    if len(note) < MIN_LOOKBACK_NOTE:
        has = f" (this one has {len(note)})" if note else ""
        raise ValidationFailed(f"Write why the recall in force covers this lookback, at least {MIN_LOOKBACK_NOTE} "
                               f"characters{has} (e.g. 'Second marker positive; {_recall_covering(session, lookback_id)} "
                               "holds every lot of the donor and its patients are being told').", field="note")
    if len(note) > MAX_LOOKBACK_NOTE:
        raise ValidationFailed(f"The note has at most {MAX_LOOKBACK_NOTE} characters (this one has {len(note)}).",
                               field="note")
    found = session.get(DonorLookback, lookback_id)
    if found is None:
        raise NotFound(f"No donor lookback with id {lookback_id}.")
    with use_case(session, actor, f"lookback closed under the donor's recall: {note}"):
        # the donor first, as a recall's start and a new result take it; then the recall, as its end takes it: an
        # end committed first is seen below (refused), one waiting sees this closing and opens the lookback again
        donor = lock_donor(session, found.donor_id)
        lookback = session.get(DonorLookback, lookback_id, populate_existing=True)
        if lookback is None:  # gone between the two reads: said plainly, never a 500
            raise NotFound(f"No donor lookback with id {lookback_id}: it is no longer recorded. Nothing was recorded.")
        if lookback.closed_at is not None:
            raise Conflict(f"This lookback of donor {donor.code} is closed already ({lookback.closure_note}). "
                           "Nothing was recorded.")
        in_force = recall_in_force_of(session, "donor", donor.id)
        recall = (session.get(Recall, in_force.id, with_for_update=True, populate_existing=True)
                  if in_force is not None else None)
        if recall is None or recall.status not in IN_FORCE:
            raise Conflict(f"No recall of donor {donor.code} is in force: start the donor's recall (Start the "
                           "donor's recall, on this row), which closes the lookback. Nothing was recorded.")
        lookback.closed_at = utcnow()
        lookback.closed_by_id = actor.id
        lookback.closure_note = f"Covered by recall R-{recall.id} ({recall.status_words.lower()}): {note}"
    return lookback


def _recall_covering(session: Session, lookback_id: int) -> str:
    """The example's words for the recall in force of the lookback's donor: "recall R-<id>", the one the row names
    (an example naming another recall's number read as an instruction), or "the donor's recall" when none is found."""
    lookback = session.get(DonorLookback, lookback_id) if 0 < lookback_id <= MAX_ROW_ID else None
    in_force = recall_in_force_of(session, "donor", lookback.donor_id) if lookback is not None else None
    return f"recall R-{in_force.id}" if in_force is not None else "the donor's recall"


#: the longest closing note kept (a page of text; the report prints it whole)
MAX_NOTE = 4000
#: the shortest: a sentence at least, saying how effectiveness was checked and the bags reconciled
MIN_NOTE = 20
#: DINs named in a refusal; the rest are counted (the recall's page lists them all)
NAMED_IN_REFUSAL = 20
#: where a bag not yet in a final state is, in the words of the refusal to complete
WHEREABOUTS = {"stored": "in stock", "on_hold": "on hold in stock",
               "allocated": "in stock, reserved for a patient by a prescription: the prescriber cancels the course, "
                            "then QA discards it",
               "dispatched": "on its way to the ward", "received": "on the ward", "thawed": "thawed on the ward",
               "returned": "returned from the ward, waiting for QA's assessment"}


def outstanding_bags(session: Session, recall: Recall, lots: list[Lot]) -> list[Bag]:
    """The bags the recall reaches that are not yet in a final state (infused or discarded): every bag it holds,
    and any bag of its affected `lots` it does not hold (made after the recall started and missed: the report says
    'assess'). A recall is completed only when this is empty. DIN order."""
    held = select(BagHold.bag_id).where(BagHold.recall_id == recall.id, BagHold.lifted_at.is_(None))
    lot_ids = [lot.id for lot in lots]
    return list(session.scalars(select(Bag).where(
        Bag.id.in_(held) | Bag.lot_id.in_(lot_ids), Bag.status.not_in(NOT_HELD_BAG_STATES)).order_by(Bag.din)))


def outstanding_words(bags: list[Bag]) -> str:
    """'2 bags are still to be dealt with: bag ... (on the ward), ...' for the refusal and the recall's page."""
    named = "; ".join(f"bag {din_shown(bag)} ({WHEREABOUTS.get(bag.status, bag.status.replace('_', ' '))})"
                      for bag in bags[:NAMED_IN_REFUSAL])
    more = f"; and {len(bags) - NAMED_IN_REFUSAL} more (listed on the recall's page)" if len(bags) > NAMED_IN_REFUSAL else ""
    count = "1 bag is" if len(bags) == 1 else f"{len(bags)} bags are"
    return f"{count} still to be dealt with: {named}{more}"


def complete_recall(session: Session, actor: Any, recall_id: int, *, note: str, password: str) -> Recall:
    """Close a valid recall as completed (QA, signed), once every bag it reaches is infused or destroyed. The holds
    stay (the bags stay unusable), the lots stay recalled, and the recall keeps barring its origin."""
    note = (note or "").strip()
    if not actor.has_role("qa"):
        raise PermissionDenied("Only QA may complete a recall.")
    if len(note) < MIN_NOTE:  # one word ("short", "done") is no record of an effectiveness check
        has = f" (this one has {len(note)})" if note else ""
        raise ValidationFailed(f"Write the closing note, at least {MIN_NOTE} characters{has}: how the recall's "
                               "effectiveness was checked, and the reconciliation of the bags delivered, recovered "
                               "and destroyed. It is signed and goes on the report.", field="note")
    if len(note) > MAX_NOTE:
        raise ValidationFailed(f"The closing note has at most {MAX_NOTE} characters (this one has {len(note)}).",
                               field="note")
    get_recall(session, recall_id)
    with use_case(session, actor, f"recall completed: {note}"):
        recall = locked_recall(session, recall_id, {
            "completed": "is already completed.",
            "ended": "is already ended (found invalid, its holds lifted): it cannot be completed."})
        # the affected lots locked in id order (as a recall takes them): bags frozen into one meanwhile are either
        # committed and counted below, or wait and are held by this recall, completed (queries.hold_for_recalls)
        lots = affected_lots(session, recall.scope, target_of(recall) or 0)
        for lot in lots:
            lock_lot(session, lot.id)
        left = outstanding_bags(session, recall, lots)
        # every patient the recall reached has their clinician recorded as told (DOMAIN.md sections 5 and 8; EU GMP
        # Part IV 11): read under the recall's lock, which a notice takes too (recall.notices)
        from mscbatch.recall.report import not_notified_words, patients_to_notify  # the report reads services

        untold = not_yet_told(patients_to_notify(session, recall))
        if left or untold:
            said = [f"{outstanding_words(left)}. Every bag it reaches must be discarded (or was infused) first: "
                    "discard the bags in stock, have the ward return or discard theirs, assess the returned ones"
                    ] if left else []
            if untold:
                said.append(f"{not_notified_words(untold)}. Record who told each clinician, how and when (Clinician "
                            "notified, on the recall's page), or the clinician confirms it on their home page")
            raise Conflict(f"Recall R-{recall.id} cannot be completed yet: {'; '.join(said)}. Nothing was signed.")
        recall.status = "completed"
        recall.ended_at = utcnow()
        recall.ended_by_id = actor.id
        recall.end_reason = note
        sign(session, actor, password, recall, COMPLETE_MEANING, required_role="qa", lock=False)
    return recall


#: the held bags QA discards from the recall's page: in stock in the unit. A bag reserved for a patient is let go
#: by its prescriber first; one back from the ward goes through QA's assessment of the return (Returned bags); one on
#: the ward is discarded there (handover.discard refuses or allows each the same way from any page)
DISCARDABLE_HERE = ("stored", "on_hold")
#: a held bag out of the unit, on its way to or on the ward: the recall's page, which records the discard in the
#: cell therapy unit, leaves it to the ward page (or the ward's return, then QA's assessment of it)
ON_THE_WARD_HERE = ("dispatched", "received", "thawed")
#: the longest reason kept for a discard (the custody record keeps 2000 characters, with "Recall R-<id>: " before it)
MAX_DISCARD_REASON = 1000


def discard_held_bag(session: Session, actor: Any, recall_id: int, bag_id: int, *, reason: str) -> Bag:
    """QA destroys a bag this recall holds, from the recall's page: the ordinary discard (handover.discard: the bag
    state machine, the custody event, the audit), its reason prefixed with the recall so the bag's record says why.
    The hold stays (the record of the recall). Refused, nothing written, for a bag the recall does not hold (404)
    or no longer holds (ended: 409), and for a bag reserved for a patient, whom the refusal names."""
    reason = (reason or "").strip()
    if not actor.has_role("qa"):
        raise PermissionDenied("Only QA discards a recalled bag.")
    recall = get_recall(session, recall_id)
    hold = session.scalar(select(BagHold).where(BagHold.recall_id == recall.id, BagHold.bag_id == bag_id))
    bag = session.get(Bag, bag_id) if hold is not None else None
    if hold is None or bag is None:
        raise NotFound(f"Recall R-{recall.id} holds no bag with id {bag_id}: discard it from the ward page "
                       "(QA, Discard) if it must be destroyed for another reason.")
    if hold.lifted_at is not None:
        raise Conflict(f"Recall R-{recall.id} no longer holds bag {din_shown(bag)}: its hold was lifted when the recall was "
                       "ended (found invalid). Nothing was recorded.")
    if not reason:
        raise ValidationFailed(f"Say why bag {din_shown(bag)} is discarded (e.g. 'Recalled: destroyed'): it goes into the "
                               "bag's custody record.", field="reason")
    if len(reason) > MAX_DISCARD_REASON:
        raise ValidationFailed(f"The reason has at most {MAX_DISCARD_REASON} characters (this one has "
                               f"{len(reason)}).", field="reason")
    if bag.status == "allocated":  # handover.discard refuses it too, without the patient's name (custody.ward_words)
        reserved = allocation_of_bag(session, bag.id)
        whom = (f"patient {reserved.patient.code} by signed prescription #{reserved.prescription.id}"
                if reserved else "a patient by a signed prescription")
        raise Conflict(f"Bag {din_shown(bag)} cannot be discarded yet: it is reserved for {whom}. The prescriber first "
                       "cancels (or stops) that course on the patient's page, which puts the bag back in stock; then "
                       "QA discards it here. Nothing was recorded.")
    if bag.status in ON_THE_WARD_HERE:  # the custody record would say "Cell therapy unit" for a bag on the ward
        raise Conflict(f"Bag {din_shown(bag)} is not in the unit: it is {WHEREABOUTS[bag.status]}. It is discarded where it "
                       "is, from the ward page (Discard, with its reason), or the ward returns it to the unit. "
                       "Nothing was recorded.")
    # the state machine, the bag's lock and the audit are handover.discard's: one use case, one transaction (a hold
    # lifted meanwhile by the recall's end leaves an ordinary QA discard of a bag in stock, which QA may make anyway)
    handover.discard(session, actor, bag.id, reason=f"Recall R-{recall.id}: {reason}", location="Cell therapy unit")
    return bag


def list_recalls(session: Session) -> list[Recall]:
    return list(session.scalars(select(Recall).order_by(Recall.id.desc()).limit(200)))


def holds_of(session: Session, recall_id: int) -> list[tuple[BagHold, Bag]]:
    return [(hold, bag) for hold, bag in session.execute(
        select(BagHold, Bag).join(Bag, Bag.id == BagHold.bag_id).where(BagHold.recall_id == recall_id)
        .order_by(Bag.lot_id, Bag.bag_number))]


def resolve_target(session: Session, scope: str, text: str) -> int:
    """The id of a recall origin typed by a person: a donor code, a lot number, or a reagent lot number
    (or "#<id>" for any of them)."""
    text = (text or "").strip()
    if not text:
        raise ValidationFailed(TARGET_MISSING, field="target")
    if text.startswith("#") and text[1:].isascii() and text[1:].isdigit():
        model = {"donor": Donor, "lot": Lot, "reagent_lot": ReagentLot}.get(scope)
        # beyond the database's integers (a 500 before), 0 or no such row: refused next to the field, as a number
        # typed wrong (before, "#0" said "Choose the donor" and an unknown id a 404 above the form)
        row_id = whole_number(text[1:])
        if row_id is None or (model is not None and session.get(model, row_id) is None):
            raise ValidationFailed(f"No {RECALL_SCOPES[scope].lower() if scope in RECALL_SCOPES else 'record'} "
                                   f"{typed_shown(text)}.", field="target")
        return row_id
    if scope == "donor":
        found = session.scalars(select(Donor.id).where(Donor.code == text.upper())).all()
    elif scope == "lot":
        found = session.scalars(select(Lot.id).where(Lot.lot_number == text.upper())).all()
    elif scope == "reagent_lot":
        found = _same_supplier_lot_or_all(session, session.scalars(
            select(ReagentLot.id).where(ReagentLot.lot_number == text).order_by(ReagentLot.id)).all())
        if not found:  # the supplier's notice spells it its own way: "fbs 0099", "FBS/0099" and "fbs0099" are
            # FBS-0099 (lots.queries.recall_key); every row so found is covered, several supplier lots are chosen
            found = _same_supplier_lot_or_all(session, session.scalars(
                select(ReagentLot.id).where(recall_key(ReagentLot.lot_number) == recall_key(literal(text)))
                .order_by(ReagentLot.id)).all())
    else:
        raise ValidationFailed(f"A recall starts from a donor, a lot or a reagent lot, not {typed_shown(scope)!r}.",
                               field="scope")
    if not found:
        raise ValidationFailed(f"No {RECALL_SCOPES[scope].lower()} {typed_shown(text)!r}.{_spelling_hint(scope, text)}",
                               field="target")
    if len(found) > 1:  # several suppliers' lots (one supplier's rows are one lot: _same_supplier_lot_or_all)
        rows = session.scalars(select(ReagentLot).where(ReagentLot.id.in_(found)).order_by(ReagentLot.id))
        raise ValidationFailed(f"Several reagent lots are numbered {typed_shown(text)!r} ({NOT_COUNTED_WORDS}): "
                               + "; ".join(f"#{row.id} {row.name}, {row.supplier} lot {row.lot_number}" for row in rows)
                               + ". Give the '#<id>' of the one the notice is about.", field="target")
    return int(found[0])


def _spelling_hint(scope: str, text: str) -> str:
    """How the unit writes what was not found, when the typed text is not written that way (a digit dropped:
    "MSC-2026-003" for MSC-2026-0003), so that a mistyped number is seen as mistyped, not as unknown."""
    site = site_config()
    if scope == "lot" and not site.is_valid_lot_number(text.upper()):
        return f" Lot numbers are written like {site.format_lot_number(site_today().year, 3)}."
    if scope == "reagent_lot":  # looked up by the supplier's lot number (resolve_target), not the unit's lot number
        words = (" A reagent lot is found by the supplier's lot number, as registered on the Reagents page (e.g. "
                 f"MA-77; {NOT_COUNTED_WORDS}), or by '#<id>' from that page.")
        if site.is_valid_lot_number(text.upper()):
            words += (f" {typed_shown(text)} is written like a cell lot number: to recall that lot, choose "
                      "'Lot' under Recall from.")
        return words
    return ""


def _same_supplier_lot_or_all(session: Session, ids: Sequence[int]) -> list[int]:
    """[the first id] when these reagent_lot rows are one supplier lot (a recall of one row covers them all:
    lots.queries.same_supplier_lot), else the ids as they are (several suppliers' lots: the person chooses)."""
    if len(ids) > 1 and set(ids) <= set(session.scalars(same_supplier_lot([ids[0]]))):
        return [ids[0]]
    return list(ids)
