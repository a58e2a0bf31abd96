"""What became of each bag of a prescription: given (the volume infused and the cells it gave), still to give,
or not given and what happened to it (back in stock, returned to the unit for QA, discarded, released on the ward
by a withdrawal). The prescription page, the dose sheet and the patient page say it from here, so that a stopped
course never reads as if all its bags were given."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.core.culture import format_cells
from mscbatch.core.dosing import cells_given
from mscbatch.core.identifiers import din_shown
from mscbatch.core.numbers import plain
from mscbatch.lots.models import Bag, Lot
from mscbatch.patients.models import Allocation, Prescription
from mscbatch.site import local_and_utc

#: where a bag let go by a withdrawal was (prescriptions.let_go releases it there): what the ward must do with it
_ON_THE_WARD = "released while on the ward: the ward returns it to the unit (a thawed bag is discarded), never gives it"
#: what a bag let go without restocking became, by its state at that moment (prescriptions.GONE_FROM_STOCK & co.)
LET_GO_WORDS = {
    "returned": "returned from the ward: NOT back in stock, QA assesses it before any restocking",
    "discarded": "discarded",
    "on_hold": "on hold: QA decides what becomes of it",
    "dispatched": _ON_THE_WARD, "received": _ON_THE_WARD, "thawed": _ON_THE_WARD,
}
RESTOCKED = "back in stock (it was still in the unit)"


@dataclass(frozen=True)
class BagOutcome:
    """`state`: "given" (its infusion started: `infused_ml` once ended, None while it runs), "to_give", or
    "not_given" (`fate` says what happened to it). `cells`: what it gave (given), else 0."""

    state: str
    cells: Decimal = Decimal(0)
    infused_ml: Decimal | None = None
    started_at: datetime | None = None
    fate: str = ""

    @property
    def words(self) -> str:
        if self.state == "given":
            if self.infused_ml is None:
                started = local_and_utc(self.started_at) if self.started_at else "?"
                return f"GIVEN: infusion running (started {started})"
            return f"GIVEN: {plain(self.infused_ml)} mL = {format_cells(self.cells)} cells"
        if self.state == "not_given":
            return f"NOT GIVEN: {self.fate}"
        return ""


def course_completed(outcomes: Iterable[BagOutcome]) -> bool:
    """The course is completed (no stored status): it has bags, and every one of them was given AND its infusion
    ended. A bag whose infusion is still running is not yet given in full: the course is not completed until its end
    is recorded. The one judgement of the prescription page, the dose sheet, the flash of a close and prescribe."""
    outcomes = list(outcomes)
    return bool(outcomes) and all(o.state == "given" and o.infused_ml is not None for o in outcomes)


def _fate(session: Session, prescription: Prescription, row: Allocation, bag: Bag) -> str:
    """What happened to a bag the prescription let go (or lost while it held it), from the bag's custody log."""
    from mscbatch.custody.models import CustodyEvent  # custody reads patients: imported when called

    events = list(session.scalars(select(CustodyEvent).where(CustodyEvent.bag_id == bag.id)
                                  .order_by(CustodyEvent.id)))
    if row.active:  # still held: lost on the ward while the prescription stands
        status = bag.status
    else:
        restocked = next((e for e in events if e.kind == "stored" and e.details.get("cancelled")
                          and e.details.get("prescription_id") == prescription.id), None)
        if restocked is not None:
            from mscbatch.recall.queries import bag_hold  # recall reads patients: imported when called

            hold = bag_hold(session, bag.id)  # back in the unit, but a recall holds it: not stock for anyone
            return f"back in the unit, ON HOLD ({hold}): not for any patient" if hold else RESTOCKED
        before = [e for e in events if row.released_at is None or e.occurred_at <= row.released_at]
        status = before[-1].to_status if before and before[-1].to_status else bag.status
    words = LET_GO_WORDS.get(status or "", f"released from the prescription ({(status or '').replace('_', ' ')})")
    if status == "discarded":
        discard = next((e for e in reversed(events) if e.kind == "discarded"), None)
        if discard is not None and discard.reason:
            words += f" ({discard.reason})"
    return words


def bag_outcomes(session: Session, prescription: Prescription, rows: list[Allocation]) -> dict[int, BagOutcome]:
    """allocation id -> what became of its bag under this prescription. A bag not given whose lot was recalled,
    rejected or expired is NOT GIVEN, as the bedside check counts it lost (custody.queries.ENDED_LOTS). What
    physically happened to the bag (infused, discarded, returned) is said first, the lot's state after it."""
    from mscbatch.custody.models import Infusion  # custody reads patients: imported when called
    from mscbatch.custody.queries import ENDED_LOTS

    def lot_ended(bag: Bag) -> str | None:
        lot = session.get(Lot, bag.lot_id)
        return lot.status.upper() if lot is not None and lot.status in ENDED_LOTS else None

    infusions = {i.bag_id: i for i in session.scalars(select(Infusion).where(
        Infusion.bag_id.in_([r.bag_id for r in rows]), Infusion.patient_id == prescription.patient_id))} if rows else {}
    out: dict[int, BagOutcome] = {}
    for row in rows:
        bag = session.get(Bag, row.bag_id)
        assert bag is not None
        infusion = infusions.get(row.bag_id)
        if row.active and infusion is not None:  # an infused bag keeps its allocation (prescriptions.let_go)
            infused = None if infusion.volume_infused_ml is None else Decimal(infusion.volume_infused_ml)
            cells = cells_given(Decimal(row.cells), Decimal(row.volume_ml), infused)
            out[row.id] = BagOutcome("given", cells, infused, infusion.started_at)
        elif row.active and bag.status in ("discarded", "returned"):  # what happened to the bag comes first: a bag
            # discarded at thaw and its lot recalled later was discarded, not "not given because recalled"
            fate = _fate(session, prescription, row, bag)
            ended = lot_ended(bag)
            out[row.id] = BagOutcome("not_given", fate=fate + (f"; its lot is also {ended}" if ended else ""))
        elif row.active and (ended := lot_ended(bag)) is not None:  # still held, but such a lot is never given
            out[row.id] = BagOutcome("not_given", fate=f"its lot was {ended}: it will never be given, do not give it")
        elif row.active:
            out[row.id] = BagOutcome("to_give")
        else:
            out[row.id] = BagOutcome("not_given", fate=_fate(session, prescription, row, bag))
    return out


@dataclass(frozen=True)
class CourseSummary:
    """A prescription's course for the patient page's list: the cells its bags gave (a running bag counted as
    prescribed until its end is recorded: `running` bags), and whether it is completed (course_completed), so that
    the list says the same state word as the prescription page."""

    cells: Decimal
    running: int
    completed: bool
    status: str  # the stored status

    @property
    def state_words(self) -> str:
        """As the prescription page says it (dose_sheet.DoseSheet.completed)."""
        if self.completed and self.status in ("active", "stopped"):
            return COMPLETED_WORDS
        return self.status

    @property
    def closed_words(self) -> str:
        """" (closed)" after a completed course the clinician closed (its status "stopped"), else "": the patient
        page's list and the patient's trace PDF."""
        return " (closed)" if self.state_words == COMPLETED_WORDS and self.status == "stopped" else ""


#: a course whose every bag was given and ended, on the prescription page, the dose sheet and the patient page
COMPLETED_WORDS = "COMPLETED: every bag given"


def course_summaries(session: Session, prescriptions: list[Prescription]) -> dict[int, CourseSummary]:
    """prescription id -> its CourseSummary (the patient page's list)."""
    if not prescriptions:
        return {}
    rows: dict[int, list[Allocation]] = {}
    for row in session.scalars(select(Allocation).where(
            Allocation.prescription_id.in_([p.id for p in prescriptions])).order_by(Allocation.id)):
        rows.setdefault(row.prescription_id, []).append(row)
    out = {}
    for p in prescriptions:
        outcomes = list(bag_outcomes(session, p, rows.get(p.id, [])).values())
        given = [o for o in outcomes if o.state == "given"]
        out[p.id] = CourseSummary(sum((o.cells for o in given), Decimal(0)),
                                  sum(1 for o in given if o.infused_ml is None), course_completed(outcomes),
                                  str(p.status))
    return out


def stop_words(session: Session, prescription: Prescription) -> dict[str, Any]:
    """Who stopped or cancelled the prescription, when and why (None-free for the page and the sheet)."""
    from mscbatch.auth.models import User

    who = session.get(User, prescription.cancelled_by_id) if prescription.cancelled_by_id else None
    return {"by": who.full_name if who is not None else "?", "at": prescription.cancelled_at,
            "reason": prescription.cancel_reason or ""}


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one}" if n == 1 else f"{n} {many}"


def let_go_words(session: Session, prescription: Prescription) -> str:
    """What a stop, a cancel or a withdrawal did to each bag of the prescription, in words for the flash message: the
    bags given stay on record, and each bag not given is named with what became of it (back in stock, returned for
    QA, discarded, to be returned from the ward)."""
    rows = [r for r in session.scalars(select(Allocation).where(Allocation.prescription_id == prescription.id)
                                       .order_by(Allocation.id))]
    outcomes = bag_outcomes(session, prescription, rows)
    dins = {r.id: din_shown(bag) for r in rows if (bag := session.get(Bag, r.bag_id)) is not None}
    given = [dins[r.id] for r in rows if outcomes[r.id].state == "given"]
    running = [dins[r.id] for r in rows if outcomes[r.id].state == "given" and outcomes[r.id].infused_ml is None]
    others = [f"{dins[r.id]} {outcomes[r.id].fate}" for r in rows if outcomes[r.id].state != "given"]
    if prescription.status == "cancelled":
        words = "Prescription cancelled before any bag was given."
    elif course_completed(outcomes.values()):  # every bag given, every infusion ended: completed, not stopped
        words = (f"Completed course closed: every bag of it was given ({', '.join(given)}); "
                 f"{'it stays' if len(given) == 1 else 'they stay'} on the patient's record.")
    else:
        words = (f"Course stopped: the {_count(len(given), 'bag', 'bags')} already given ({', '.join(given)}) "
                 f"{'stays' if len(given) == 1 else 'stay'} on the patient's record.")
    if running:  # not completed while a bag still runs: its end is still to record
        words += (f" Infusion still running: {', '.join(running)}. Record its end (volume infused) on its infusion "
                  "page when it stops.")
    if others:
        words += (f" Not given ({_count(len(others), 'bag', 'bags')}): " + "; ".join(others) + ". The bedside check "
                  f"now answers STOP for {'it' if len(others) == 1 else 'them'}.")
    return words
