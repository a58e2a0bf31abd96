"""The bedside check: one function that answers MATCHES or STOP with every failed check in plain words.

Hard stops (DOMAIN.md section 8, issue 7 point 5): a label code that is not genuine, an unknown bag or
wristband, a patient not enrolled (withdrawn from the trial, or the enrolment not signed), a lot not released (or rejected, recalled, expired; an exceptional release for another patient),
a bag on hold, returned or discarded, an expired bag, the post-thaw limit passed, a weight recorded since the
prescription at which its bags give a dose outside its band (DOMAIN.md 8: "dose outside the prescription") or a
dose weight older than the protocol allows on the day of infusion, a
bag not prescribed to THIS patient by a signed prescription, a directed product for another recipient, a bag
already infused, a bag not (yet) on the ward, a bag that, added to what its course already gave (a partial draw
given whole...), would take the course above its prescription's band (course_over), a bag whose DMSO added to what
the patient already received in the
last 24 hours is not below the prescription's limit per kg per day (DOMAIN.md 6, held over any 24 hours, not the
calendar day: a prescription's planned day is a "give before", so a course judged for another day can be given
20 minutes after another course's bag), another bag of the patient still running (started, not ended: one bag at a
time), a reaction of grade 3 or more recorded during an infusion of the patient since the bag's prescription was
signed (the prescriber decides: no override here).
Words are written for a tired nurse at 3 a.m.: what is wrong and what to do.
"""
from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import Numeric, and_, bindparam, case, func, or_, select, type_coerce
from sqlalchemy.orm import Session, aliased, load_only

from mscbatch.core.culture import format_cells
from mscbatch.core.dosing import (
    DmsoGiven,
    cells_per_kg_words,
    course_high_cells,
    dmso_grams,
    dmso_window_refusal,
    window_start_before,
)
from mscbatch.core.identifiers import (
    IdentifierError,
    din_shown,
    din_words,
    is_din_symbol,
    parse_din,
    parse_din_symbol,
    parse_product_code,
)
from mscbatch.core.label_token import TokenInvalid, verify_token
from mscbatch.core.numbers import plain
from mscbatch.core.protocols import format_cells_per_kg
from mscbatch.core.text import INVISIBLE
from mscbatch.custody.models import GRADES, SERIOUS_GRADE, CustodyEvent, Infusion, InfusionReaction
from mscbatch.custody.queries import ENDED_LOTS, LOST_STATES, CourseShort, course_short
from mscbatch.database import utcnow
from mscbatch.donors.clearance import NotCleared, clearance_of
from mscbatch.donors.models import Donor
from mscbatch.inline_constants import inline_constants
from mscbatch.lots.models import Bag, Lot
from mscbatch.lots.queries import product_of
from mscbatch.patients.inventory import dmso_given_within
from mscbatch.patients.models import Allocation, Patient, Prescription
from mscbatch.patients.queries import (
    WeightSincePrescription,
    allocated_patient_id,
    allocated_volume_ml,
    has_newer_weight,
    patient_by_wristband,
    prescribed_weight_on,
    protocols,
    weight_since_prescription,
    wristband_as_registered,
    wristband_identity,
)
from mscbatch.recall.queries import is_held, recalls_covering, ward_hold
from mscbatch.release.queries import (
    ReleaseState,
    exceptional_release_of,
    failed_late_tests,
    has_late_oos,
    pending_conditional_tests,
    spec_test_names,
)
from mscbatch.site import local_and_utc, site_day

CALL_UNIT = "Do not give it. Call the cell therapy unit."
#: where a bag not yet received on the ward is, and what to do, in a nurse's words (not the bag's state names)
NOT_ON_WARD = {
    "stored": "it is still in storage at the cell therapy unit. Ask the unit to send it",
    "allocated": "it is still at the cell therapy unit (set aside for a patient, not sent yet). Ask the unit to send it",
    "dispatched": "it was sent by the cell therapy unit, but its arrival on the ward has not been recorded. Record its "
                  "receipt first"}
#: the same bag scanned for a patient it is not for: where the records say it is, and no errand for it ("ask the unit
#: to send it" beside WRONG PATIENT read as "get this bag sent for this patient")
NOT_ON_WARD_NOT_THEIRS = {
    "stored": "the records say it is in storage at the cell therapy unit",
    "allocated": "the records say it is at the cell therapy unit (set aside for a patient, not sent yet)",
    "dispatched": "it was sent by the cell therapy unit, but its arrival on the ward has not been recorded"}
#: a received bag checked before it is thawed: a note on MATCHES (the page offers Start for a thawed bag only)
STILL_FROZEN = "Still frozen: thaw this bag before the infusion, then check it again."
#: why a lot is not released, in a nurse's words (not the lot's state names)
NOT_RELEASED = {"in_process": "it is still being made", "quarantine": "its tests are not all approved yet"}
#: a lot whose bags may never be given: what happened to it, in a nurse's words
LOT_ENDED = {"rejected": "was REJECTED", "recalled": "has been RECALLED", "expired": "has EXPIRED"}
_TOKEN_LIKE = re.compile(r"(/v/|\.)", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    code: str
    message: str


@dataclass
class BedsideResult:
    failures: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bag: Bag | None = None
    lot: Lot | None = None
    patient: Patient | None = None
    thawed_at: datetime | None = None
    post_thaw_deadline: datetime | None = None
    # the time to give it by: its post-thaw deadline, or its own expiry when that comes first (a bag thawed an hour
    # before it expires is not to be given "within 60 minutes" after it has expired)
    give_before: datetime | None = None
    received_at: datetime | None = None  # the bag's last receipt on the ward: a check scanned before it was another trip
    check_id: int | None = None
    give_ml: Decimal | None = None  # what the prescription draws from this bag (less than it holds: partial dose)
    course_given: int | None = None  # how many other bags of its prescription were already given (or are running)
    course_running: int = 0  # of those, how many are running now (started, not ended): never "given already"

    @property
    def matches(self) -> bool:
        return not self.failures

    @property
    def expires_before_thaw_limit(self) -> bool:
        """The bag's expiry, not its post-thaw limit, is the time to give it by."""
        return self.give_before is not None and self.give_before != self.post_thaw_deadline

    def stop(self, code: str, message: str) -> None:
        self.failures.append(Finding(code, message))


#: a bag label code that was not read whole (a QR read cut short, a damaged label, another code)
NOT_READ = ("The bag scan was not read: scan the bag's label again. If its QR code still does not read, type the "
            "bag number (DIN) printed on the label, with the boxed check character at its end.")


def visible(text: str) -> str:
    """The text without the characters that show nothing (INVISIBLE), as the nurse reads it on the screen: a bag
    scan or a wristband sent by a scanner with a suffix, or pasted with a zero-width space, is the code it shows.
    No code of ours holds one: a label token is ASCII letters, digits, "." (and its URL), a DIN or its Code 128
    ("=" + DIN + 2 flag characters, ISBT 128 data structure 001) has no GS1 group separator (GS, U+001D), and a
    wristband with one is refused at registration (patients.services). Dropping them changes nothing a code's check
    proves: a token's signature and a DIN's check character are verified on what is left, so an altered code
    still fails."""
    return "".join(letter for letter in text if unicodedata.category(letter) not in INVISIBLE)


def scan_reference(scanned: str, label_key: str) -> tuple[str | None, str | None]:
    """(reference, problem): the DIN (13 characters, or 14 with its check character) a scan names, from a label
    token (URL or bare) or a typed DIN with its K. Pure: the database is not read."""
    text = visible(scanned or "").strip()
    if not text:
        return None, "No bag was scanned. Scan the QR code on the bag label."
    compact = "".join(text.split())
    if _TOKEN_LIKE.search(compact):
        try:
            return verify_token(text, label_key), None
        except TokenInvalid as invalid:
            # decided by the kind verify_token gives, never by its words (the label check page says the same)
            if invalid.forged:
                # a whole code whose signature is not this unit's, or a code altered: the label itself is not genuine
                return None, f"The code on the bag label is not genuine ({invalid.reason}). {CALL_UNIT}"
            # a read cut short, damaged or of another code: nothing is known of the bag, so one thing to do, not
            # "call the unit" beside the page's "scan its label again"
            return None, NOT_READ
    if is_din_symbol(compact):  # the label's Code 128, read by a barcode scanner: checked by the symbol itself
        try:
            din = parse_din_symbol(compact)
        except IdentifierError as error:  # another bar code of the label (not the DIN's): a misread, not a bag
            return None, f"The bar code scanned is not a bag number ({error}). Scan the label's QR code."
        return din.typed, None
    try:
        parse_din(compact)  # raises with what is wrong (never the expected K)
    except IdentifierError as error:
        return None, _din_words(compact, error)
    if len(compact) != 14:
        # the right K is not said: told it, a nurse who mistyped a digit would type that K and name another bag
        return None, ("Type all 14 characters of the bag number (DIN), including the boxed check character "
                      "at the end, as printed on the label, or scan the label's QR code.")
    return compact.upper(), None


def _din_words(compact: str, error: IdentifierError) -> str:
    """A bag number that is not one, in a nurse's words with one thing to do (never the expected K: told it, a
    nurse who mistyped a digit would type that K and name another bag)."""
    if len(compact) not in (13, 14):  # first: a number cut short also fails its check character, which misleads
        what = f"it has {len(compact)} characters; a bag number has 14, the last one boxed"
    elif "check character" in str(error):
        what = "one of its characters is wrong (the boxed character at its end does not fit the others)"
    else:
        what = "it is not written as a bag number is"
    return f"The bag number scanned or typed is wrong: {what}. Scan the QR code on the bag label."


def _unknown(ref: str) -> str:
    return f"No bag {ref[:13]} exists in the unit's records. {CALL_UNIT}"


def resolve_bag(session: Session, scanned: str, label_key: str) -> tuple[Bag | None, str | None]:
    """(bag, problem): the bag a scan names."""
    ref, problem = scan_reference(scanned, label_key)
    if ref is None:
        return None, problem
    bag = session.scalar(select(Bag).where(Bag.din == ref[:13]))
    if bag is None or (len(ref) == 14 and bag.check_character != ref[13]):
        return None, _unknown(ref)
    return bag, None


def thawed_at(bag_id: Any) -> Any:
    """Correlated scalar subquery: when the bag was last thawed (its post-thaw clock), or NULL."""
    return last_event_at(bag_id, "thawed")


def received_at(bag_id: Any) -> Any:
    """Correlated scalar subquery: when the bag was last received on the ward (the start of its present trip), or
    NULL."""
    return last_event_at(bag_id, "received")


def past_post_thaw_limit(bag: Bag, lot: Lot, thawed: datetime | None, now: datetime) -> timedelta | None:
    """The product's post-thaw limit when the thawed bag is past it, else None: the one judgement of the bedside's
    "post_thaw" STOP, the label verification page and the FHIR and CSV exports, each in its own words. `thawed`: its
    last thaw (thawed_at). A bag infused is judged by its infusion, not by this."""
    if bag.status != "thawed" or thawed is None:
        return None
    limit = product_of(lot).post_thaw_limit
    return limit if now > thawed + limit else None


def last_event_at(bag_id: Any, kind: str) -> Any:
    return (select(CustodyEvent.occurred_at).where(CustodyEvent.bag_id == bag_id, CustodyEvent.kind == kind)
            .order_by(CustodyEvent.id.desc()).limit(1).scalar_subquery())


@dataclass(frozen=True)
class Dmso24Hours:
    """The DMSO of the bag's draw and what the patient already received in the last 24 hours (read only when an
    infusion of the patient started in them), to judge against the limit per kg per day of the bag's signed
    prescription, held over any 24 hours."""
    given: DmsoGiven  # patients.inventory.dmso_given_within: infusions started in (now - 24 h, now]; one not ended
    # counts its prescription's draw (or its whole bag when none holds it)
    bag_g: Decimal  # the prescription's draw from this bag x the bag's DMSO % x the protocol's density
    weight_kg: Decimal | None  # the prescription's weight (None: it cannot be read)
    limit_g_per_kg: Decimal | None  # its stored calculation's max_dmso_g_per_kg (None: it cannot be read)


@dataclass(frozen=True)
class BagFacts:
    """Everything the bedside check knows about one bag (read_facts reads it)."""
    bag: Bag
    lot: Lot
    release: ReleaseState
    donor_type: str | None
    recipient_code: str | None
    infused_at: datetime | None  # the start of its infusion, if it has one
    hold: str | None  # its active holds' recalls, in a nurse's words (recall.queries.ward_hold)
    thawed_at: datetime | None
    allocated_patient_id: int | None  # the patient a signed, active prescription reserves it for
    allocated_patient_code: str | None  # read only when it is not the wristband's patient
    donor_code: str | None = None
    donor_clearance: NotCleared | None = None  # why the donor does not clear the bag (donors.clearance), or None
    allocated_ml: Decimal | None = None  # the volume the prescription draws from the bag
    weight_change: WeightSincePrescription | None = None  # a weight newer than the prescription's, judged
    prescribed_weight_on: date | None = None  # when the prescription's weight was measured
    course_short: CourseShort | None = None  # a bag of its course lost, and the rest no longer gives the band
    course_lost: bool = False  # a bag of its course was lost (discarded, returned, lot ended), whatever the rest gives
    dmso_24h: Dmso24Hours | None = None  # read only when the patient had an infusion in the last 24 hours
    received_at: datetime | None = None  # its last receipt on the ward (a check scanned before it: another trip)
    infusion_running: bool = False  # its infusion started and not ended (read only for a bag with an infusion)
    course_over: CourseOver | None = None  # what its course already gave, with this bag, against the band's top
    running_others: tuple[RunningBag, ...] = ()  # the patient's other infusions started and not ended
    severe_reaction: SevereReaction | None = None  # a grade 3+ reaction of the patient since this bag's prescription


@dataclass(frozen=True)
class RunningBag:
    """Another bag of the wristband's patient being infused now (started, not ended): read, for the words of its
    STOP, only when the check's statement found one (other_bag_running)."""
    din: str  # as the label shows it, with its check character (din_shown)
    started_at: datetime
    in_course: bool  # a bag of the same prescription as the bag scanned


@dataclass(frozen=True)
class SevereReaction:
    """The worst (then latest) reaction of grade SERIOUS_GRADE or more recorded during an infusion of the patient since
    the prescription of the bag scanned was signed: read, for the words of its STOP, only when the check's statement
    found one (severe_reaction_since)."""
    grade: int
    term: str
    description: str
    din: str  # the bag whose infusion it was recorded during, with its check character
    onset_at: datetime


@dataclass(frozen=True)
class CourseOver:
    """What the bag's course (its signed, active prescription) has already given, read in the check's one statement
    only when another bag of it was given: with this bag's draw, it must not go above the band's upper limit
    (DOMAIN.md 8: "dose outside the prescription"). A bag given whole when a part was prescribed, or more than
    prescribed, counts at the volume recorded at its end (core.dosing.cells_given), a running one as prescribed."""
    given_cells: Decimal  # given so far by the course's other bags
    given_bags: int  # how many of them were given (or are running)
    bag_cells: Decimal | None  # what the prescription draws from this bag (None: it cannot be read)
    high_cells: Decimal | None  # the band's upper limit the prescription was signed under (None: cannot be read)
    weight_kg: Decimal | None  # the prescription's weight

    @property
    def with_this_bag(self) -> Decimal | None:
        return None if self.bag_cells is None else self.given_cells + self.bag_cells


#: The columns of the bag, its lot and the patient that the check, its JSON answer and its page read: only these
#: are loaded (each further column costs the driver and the ORM at every scan). Another column is loaded on first
#: use, with a query of its own (tests/integration/test_bedside_reads.py shows the check and its page need none).
BAG_SHOWN = (Bag.id, Bag.lot_id, Bag.din, Bag.din_fin, Bag.din_year, Bag.din_sequence, Bag.check_character,
             Bag.bag_number, Bag.bag_count, Bag.product_code, Bag.volume_ml, Bag.expires_at, Bag.status)
LOT_SHOWN = (Lot.id, Lot.lot_number, Lot.status, Lot.product_id, Lot.product_name)
PATIENT_SHOWN = (Patient.id, Patient.code, Patient.initials, Patient.date_of_birth, Patient.protocol_id, Patient.status,
                 Patient.wristband_id)  # the confirm form's read-aloud names the band as printed


def course_has_lost_bag(bag_id: Any) -> Any:
    """Correlated EXISTS: another bag of the signed, active prescription that reserves this bag was discarded or
    returned to the unit (LOST_STATES), or, not given, is of a lot recalled, rejected or expired for good (ENDED_LOTS):
    the course may no longer give its band (read at every scan, in the check's one statement; the course is added up
    only when it is true)."""
    mine, other, lost, lost_lot = aliased(Allocation), aliased(Allocation), aliased(Bag), aliased(Lot)
    return select(other.id).where(
        mine.active_bag_id == bag_id, Prescription.id == mine.prescription_id, Prescription.locked_at.is_not(None),
        Prescription.status == "active", other.prescription_id == mine.prescription_id,
        other.active_bag_id.is_not(None), other.bag_id != bag_id, lost.id == other.bag_id,
        lost_lot.id == lost.lot_id,
        or_(lost.status.in_(LOST_STATES), and_(lost_lot.status.in_(ENDED_LOTS), lost.status != "infused"))).exists()


def _course_given(bag_id: Any) -> tuple[Any, Any]:
    """Correlated scalar subqueries: (the cells the other bags of the signed, active prescription reserving this bag
    have given, each at the volume recorded at its end, as prescribed while it runs; their number). NULL / 0 when
    none was given. Read at every scan in the check's one statement (bag_allocation is indexed by prescription).

    The cells given are core.dosing.cells_given in SQL (at the volume recorded at the end, as prescribed while it runs
    or for a 0 mL draw): change the two together, or the bedside and the end of an infusion add up another course."""
    mine, other = aliased(Allocation), aliased(Allocation)
    at_volume = case((or_(Infusion.volume_infused_ml.is_(None), other.volume_ml <= 0), other.cells),
                     else_=other.cells * Infusion.volume_infused_ml / other.volume_ml)
    where = (mine.active_bag_id == bag_id, Prescription.id == mine.prescription_id,
             Prescription.locked_at.is_not(None), Prescription.status == "active",
             other.prescription_id == mine.prescription_id, other.active_bag_id.is_not(None),
             other.bag_id != bag_id, Infusion.bag_id == other.bag_id)
    cells = select(type_coerce(func.sum(at_volume), Numeric(asdecimal=True))).where(*where).scalar_subquery()
    count = select(func.count(Infusion.id)).where(*where).scalar_subquery()
    return cells, count


def _course_calculation(bag_id: Any) -> Any:
    """Correlated scalar subquery: the stored calculation (the band it was signed under, the weight) of the signed,
    active prescription reserving this bag. Used only when another bag of its course was given (_course_over reads
    _course_given's count first: a prescription's bags as drawn never go above its band, core.dosing.allocate), so
    it asks nothing more of its own."""
    return (select(Prescription.calculation_json)
            .where(Allocation.active_bag_id == bag_id, Prescription.id == Allocation.prescription_id,
                   Prescription.locked_at.is_not(None), Prescription.status == "active")
            .limit(1).scalar_subquery())


def _allocated_cells(bag_id: Any) -> Any:
    """Correlated scalar subquery: the cells the signed, active prescription draws from this bag."""
    return (select(Allocation.cells).where(Allocation.active_bag_id == bag_id,
                                           Prescription.id == Allocation.prescription_id,
                                           Prescription.locked_at.is_not(None), Prescription.status == "active")
            .limit(1).scalar_subquery())


def infused_since(patient_id: Any) -> Any:
    """Correlated EXISTS: an infusion of the patient started after the bound "since" (now - 24 hours, in UTC:
    window_start_before). Only then is the DMSO already given in the last 24 hours added up (dmso_given_within): a
    few scans of a patient given something in them (infusion.patient_id is indexed)."""
    return select(Infusion.id).where(Infusion.patient_id == patient_id,
                                     Infusion.started_at > bindparam("since")).exists()


def other_bag_running(patient_id: Any, bag_id: Any) -> Any:
    """Correlated EXISTS: an infusion of the patient, of another bag, started and not ended (infusion.patient_id is
    indexed): no second bag is started while one runs (read at every scan, in the check's one statement)."""
    return select(Infusion.id).where(Infusion.patient_id == patient_id, Infusion.ended_at.is_(None),
                                     Infusion.bag_id != bag_id).exists()


def severe_reaction_since(patient_id: Any, bag_id: Any) -> Any:
    """Correlated EXISTS: a reaction of grade SERIOUS_GRADE or more recorded during an infusion of the patient at or
    after the signing of the signed, active prescription of the patient that reserves this bag (its course: every
    infusion of it, and any other course's given since). The prescriber who signed it could not know of the reaction;
    a prescription signed after it is the prescriber's decision (read at every scan, in the check's one statement)."""
    return (select(InfusionReaction.id).join(Infusion, Infusion.id == InfusionReaction.infusion_id)
            .where(Infusion.patient_id == patient_id, InfusionReaction.grade >= SERIOUS_GRADE,
                   Allocation.active_bag_id == bag_id, Prescription.id == Allocation.prescription_id,
                   Prescription.patient_id == patient_id, Prescription.locked_at.is_not(None),
                   Prescription.status == "active", InfusionReaction.recorded_at >= Prescription.locked_at)
            .exists())


def _running_others(session: Session, patient_id: int, bag_id: int) -> tuple[RunningBag, ...]:
    """The patient's other infusions started and not ended, oldest first (the words of the other_running STOP)."""
    mine, other = aliased(Allocation), aliased(Allocation)
    in_course = select(other.id).where(mine.active_bag_id == bag_id, other.prescription_id == mine.prescription_id,
                                       other.bag_id == Infusion.bag_id).exists()
    rows = session.execute(select(Infusion.started_at, Bag.din, Bag.check_character, in_course)
                           .join(Bag, Bag.id == Infusion.bag_id)
                           .where(Infusion.patient_id == patient_id, Infusion.ended_at.is_(None),
                                  Infusion.bag_id != bag_id)
                           .order_by(Infusion.started_at, Infusion.id))
    return tuple(RunningBag(din_words(din, k), started, bool(course)) for started, din, k, course in rows)


def _severe_reaction(session: Session, patient_id: int, bag_id: int) -> SevereReaction | None:
    """The worst, then latest, reaction severe_reaction_since found (the words of the severe_reaction STOP)."""
    row = session.execute(
        select(InfusionReaction.grade, InfusionReaction.ctcae_term, InfusionReaction.description,
               InfusionReaction.onset_at, Bag.din, Bag.check_character)
        .join(Infusion, Infusion.id == InfusionReaction.infusion_id).join(Bag, Bag.id == Infusion.bag_id)
        .join(Allocation, Allocation.active_bag_id == bag_id)
        .join(Prescription, Prescription.id == Allocation.prescription_id)
        .where(Infusion.patient_id == patient_id, InfusionReaction.grade >= SERIOUS_GRADE,
               Prescription.patient_id == patient_id, Prescription.locked_at.is_not(None),
               Prescription.status == "active", InfusionReaction.recorded_at >= Prescription.locked_at)
        .order_by(InfusionReaction.grade.desc(), InfusionReaction.recorded_at.desc(), InfusionReaction.id.desc())
        .limit(1)).first()
    if row is None:  # gone since the statement (cannot: append-only); the next scan says it
        return None
    grade, term, description, onset, din, k = row
    return SevereReaction(grade, term, description or "", din_words(din, k), onset)


@cache
def _facts_statement() -> Any:
    """One statement for the patient wearing the wristband, the bag, its lot and donor, and every fact about them
    that a MATCHES needs; built once (the check runs at every scan). The subqueries are the owning domains' own
    definitions."""
    exceptional_for, exceptional = exceptional_release_of(Lot.id)
    infused = select(Infusion.started_at).where(Infusion.bag_id == Bag.id).limit(1).scalar_subquery()
    given_cells, given_bags = _course_given(Bag.id)
    statement = (select(Bag, Lot, Patient, Donor.donor_type, Donor.recipient_code, infused, is_held(Bag.id),
                        exceptional_for, exceptional, allocated_patient_id(Bag.id), Donor.id, Donor.code,
                        Donor.status, has_late_oos(Lot.id), allocated_volume_ml(Bag.id), thawed_at(Bag.id),
                        has_newer_weight(Bag.id), prescribed_weight_on(Bag.id), course_has_lost_bag(Bag.id),
                        infused_since(Patient.id), received_at(Bag.id), given_cells, given_bags,
                        _course_calculation(Bag.id), _allocated_cells(Bag.id), other_bag_running(Patient.id, Bag.id),
                        severe_reaction_since(Patient.id, Bag.id))
                 .join(Lot, Lot.id == Bag.lot_id).outerjoin(Donor, Donor.id == Lot.donor_id)
                 .outerjoin(Patient, Patient.wristband_id == bindparam("wristband"))
                 .where(Bag.din == bindparam("din"))
                 .options(load_only(*BAG_SHOWN), load_only(*LOT_SHOWN), load_only(*PATIENT_SHOWN)))
    # its seventy-odd constants written into the SQL: binding them cost as much as SQLite's run of it
    return inline_constants(statement, keep=("din", "wristband", "since"))


def read_facts(session: Session, wristband: str, din: str | None,
               now: datetime | None = None) -> tuple[Patient | None, BagFacts | None]:
    """(patient wearing the wristband, the bag's facts): one statement when the check can MATCH; a few more only
    for an unknown bag, a conditional release's pending tests, a weight newer than the prescription's, a patient
    given an infusion in the last 24 hours (the DMSO given in them: two), or the words of a STOP (hold reasons, failed
    late tests, the other patient's code). `now`: the moment judged (the 24 hours before it)."""
    now = now or utcnow()
    params = {"din": din, "wristband": wristband or None, "since": window_start_before(now)}
    row = session.execute(_facts_statement(), params).first() if din else None
    if row is None:
        return (patient_by_wristband(session, wristband) if wristband else None), None
    if row[2] is None and wristband:  # nobody wears this spelling: a band registered before it had one spelling?
        earlier = wristband_as_registered(session, wristband)
        if earlier is not None:
            row = session.execute(_facts_statement(), {**params, "wristband": earlier}).first()
    (bag, lot, patient, donor_type, recipient_code, infused, held, exceptional_for, exceptional, allocated_id,
     donor_id, donor_code, donor_status, late_oos, allocated_ml, thawed, newer_weight, weighed_on, course_lost,
     infused_in_24h, received, given_cells, given_bags, calculation, allocated_cells, other_running,
     severe_reaction) = row
    pending = tuple(pending_conditional_tests(session, lot))  # reads only for a conditionally released lot
    failed_late = failed_late_tests(session, lot.id) if late_oos else ()
    allocated_code = None
    if allocated_id is not None and patient is not None and allocated_id != patient.id:  # words of WRONG PATIENT
        allocated = session.get(Patient, allocated_id)
        allocated_code = allocated.code if allocated is not None else None
    return patient, BagFacts(
        bag=bag, lot=lot,
        release=ReleaseState.of(lot.status, exceptional_for, bool(exceptional), pending, failed_late,
                                pending_names=spec_test_names(session, lot.id, pending)),
        donor_type=donor_type, recipient_code=recipient_code, infused_at=infused,
        hold=ward_hold(session, bag.id) if held else None,
        thawed_at=thawed if bag.status in ("thawed", "infused") else None, received_at=received,
        allocated_patient_id=allocated_id, allocated_patient_code=allocated_code, donor_code=donor_code,
        donor_clearance=clearance_of(session, donor_id, donor_status), allocated_ml=allocated_ml,
        weight_change=weight_since_prescription(session, bag.id) if newer_weight else None,
        prescribed_weight_on=weighed_on, course_lost=bool(course_lost),
        course_over=_course_over(given_cells, given_bags, calculation, allocated_cells),
        course_short=_course_short(session, bag.id) if course_lost else None,
        running_others=_running_others(session, patient.id, bag.id) if other_running and patient is not None else (),
        severe_reaction=_severe_reaction(session, patient.id, bag.id)
        if severe_reaction and patient is not None else None,
        infusion_running=infused is not None and session.scalar(
            select(Infusion.ended_at.is_(None)).where(Infusion.bag_id == bag.id)) is True,
        dmso_24h=_dmso_24h(session, patient, bag, now, allocated_ml)
        if infused_in_24h and patient is not None and allocated_id == patient.id and infused is None else None)


def _course_over(given_cells: Any, given_bags: Any, calculation: str | None,
                 allocated_cells: Any) -> CourseOver | None:
    """The course's facts for its upper limit (pure): None when none of its other bags was given."""
    if not given_bags or given_cells is None:
        return None
    given = Decimal(str(given_cells)).quantize(Decimal(1))  # whole cells (SQLite sums in floating point)
    bag_cells = Decimal(allocated_cells) if allocated_cells is not None else None
    high = weight = None
    try:
        stored = json.loads(calculation or "")
        weight = Decimal(stored["weight_kg"])
        high = course_high_cells(stored)
    except (KeyError, TypeError, ValueError, ArithmeticError):  # cannot be read: judge() stops, never guesses
        high = None
    return CourseOver(given, int(given_bags), bag_cells, high, weight)


def _dmso_24h(session: Session, patient: Patient, bag: Bag, now: datetime,
              draw_ml: Decimal | None) -> Dmso24Hours | None:
    """The DMSO the patient already received in the 24 hours before `now` and this bag's (its prescription's draw x
    DMSO % x density), with the prescription's weight and limit per kg per day; None when no DMSO was given in them
    (the course alone was judged when it was signed). Read only when an infusion of the patient started in them."""
    protocol = protocols().get(patient.protocol_id)
    if protocol is None or draw_ml is None:  # a protocol not configured here already STOPs (weight_too_old)
        return None
    density = protocol.dosing.dmso_density_g_per_ml  # as the dose was calculated (patients.inventory.calculate)
    given = dmso_given_within(session, patient.id, now, density, now=now)
    if given.grams <= 0:
        return None
    # the bag's DMSO % is read here, with the prescription, not by the check's statement at every scan
    row = session.execute(select(Prescription.weight_kg, Prescription.calculation_json, Bag.dmso_percent)
                          .join(Allocation, Allocation.prescription_id == Prescription.id)
                          .join(Bag, Bag.id == Allocation.active_bag_id)
                          .where(Allocation.active_bag_id == bag.id, Prescription.status == "active",
                                 Prescription.locked_at.is_not(None)).limit(1)).first()
    if row is None:  # the prescription stopped since the check's statement: said by the next scan
        return None
    weight = limit = None
    try:
        weight, limit = Decimal(row.weight_kg), Decimal(json.loads(row.calculation_json)["max_dmso_g_per_kg"])
    except (KeyError, TypeError, ValueError, ArithmeticError):  # cannot be read: judge() stops, never guesses
        weight = limit = None
    return Dmso24Hours(given, dmso_grams(Decimal(draw_ml), Decimal(row.dmso_percent), density), weight, limit)


def course_short_of_bag(session: Session, bag_id: int) -> CourseShort | None:
    """The bedside's course rule read for one bag on its own, for the steps before the bedside (dispatch, thaw:
    custody.handover): another bag of its course lost (course_has_lost_bag) and the rest short of the band."""
    if not session.scalar(select(course_has_lost_bag(bag_id))):
        return None
    return _course_short(session, bag_id)


def _course_short(session: Session, bag_id: int) -> CourseShort | None:
    prescription = session.scalar(select(Prescription).join(Allocation, Allocation.prescription_id == Prescription.id)
                                  .where(Allocation.active_bag_id == bag_id, Prescription.status == "active",
                                         Prescription.locked_at.is_not(None)).limit(1))
    return None if prescription is None else course_short(session, prescription)


def donor_problem(code: str | None, verdict: NotCleared | None) -> str | None:
    """Why the donor does not clear the bag, or None, in the words of the bedside and of the steps before it (send,
    thaw). The verdict is donors.clearance's, the one the labels and their verification page say too: "reopened"
    only for a donor QA had approved and new information put back to review."""
    if verdict is None:
        return None
    if verdict == "ineligible":
        return f"The DONOR of this bag ({code}) has been judged NOT ELIGIBLE."
    if verdict == "not_approved_yet":
        return f"The DONOR of this bag ({code}) is NOT APPROVED yet: QA has not signed the donor's eligibility."
    return (f"The DONOR of this bag ({code}) is UNDER REVIEW again: new information (for example a late positive "
            "test) reopened the donor's eligibility.")


def lot_unusable(lot_number: str, lot_status: str, state: ReleaseState) -> Finding | None:
    """Why the lot's bags may not be given, in the one set of words the bedside check and the unit's steps (send,
    thaw: handover.unfit_to_leave) both say, or None. A lot rejected, recalled or expired says so first."""
    if lot_status in LOT_ENDED:
        return Finding(lot_status, f"Lot {lot_number} {LOT_ENDED[lot_status]}.")
    if state.failed_late:
        return Finding("late_oos", f"A test of lot {lot_number} FAILED after its conditional release "
                                   f"({', '.join(state.failed_late)}): OUT OF SPECIFICATION.")
    if not state.released:
        return Finding("not_released", f"Lot {lot_number} is NOT RELEASED for use "
                                       f"({NOT_RELEASED.get(lot_status, 'QA has not released it')}).")
    return None


def evaluate(session: Session, wristband: str, bag_scan: str, label_key: str,
             now: datetime | None = None) -> BedsideResult:
    """Run every check. Reads only (one statement when it MATCHES): the caller records the result. The wristband is
    read whatever its case and spacing (wristband_identity): a band typed in lower case names its own patient."""
    wristband = wristband_identity(visible(wristband or ""))
    ref, problem = scan_reference(bag_scan, label_key)
    now = now or utcnow()
    patient, facts = read_facts(session, wristband, ref[:13] if ref else None, now)
    if ref and (facts is None or (len(ref) == 14 and facts.bag.check_character != ref[13])):
        facts, problem = None, _unknown(ref)
    return judge(wristband, patient, facts, problem, now)


def judge(wristband: str, patient: Patient | None, facts: BagFacts | None, bag_problem: str | None,
          now: datetime) -> BedsideResult:
    """MATCHES or STOP with every failed check, from what was read (pure: no database, no clock)."""
    result = BedsideResult(patient=patient)
    if not wristband:
        result.stop("no_wristband", "No wristband was scanned. Scan the patient's wristband.")
    elif patient is None:
        result.stop("unknown_wristband", "This wristband is not known. Check the patient's identity before "
                                         "anything else.")
    elif patient.status == "withdrawn":
        result.stop("patient_withdrawn", f"Patient {patient.code} has been WITHDRAWN FROM THE TRIAL. Do not give "
                                         "this patient any trial cells. Call the clinician.")
    elif patient.status != "enrolled":
        result.stop("patient_not_enrolled", f"Patient {patient.code} is NOT ENROLLED in the trial (the enrolment has "
                                            "not been signed). Do not give this patient any trial cells. Call the "
                                            "clinician.")
    if facts is None:
        result.stop("bag", bag_problem or "Unknown bag.")
        return result
    bag, lot, state = facts.bag, facts.lot, facts.release
    result.bag, result.lot, result.received_at = bag, lot, facts.received_at

    if facts.infusion_running:  # scanned again while it runs: said as it is, not as a bag given and done
        result.stop("already_infused", f"This bag is BEING INFUSED NOW: its infusion started on "
                                       f"{local_and_utc(facts.infused_at)} and has not been ended. Never start a bag "
                                       "twice.")
    elif bag.status == "infused" or facts.infused_at is not None:
        since = f" on {local_and_utc(facts.infused_at)}" if facts.infused_at else ""
        result.stop("already_infused", f"This bag has ALREADY BEEN INFUSED{since}. Never give a bag twice.")
    if patient is not None:
        _judge_patient_now(result, facts)

    unusable = lot_unusable(lot.lot_number, lot.status, state)
    if unusable:
        result.stop(unusable.code, f"{unusable.message} {CALL_UNIT}")
    elif state.exceptional:
        if patient is None or patient.code != state.patient_code:
            result.stop("exceptional_other", "This bag was released as an exception for ANOTHER patient "
                                             f"({state.patient_code}) only. {CALL_UNIT}")
        else:
            result.notes.append("Exceptional release of an out-of-specification batch for this patient: the "
                                "clinician has accepted it.")
    elif state.conditional:
        result.notes.append("Conditional release: a test result is still pending ("
                            + ", ".join(state.pending_names) + "). The unit will tell the clinician the result.")

    donor = donor_problem(facts.donor_code, facts.donor_clearance)
    if donor:
        result.stop("donor_not_cleared", f"{donor} {CALL_UNIT}")
    if facts.hold or bag.status == "on_hold":
        result.stop("on_hold", f"This bag is ON HOLD{f' ({facts.hold})' if facts.hold else ''}. {CALL_UNIT}")
    if bag.status == "discarded":
        result.stop("discarded", f"This bag was DISCARDED. {CALL_UNIT}")
    elif bag.status == "returned":
        result.stop("returned", f"This bag was RETURNED to the unit. {CALL_UNIT}")
    elif bag.status in NOT_ON_WARD:
        theirs = patient is not None and facts.allocated_patient_id == patient.id
        where = (NOT_ON_WARD if theirs else NOT_ON_WARD_NOT_THEIRS)[bag.status]
        result.stop("not_on_ward", f"This bag has not been received on the ward: {where}.")
    elif bag.status == "received":  # not a STOP: checking the bag against the patient before thawing it is good
        # practice, and a bag found wrong then is still frozen, not lost; but it cannot be given yet
        result.notes.append(STILL_FROZEN)

    if bag.expires_at <= now:
        result.stop("bag_expired", f"This bag EXPIRED on {local_and_utc(bag.expires_at)}. {CALL_UNIT}")
    if facts.thawed_at is not None:
        limit = product_of(lot).post_thaw_limit
        deadline = facts.thawed_at + limit
        result.thawed_at, result.post_thaw_deadline = facts.thawed_at, deadline
        result.give_before = min(deadline, bag.expires_at)
        if past_post_thaw_limit(bag, lot, facts.thawed_at, now):
            minutes = int(limit.total_seconds() // 60)
            result.stop("post_thaw", f"Too long since thawing: thawed at {local_and_utc(facts.thawed_at)}; it had to be "
                                     f"given within {minutes} minutes, by {local_and_utc(deadline)}. {CALL_UNIT}")

    if facts.allocated_patient_id is None:
        result.stop("not_prescribed", "This bag is not prescribed for any patient now (no active signed prescription "
                                      "reserves it: it was never prescribed, or its prescription was stopped or "
                                      "cancelled). "
                                      + CALL_UNIT)
    elif patient is not None and facts.allocated_patient_id != patient.id:
        result.stop("wrong_patient", f"WRONG PATIENT. This bag is prescribed for patient "
                                     f"{facts.allocated_patient_code}, not for {patient.code} who wears this "
                                     f"wristband. Do not give it to {patient.code}: put it aside and call the cell "
                                     "therapy unit.")
    elif facts.allocated_ml is not None:
        result.give_ml = facts.allocated_ml
    change = facts.weight_change
    if change is not None and patient is not None and facts.allocated_patient_id == patient.id:
        # the words of WeightSincePrescription, which the dispatch and the thaw refusals say too (custody.handover)
        if change.problems:
            result.stop("weight_changed", f"{change.changed_words} Do not give it. Ask the prescriber to prescribe "
                                          "again for the new weight.")
        else:
            result.notes.append(f"A newer weight was recorded since the prescription: {change.weights_words}. The "
                                "dose is still within the prescription's limits.")
    if patient is not None and facts.allocated_patient_id == patient.id:
        _judge_weight_age(result, patient, facts, site_day(now))
        if lot.status not in LOT_ENDED:  # a bag of a lot ended for good is a STOP of its own: not what the rest gives
            _judge_course(result, facts)
        _judge_course_over(result, facts)
        result.course_given = facts.course_over.given_bags if facts.course_over is not None else 0
        result.course_running = min(result.course_given, sum(1 for other in facts.running_others if other.in_course))
        _judge_dmso_24h(result, facts)
    directed = parse_product_code(bag.product_code).is_directed or facts.donor_type == "familial"  # as frozen on the bag
    if directed and patient is not None and facts.recipient_code != patient.code:
        result.stop("directed_other", "This is a DIRECTED donation for one recipient only "
                                      f"({facts.recipient_code or 'none named'}), not for {patient.code}. {CALL_UNIT}")
    result.failures.sort(key=lambda finding: _FIRST.get(finding.code, len(_FIRST)))
    if result.failures:
        # on a STOP nothing may read as an instruction to give, nor as reassurance ("still within the limits")
        result.notes, result.give_ml = [], None
    elif result.give_ml is not None and result.give_ml < bag.volume_ml:
        give, holds = plain(result.give_ml), plain(bag.volume_ml)
        result.notes.insert(0, f"PART OF THE BAG ONLY: give {give} mL of the {holds} mL in this bag, as "
                               f"prescribed. Stop the infusion at {give} mL.")
    return result


def _judge_patient_now(result: BedsideResult, facts: BagFacts) -> None:
    """What is happening to the patient wearing the wristband: another bag of theirs still running (one bag at a
    time: its end records what was given, and a reaction during it must be seen before the next one), or a severe
    reaction (grade 3 or more) recorded during an infusion of theirs since this bag's prescription was signed (the
    prescriber decides whether any further bag is given: no bag is started without them)."""
    if facts.running_others:
        if len(facts.running_others) == 1:
            other = facts.running_others[0]
            words = (f"Another bag ({other.din}) is STILL RUNNING for this patient (started "
                     f"{local_and_utc(other.started_at)}): end that infusion before starting another bag.")
        else:
            shown = "; ".join(f"{other.din} (started {local_and_utc(other.started_at)})"
                              for other in facts.running_others)
            words = (f"Other bags are STILL RUNNING for this patient: {shown}. End those infusions before starting "
                     "another bag.")
        result.stop("other_running", words)
    severe = facts.severe_reaction
    if severe is not None:
        grade = GRADES.get(severe.grade, str(severe.grade)).split(" - ", 1)
        what = severe.term + (f": {_short(severe.description)}" if severe.description.strip() else "")
        result.stop("severe_reaction", f"A grade {grade[0]}{f' ({grade[1]})' if len(grade) > 1 else ''} reaction "
                                       f"({what}) was recorded during this patient's infusion of bag {severe.din}, "
                                       f"beginning at {local_and_utc(severe.onset_at)}: do not start another bag. "
                                       "The prescriber decides: call them.")


def _short(text: str, most: int = 160) -> str:
    """A note typed at the bedside, on one line and cut to `most` characters (the record keeps it whole)."""
    line = " ".join(text.split())
    return line if len(line) <= most else line[:most - 1].rstrip() + "…"


def _judge_weight_age(result: BedsideResult, patient: Patient, facts: BagFacts, today: date) -> None:
    """The dose is only as good as the weight it was calculated for: the protocol wants that weight measured
    within its weight_valid_days of the infusion (core.dosing refuses to prescribe otherwise), and an infusion
    put off for weeks is given today. A newer weight at which the dose still holds (a note above) renews it."""
    change = facts.weight_change
    if change is not None and change.problems:
        return  # already WEIGHT CHANGED: the prescription must be made again anyway
    weighed_on = change.latest_on if change is not None else facts.prescribed_weight_on
    if weighed_on is None:
        return  # no signed prescription reserves the bag: said above
    protocol = protocols().get(patient.protocol_id)
    if protocol is None:
        result.stop("weight_too_old", f"The patient's protocol ({patient.protocol_id}) is not configured here, so "
                                      f"the age of the weight cannot be checked. {CALL_UNIT}")
        return
    valid_days = protocol.dosing.weight_valid_days
    if (today - weighed_on).days <= valid_days:
        return
    result.stop("weight_too_old", f"WEIGHT TOO OLD: the dose is for the weight measured on {weighed_on.isoformat()}, "
                                  f"{(today - weighed_on).days} days ago; {protocol.short_name} needs a weight measured "
                                  f"within {valid_days} days of the infusion. Do not give it yet. Weigh the patient: "
                                  "the prescriber records the weight and confirms the dose.")


def _judge_course(result: BedsideResult, facts: BagFacts) -> None:
    """A bag of the same prescription was discarded (broken at thaw), returned to the unit, or its lot recalled,
    rejected or expired (it will never be given): when the bags left, with what was already given, no longer reach
    the prescription's band, giving them would give the patient a dose outside the prescription (DOMAIN.md 8): STOP,
    with what was lost and what the rest would give."""
    short = facts.course_short
    if short is None:
        if facts.course_lost:
            result.notes.append("Another bag of this prescription will not be given (discarded, returned to the unit, "
                                "or its lot recalled); the bags left still give a dose within the prescription's "
                                "limits.")
        return
    result.stop("course_short", f"{course_short_words(short)} Do not give: call the prescriber, who must stop this "
                                "course and prescribe again.")


def _judge_course_over(result: BedsideResult, facts: BagFacts) -> None:
    """What the course already gave plus what this bag is prescribed to give must not go above the band's upper limit
    the prescription was signed under (DOMAIN.md 8, hard stop "dose outside the prescription"): a bag prescribed as a
    part given whole, or more than prescribed, leaves less room for the bags after it."""
    words = None if facts.course_over is None else course_over_words(facts.course_over)
    if words is not None:
        result.stop("course_over", f"DO NOT GIVE: {words} Call the prescriber.")


def course_over_words(over: CourseOver) -> str | None:
    """Why this bag would take its course above the prescription's upper limit, in the bedside's words (its
    course_over STOP, and the dispatch and thaw that refuse such a bag: custody.handover), or None when it would not."""
    total = over.with_this_bag
    if total is None or over.high_cells is None or over.weight_kg is None or over.weight_kg <= 0:
        return ("another bag of this prescription was already given, and the prescription's upper limit cannot be "
                "read to check this bag against it.")
    if total <= over.high_cells:
        return None
    bags = "1 bag" if over.given_bags == 1 else f"{over.given_bags} bags"
    return (f"with this bag the patient would receive {format_cells(total)} cells "
            f"({cells_per_kg_words(total, over.weight_kg)}), above the prescription's upper limit of "
            f"{format_cells(over.high_cells)} ({cells_per_kg_words(over.high_cells, over.weight_kg)}): "
            f"{format_cells(over.given_cells)} already given by {bags} of this course, and "
            f"{format_cells(total - over.given_cells)} in this bag.")


def course_over_of_bag(session: Session, bag_id: int) -> CourseOver | None:
    """The bedside's course_over facts read for one bag on its own, for the steps before the bedside (dispatch, thaw:
    custody.handover), with the check's own subqueries: None when no other bag of its course was given."""
    given_cells, given_bags = _course_given(bag_id)
    row = session.execute(select(given_cells, given_bags, _course_calculation(bag_id), _allocated_cells(bag_id))).one()
    return _course_over(*row)


def course_short_words(short: CourseShort) -> str:
    """What was lost from the course and what the rest would give against the prescription, in the bedside's words
    (its STOP, and the thaw and dispatch that refuse a bag of such a course: custody.handover)."""
    lost = "; ".join(f"bag {din_shown(bag)} ({format_cells(bag.cells)} cells of the dose) " + _lost_words(bag.status)
                     for bag in short.lost)
    rest = "The bags left, with what was already given," if short.given_cells > 0 else "The bags left"
    return (f"THE PRESCRIBED DOSE CAN NO LONGER BE GIVEN: {lost}. {rest} would give "
            f"{cells_per_kg_words(short.expected_cells, short.weight_kg)} instead of the "
            f"{format_cells_per_kg(short.level_cells_per_kg)} prescribed (no less than "
            f"{cells_per_kg_words(short.low_cells, short.weight_kg)} allowed).")


def _lost_words(status: str) -> str:
    if status == "discarded":
        return "was DISCARDED"
    if status == "returned":
        return "was RETURNED to the unit"
    return f"can never be given: its lot {LOT_ENDED.get(status, status)}"  # custody.queries.course_bags


def _judge_dmso_24h(result: BedsideResult, facts: BagFacts) -> None:
    """The DMSO limit per kg per day (DOMAIN.md 6) is held over any 24 hours: a prescription's planned time is a
    "give before", so a course judged for another day (nothing given in the 24 hours before it) can be given minutes
    after another course's bag. This bag's DMSO added to what the patient already received in the last 24 hours must
    stay below the prescription's limit, at the weight the dose is judged at (the newer weight when one was recorded
    since the prescription)."""
    dmso = facts.dmso_24h
    if dmso is None:
        return
    weight = facts.weight_change.latest_kg if facts.weight_change is not None else dmso.weight_kg
    if weight is None or dmso.limit_g_per_kg is None or weight <= 0:
        result.stop("dmso_24h", "DMSO LIMIT (24 HOURS): the patient already received DMSO in the last 24 hours, and "
                                "this prescription's limit cannot be read to check this bag against it. Do not give "
                                "this bag now: call the prescriber.")
        return
    words = dmso_window_refusal(dmso.bag_g, dmso.given, weight, dmso.limit_g_per_kg, part="in this bag")
    if words is not None:
        result.stop("dmso_24h", f"DMSO LIMIT (24 HOURS): {words}. Do not give this bag now: call the prescriber.")


#: Findings that mean the bag itself may never be given, to this patient or any other (its label, its lot, its donor,
#: its hold, its expiry, its post-thaw limit, its state): whatever else is wrong, the bag is to be put aside for the
#: unit or discarded, never kept for a call to the prescriber.
BAG_UNFIT = ("bag", "already_infused", "recalled", "late_oos", "donor_not_cleared", "rejected", "expired",
             "not_released", "on_hold", "bag_expired", "post_thaw", "discarded", "returned")

#: The order a STOP lists its reasons in, kept here, the one place (judge sorts by it), because the ward's list of
#: bags out of the unit (ward_list.do_not_give) and a refused start lead with the FIRST reason alone: what makes the
#: bag unusable for anyone first (BAG_UNFIT: "call the prescriber" read first over a bag past its post-thaw limit sent
#: a nurse to the phone for a bag to throw away), then who the patient is and whose bag it is, then what is happening
#: to the patient, the course and the prescriber's decisions, and last what the ward can put right (a receipt not
#: recorded), so that the first line a tired nurse reads is never a routine instruction or a call to make when the
#: bag must not be given at all.
_FIRST = {code: rank for rank, code in enumerate(BAG_UNFIT + (
    "no_wristband", "unknown_wristband", "wrong_patient", "directed_other", "exceptional_other",
    "patient_withdrawn", "patient_not_enrolled",
    "other_running", "severe_reaction", "weight_changed", "weight_too_old", "course_short", "course_over", "dmso_24h",
    "not_prescribed", "not_on_ward"))}


def remaining(deadline: datetime | None, now: datetime | None = None) -> timedelta | None:
    return None if deadline is None else deadline - (now or utcnow())


#: bedside findings that mean stop a running infusion now: the product found unfit, or the patient withdrawn (not
#: "on_hold": a running bag is already "infused", and recalls hold only the bags not yet infused)
STOP_RUNNING = ("recalled", "late_oos", "donor_not_cleared", "rejected", "patient_withdrawn")


def running_under(session: Session, infusion: Infusion, bag: Bag) -> Prescription | None:
    """The signed prescription whose allocation the running bag is given under: the bag's latest allocation to this
    patient (an infused bag is never allocated again; it keeps its allocation when its course is stopped, and it is
    found even if its active_bag_id were cleared), or None."""
    row = session.execute(
        select(Allocation.prescription_id).join(Prescription, Prescription.id == Allocation.prescription_id)
        .where(Allocation.bag_id == bag.id, Allocation.patient_id == infusion.patient_id,
               Prescription.locked_at.is_not(None))
        .order_by(Allocation.id.desc()).limit(1)).first()
    return session.get(Prescription, row[0]) if row is not None else None


def course_stopped_words(session: Session, infusion: Infusion, bag: Bag) -> str | None:
    """The prescriber's STOP when the prescription that allocated the running bag was stopped or cancelled since the
    infusion started (prescriptions.cancel: its status and cancelled_* say who, when and why), else None. A course
    completed (every bag given and every infusion ended: patients.course.course_completed) has no bag running, and a
    course whose last bag runs stays "active" until it is closed: neither says STOP."""
    from mscbatch.auth.models import User

    prescription = running_under(session, infusion, bag)
    if prescription is None or prescription.status not in ("stopped", "cancelled") \
            or prescription.cancelled_at is None or prescription.cancelled_at < infusion.started_at:
        return None
    who = session.get(User, prescription.cancelled_by_id) if prescription.cancelled_by_id else None
    by = f" ({who.full_name})" if who is not None else ""
    what = "STOPPED THE COURSE" if prescription.status == "stopped" else "CANCELLED THE PRESCRIPTION"
    reason = (prescription.cancel_reason or "").strip() or "no reason given"
    return (f"The prescriber{by} {what} at {local_and_utc(prescription.cancelled_at)} ({reason}): stop this bag and "
            "call the prescriber.")


def stop_running(session: Session, infusion: Infusion, bag: Bag | None, patient: Patient | None,
                 label_key: str) -> list[str]:
    """While an infusion runs, what has since made its bag unfit (a recall, a late failed test, a donor reopened),
    or the prescriber's stop of its course (course_stopped_words): any mismatch suspends the infusion (DOMAIN.md 8).
    The infusion page, its polls, the ward's running list and the API's infusion all say it, from here, so the nurse
    at the bedside and the ward scanner app are told the same thing in the same words."""
    if infusion.ended_at is not None or bag is None or patient is None:
        return []
    stopped = course_stopped_words(session, infusion, bag)
    verdict = evaluate(session, patient.wristband_id, bag.din + bag.check_character, label_key)
    found = [finding.message for finding in verdict.failures if finding.code in STOP_RUNNING]
    if not any(finding.code == "recalled" for finding in verdict.failures):
        # a recall says so through the lot's status and the bags' holds, but a lot that expired meanwhile stays
        # "expired" (final) and a running bag, infused, is never held: the recall covering the lot says it then
        lot = session.get(Lot, bag.lot_id)
        if lot is not None and recalls_covering(session, lot):
            found.insert(0, f"Lot {lot.lot_number} {LOT_ENDED['recalled']}.")
    if stopped is not None:  # the prescriber's own words first: the one to call
        found.insert(0, stopped)
    return found
