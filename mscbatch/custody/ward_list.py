"""The ward page's list of the bags out of the unit's stores and not yet given: sent to the ward, received there, or
thawed, each with its patient and, once thawed, the clock time by which it must be given (the product's post-thaw
limit). The thaw message said that time once; a nurse coming back to the page, or the next shift, had nothing.

And the infusions running now (running_infusions): a bag being infused is "infused", no longer out on the ward, and
dropped off the list above, so that a running infusion, above all one whose bag was recalled since it started, had
no way back from the ward page to its infusion page and its STOP THE INFUSION NOW.

A bag on the list that must not be given (its lot recalled since it left the unit, the bag held, the patient
withdrawn, its prescription no longer fitting the weight...) says DO NOT GIVE with the bedside check's own
reasons in place of its "Give by" countdown: a list telling the ward when to give a recalled bag was the session
44 review's finding (the bedside check itself always stopped it)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from mscbatch.custody.checks import (
    BAG_UNFIT,
    Finding,
    evaluate,
    last_event_at,
    received_at,
    stop_running,
    thawed_at,
)
from mscbatch.custody.models import SERIOUS_GRADE, CustodyEvent, Infusion, InfusionReaction
from mscbatch.database import utcnow
from mscbatch.lots.models import Bag, Lot
from mscbatch.lots.queries import product_catalogue, product_of
from mscbatch.patients.models import Patient
from mscbatch.patients.queries import allocated_patient_id

#: a bag's states between the unit's dispatch and its infusion (or its return or discard)
OUT_ON_THE_WARD = ("dispatched", "received", "thawed")
#: the order the ward list shows them in, and says their counts in: the thawed (time-critical) first
LIST_ORDER = ("thawed", "received", "dispatched")
#: the list is a ward's handful; a bound keeps a page a page should the records say otherwise
MOST = 200
#: bedside findings the list does not call DO NOT GIVE: a bag not yet received is on its way (the list says so), and
#: a bag past its post-thaw limit is said PAST in its Give by already
NOT_A_STOP_HERE = ("not_on_ward", "post_thaw")
#: findings about a scanned wristband, which a bag with no patient to check it against is not judged on
WRISTBAND_FINDINGS = ("no_wristband", "exceptional_other")


@dataclass(frozen=True)
class BagOnWard:
    bag: Bag
    patient_code: str | None  # the patient its signed prescription reserves it for, if any
    since: datetime | None  # when it was dispatched, received or thawed (its present state's start)
    location: str  # where it was received (or sent to), as recorded
    give_by: datetime | None  # thawed: its thaw + the product's post-thaw limit, or its expiry when that comes first
    past_limit: bool
    #: why the bag must not be given, in the bedside check's words, most serious first (empty when nothing stops it)
    stop: tuple[str, ...] = ()
    #: the first of those is about the bag itself (checks.BAG_UNFIT: never to be given to anyone), not about its
    #: patient, course or prescriber: past its post-thaw limit, the list's PAST (discard it) comes before any other
    stop_unfit: bool = False

    @property
    def expires_first(self) -> bool:
        """Its give-by is the bag's expiry, which comes before its post-thaw limit."""
        return self.give_by is not None and self.give_by == self.bag.expires_at


def bags_on_ward(session: Session, now: datetime | None = None, label_key: str = "") -> list[BagOnWard]:
    """The thawed bags first, the soonest to give first; then those received, then those on their way: the first
    MOST of them in that order, never MOST taken by id and then sorted (the soonest to give could be left off).
    Each with what would stop it at the bedside (do_not_give). The ward page reads ward_listing, which says how many
    there are in all and how to see the rest."""
    return ward_listing(session, now, label_key).bags


@dataclass(frozen=True)
class WardListing:
    """One page of the bags out of the unit, and how many there are: a list cut at MOST that did not say so let 259
    bags on their way go unlisted (session 45 review). `counts`: every bag out of the unit now, per state (all of
    them, whatever the page shows); `state`: the one state this page lists, or "" for all of them."""
    bags: list[BagOnWard]
    counts: dict[str, int]
    state: str = ""
    page: int = 1
    per_page: int = MOST

    @property
    def total(self) -> int:
        """The bags this view lists across its pages (its state's, or every bag out of the unit)."""
        return self.counts.get(self.state, 0) if self.state else sum(self.counts.values())

    @property
    def everything(self) -> int:
        return sum(self.counts.values())

    @property
    def first(self) -> int:
        """The position of this page's first bag in the view (1-based), 0 when the page is empty."""
        return (self.page - 1) * self.per_page + 1 if self.bags else 0

    @property
    def last(self) -> int:
        return self.first + len(self.bags) - 1 if self.bags else 0

    @property
    def complete(self) -> bool:
        """This page shows every bag out of the unit."""
        return not self.state and self.page == 1 and len(self.bags) == self.everything

    @property
    def has_next(self) -> bool:
        return self.last < self.total

    @property
    def left_off(self) -> dict[str, int]:
        """Per state, the bags out of the unit this page does not show."""
        shown: dict[str, int] = {}
        for listed in self.bags:
            shown[listed.bag.status] = shown.get(listed.bag.status, 0) + 1
        return {state: self.counts.get(state, 0) - shown.get(state, 0) for state in LIST_ORDER
                if self.counts.get(state, 0) - shown.get(state, 0) > 0}


def out_counts(session: Session) -> dict[str, int]:
    """How many bags are out of the unit now in each state (OUT_ON_THE_WARD, every one present, 0 for none)."""
    counted = dict(session.execute(select(Bag.status, func.count(Bag.id)).where(Bag.status.in_(OUT_ON_THE_WARD))
                                   .group_by(Bag.status)).all())
    return {state: int(counted.get(state, 0)) for state in OUT_ON_THE_WARD}


def ward_listing(session: Session, now: datetime | None = None, label_key: str = "", *, state: str = "",
                 page: int = 1) -> WardListing:
    """Page `page` (MOST a page) of the bags out of the unit in the list's order (bags_on_ward): the thawed first,
    the soonest to give first, then those received, then those on their way; `state`: only the bags in that state
    (one of OUT_ON_THE_WARD), for the ward to see those a full first page leaves off. The thawed are never left off
    for others: they come first, and a page shows others only when every thawed bag before them is on it. What would
    stop a bag at the bedside is read for the bags of the page only."""
    now = now or utcnow()
    most, page = MOST, max(1, page)
    wanted = most * page  # each state's first `wanted` hold the page's bags: the list takes them in order
    states = (state,) if state else OUT_ON_THE_WARD
    dispatched, received, thawed = last_event_at(Bag.id, "dispatched"), received_at(Bag.id), thawed_at(Bag.id)
    where = (select(CustodyEvent.location).where(CustodyEvent.bag_id == Bag.id,
                                                 CustodyEvent.kind.in_(("dispatched", "received")))
             .order_by(CustodyEvent.id.desc()).limit(1).scalar_subquery())
    listing = (select(Bag, Lot, Patient, dispatched, received, thawed, where)
               .join(Lot, Lot.id == Bag.lot_id).outerjoin(Patient, Patient.id == allocated_patient_id(Bag.id)))

    def first(status: str, since: Any, unknown: datetime, *also: Any) -> list[Any]:
        """The first `wanted` bags in `status` by `since`, read as `unknown` when there is none: the key the list
        is sorted by below, so these are the ones it would keep."""
        if status not in states:
            return []
        return list(session.execute(listing.where(Bag.status == status, *also).order_by(
            func.coalesce(since, literal(unknown, CustodyEvent.occurred_at.type)), Bag.id).limit(wanted)).all())

    # give-by is thaw + the product's limit, a sum SQLite and PostgreSQL write differently: among products of one
    # limit, the soonest thawed is the soonest to give, so each limit's first `wanted` by thaw hold the first by
    # give-by (a thawed bag without its thaw time sorts as now, as below)
    catalogue = product_catalogue()
    limits: dict[timedelta, list[str]] = {}
    for product in catalogue.products:
        limits.setdefault(product.post_thaw_limit, []).append(product.id)
    rows = [row for limit, ids in limits.items() for row in first("thawed", thawed, now - limit, Lot.product_id.in_(ids))]
    rows += first("thawed", thawed, now, Lot.product_id.not_in(catalogue.ids))  # product_of says it is unknown
    rows += first("received", received, now) + first("dispatched", dispatched, now)
    keyed = []
    for bag, lot, patient, sent, came, thaw, location in rows:
        # its post-thaw deadline, or its own expiry when that comes first (checks.BedsideResult.give_before)
        give_by = min(thaw + product_of(lot).post_thaw_limit, bag.expires_at) if bag.status == "thawed" and thaw \
            else None
        since = {"dispatched": sent, "received": came, "thawed": thaw}[bag.status]
        keyed.append((bag, patient, since, location, give_by))
    order = {state: n for n, state in enumerate(LIST_ORDER)}
    keyed.sort(key=lambda k: (order[k[0].status], k[4] or k[2] or now, k[0].id))
    listed = []
    for bag, patient, since, location, give_by in keyed[(page - 1) * most:page * most]:
        stop = do_not_give_findings(session, bag, patient, label_key, now)
        listed.append(BagOnWard(bag, patient.code if patient else None, since, location or "", give_by,
                                give_by is not None and now > give_by, tuple(finding.message for finding in stop),
                                bool(stop) and stop[0].code in BAG_UNFIT))
    return WardListing(listed, out_counts(session), state, page, most)


def do_not_give(session: Session, bag: Bag, patient: Patient | None, label_key: str,
                now: datetime) -> tuple[str, ...]:
    """What the bedside check would STOP this bag for, for its patient, in its words (a ward's handful: one check's
    read each), in the check's order (checks._FIRST: what makes the bag unusable for anyone first). A bag no
    prescription reserves now (never prescribed, or its course stopped since it left the unit) is checked as a bag
    alone: "not prescribed for any patient now", its hold or its lot's recall."""
    return tuple(finding.message for finding in do_not_give_findings(session, bag, patient, label_key, now))


def do_not_give_findings(session: Session, bag: Bag, patient: Patient | None, label_key: str,
                         now: datetime) -> list[Finding]:
    """do_not_give's findings, with their codes (BagOnWard.stop_unfit)."""
    verdict = evaluate(session, patient.wristband_id if patient else "", bag.din + bag.check_character, label_key, now)
    ignored = NOT_A_STOP_HERE + (() if patient else WRISTBAND_FINDINGS)
    return [finding for finding in verdict.failures if finding.code not in ignored]


@dataclass(frozen=True)
class RunningInfusion:
    infusion: Infusion
    bag: Bag
    patient_code: str
    stop: list[str]  # custody.checks.stop_running: why to stop it now (the infusion page's words), empty when none
    #: the highest grade of its reactions when it is SERIOUS_GRADE or more (CTCAE: an infusion reaction of grade 3 or
    #: higher means interrupting the infusion), else None
    reaction_grade: int | None = None

    @property
    def alarm(self) -> bool:
        """Whether the ward must stop it now: the system's STOP, or a serious reaction recorded while it runs."""
        return bool(self.stop) or self.reaction_grade is not None


def serious_reaction_grades(session: Session, infusion_ids: list[int]) -> dict[int, int]:
    """For each of these infusions with a reaction of SERIOUS_GRADE or higher, its highest grade: one statement."""
    if not infusion_ids:
        return {}
    rows = session.execute(select(InfusionReaction.infusion_id, func.max(InfusionReaction.grade))
                           .where(InfusionReaction.infusion_id.in_(infusion_ids),
                                  InfusionReaction.grade >= SERIOUS_GRADE)
                           .group_by(InfusionReaction.infusion_id)).all()
    return {infusion_id: int(grade) for infusion_id, grade in rows}


def running_infusions(session: Session, label_key: str, *, bag_id: int | None = None) -> list[RunningInfusion]:
    """Every infusion not ended (the MOST started last), those to STOP NOW first (the system's STOP, or a reaction of
    grade 3 or higher recorded while it runs), then the latest started. Whether to
    stop one is the infusion page's own rule (custody.checks.stop_running), read for each: a ward's handful. The
    newest are kept when there are more: an infusion nobody ended days ago must not push tonight's STOP off the list.
    `bag_id`: only the infusion of that bag (one at most: UNIQUE infusion.bag_id), as running_infusion_of reads it.
    The ward page's list and its refresh (bedside_views.ward_running) read it here, and the check page below."""
    query = (select(Infusion, Bag, Patient).join(Bag, Bag.id == Infusion.bag_id)
             .join(Patient, Patient.id == Infusion.patient_id).where(Infusion.ended_at.is_(None)))
    if bag_id is not None:
        query = query.where(Infusion.bag_id == bag_id)
    rows = session.execute(query.order_by(Infusion.started_at.desc(), Infusion.id.desc()).limit(MOST)).all()
    grades = serious_reaction_grades(session, [infusion.id for infusion, _bag, _patient in rows])
    running = [RunningInfusion(infusion, bag, patient.code, stop_running(session, infusion, bag, patient, label_key),
                               grades.get(infusion.id))
               for infusion, bag, patient in rows]
    return sorted(running, key=lambda r: not r.alarm)  # stable: the latest started first within each


def running_infusion_of(session: Session, bag: Bag | None, label_key: str) -> RunningInfusion | None:
    """The infusion of this bag still running, if any, and whether to stop it now (the infusion page's rule): a check
    page opened again once its bag runs, or since recalled, leads with that, not with "never start a bag twice"."""
    if bag is None or bag.status != "infused":  # a bag being infused is "infused": no read for the others
        return None
    found = running_infusions(session, label_key, bag_id=bag.id)
    return found[0] if found else None


@dataclass(frozen=True)
class StartedRunning:
    infusion: Infusion
    bag: Bag
    patient_code: str


def running_started_by(session: Session, user_id: int) -> list[StartedRunning]:
    """The infusions this user started that are still running (not ended), the earliest started first: the sign-out
    reminder (auth.logout) names them, so that a nurse leaving at the end of a shift hands them over, or records
    their end, rather than leaving an infusion nobody knows is theirs. A ward's handful: bounded by MOST."""
    rows = session.execute(select(Infusion, Bag, Patient.code).join(Bag, Bag.id == Infusion.bag_id)
                           .join(Patient, Patient.id == Infusion.patient_id)
                           .where(Infusion.ended_at.is_(None), Infusion.started_by_id == user_id)
                           .order_by(Infusion.started_at, Infusion.id).limit(MOST)).all()
    return [StartedRunning(infusion, bag, code) for infusion, bag, code in rows]
