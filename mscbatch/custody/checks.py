"""The bedside check: one function that answers MATCHES or STOP with every failed check in plain words.

Hard stops (DOMAIN.md section 8, issue 7 point 5): a label code that is not genuine, an unknown bag or
wristband, a lot not released (or rejected, recalled, expired; an exceptional release for another patient),
a bag on hold, returned or discarded, an expired bag, the post-thaw limit passed, a bag not prescribed to THIS
patient by a signed prescription, a directed product for another recipient, a bag already infused, a bag not
(yet) on the ward. Words are written for a tired nurse at 3 a.m.: what is wrong and what to do.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.core.identifiers import IdentifierError, parse_din
from mscbatch.core.label_token import TokenInvalid, verify_token
from mscbatch.database import utcnow
from mscbatch.donors.models import Donor
from mscbatch.lots.models import Bag, Lot
from mscbatch.lots.queries import product_of, site_config
from mscbatch.patients.models import Patient
from mscbatch.patients.queries import allocation_of_bag, patient_by_wristband
from mscbatch.release.queries import release_state

CALL_UNIT = "Do not give it. Call the cell therapy unit."
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
    check_id: int | None = None

    @property
    def matches(self) -> bool:
        return not self.failures

    def stop(self, code: str, message: str) -> None:
        self.failures.append(Finding(code, message))


def hold_of(session: Session, bag_id: int) -> str | None:
    """Why the bag is on hold (a recall), or None.

    CALL SITE (recall package, issue 7, built by the labelling / recall engineer):
    mscbatch.recall.queries.bag_hold(session, bag_id) -> str | None. Until that module exists no bag is
    held by a recall (a bag in the on_hold STATE is still refused below).
    """
    try:
        from mscbatch.recall.queries import bag_hold  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return bag_hold(session, bag_id)


def resolve_bag(session: Session, scanned: str, label_key: str) -> tuple[Bag | None, str | None]:
    """(bag, problem): the bag a scan names, from a label token (URL or bare) or a typed DIN with its K."""
    text = (scanned or "").strip()
    if not text:
        return None, "No bag was scanned. Scan the QR code on the bag label."
    compact = "".join(text.split())
    if _TOKEN_LIKE.search(compact):
        try:
            ref = verify_token(text, label_key)
        except TokenInvalid as invalid:
            return None, f"The code on the bag label is not genuine ({invalid.reason}). {CALL_UNIT}"
    else:
        try:
            din = parse_din(compact)
        except IdentifierError as error:
            return None, f"The bag number typed is not valid ({error}). Scan the label's QR code or type again."
        if len(compact) != 14:
            return None, ("Type all 14 characters of the bag number (DIN), including the boxed check character "
                          f"at the end (it should be {din.check_character}).")
        ref = compact.upper()
    bag = session.scalar(select(Bag).where(Bag.din == ref[:13]))
    if bag is None or (len(ref) == 14 and bag.check_character != ref[13]):
        return None, f"No bag {ref[:13]} exists in the unit's records. {CALL_UNIT}"
    return bag, None


def thawed_at(session: Session, bag_id: int) -> datetime | None:
    from mscbatch.custody.models import CustodyEvent

    return session.scalar(select(CustodyEvent.occurred_at).where(
        CustodyEvent.bag_id == bag_id, CustodyEvent.kind == "thawed").order_by(CustodyEvent.id.desc()).limit(1))


def _when(moment: datetime) -> str:
    local = moment.astimezone(site_config().tz)
    return f"{local:%d %b %Y %H:%M} ({moment:%H:%M} UTC)"


def evaluate(session: Session, wristband: str, bag_scan: str, label_key: str,
             now: datetime | None = None) -> BedsideResult:
    """Run every check. Reads only: the caller records the result."""
    from mscbatch.custody.models import Infusion

    now = now or utcnow()
    result = BedsideResult()
    wristband = (wristband or "").strip()
    if not wristband:
        result.stop("no_wristband", "No wristband was scanned. Scan the patient's wristband.")
    else:
        result.patient = patient_by_wristband(session, wristband)
        if result.patient is None:
            result.stop("unknown_wristband", "This wristband is not known. Check the patient's identity before "
                                             "anything else.")
    bag, problem = resolve_bag(session, bag_scan, label_key)
    if bag is None:
        result.stop("bag", problem or "Unknown bag.")
        return result
    lot = session.get(Lot, bag.lot_id)
    assert lot is not None
    result.bag, result.lot = bag, lot
    patient = result.patient

    infusion = session.scalar(select(Infusion).where(Infusion.bag_id == bag.id))
    if bag.status == "infused" or infusion is not None:
        since = f" on {_when(infusion.started_at)}" if infusion else ""
        result.stop("already_infused", f"This bag has ALREADY BEEN INFUSED{since}. Never give a bag twice.")

    state = release_state(session, lot)
    if lot.status == "rejected":
        result.stop("rejected", f"Lot {lot.lot_number} was REJECTED. {CALL_UNIT}")
    elif lot.status == "recalled":
        result.stop("recalled", f"Lot {lot.lot_number} has been RECALLED. {CALL_UNIT}")
    elif lot.status == "expired":
        result.stop("expired", f"Lot {lot.lot_number} has EXPIRED. {CALL_UNIT}")
    elif not state.released:
        result.stop("not_released", f"Lot {lot.lot_number} is NOT RELEASED for use "
                                    f"({lot.status.replace('_', ' ')}). {CALL_UNIT}")
    elif state.exceptional:
        if patient is None or patient.code != state.patient_code:
            result.stop("exceptional_other", "This bag was released as an exception for ANOTHER patient "
                                             f"({state.patient_code}) only. {CALL_UNIT}")
        else:
            result.notes.append("Exceptional release of an out-of-specification batch for this patient: the "
                                "clinician has accepted it.")
    elif state.conditional:
        result.notes.append("Conditional release: a test result is still pending ("
                            + ", ".join(state.pending_tests) + "). The unit will tell the clinician the result.")

    hold = hold_of(session, bag.id)
    if hold or bag.status == "on_hold":
        result.stop("on_hold", f"This bag is ON HOLD{f' ({hold})' if hold else ''}. {CALL_UNIT}")
    if bag.status == "discarded":
        result.stop("discarded", f"This bag was DISCARDED. {CALL_UNIT}")
    elif bag.status == "returned":
        result.stop("returned", f"This bag was RETURNED to the unit. {CALL_UNIT}")
    elif bag.status in ("stored", "allocated", "dispatched"):
        result.stop("not_on_ward", "This bag has not been received on the ward (it is "
                                   f"{bag.status}). Record its receipt first.")

    if bag.expires_at <= now:
        result.stop("bag_expired", f"This bag EXPIRED on {_when(bag.expires_at)}. {CALL_UNIT}")
    thawed = thawed_at(session, bag.id) if bag.status in ("thawed", "infused") else None
    if thawed is not None:
        limit = product_of(lot).post_thaw_limit
        deadline = thawed + limit
        result.thawed_at, result.post_thaw_deadline = thawed, deadline
        if now > deadline and bag.status == "thawed":
            minutes = int(limit.total_seconds() // 60)
            result.stop("post_thaw", f"Too long since thawing: thawed at {_when(thawed)}; it had to be given "
                                     f"within {minutes} minutes, by {_when(deadline)}. {CALL_UNIT}")

    allocation = allocation_of_bag(session, bag.id)
    if allocation is None:
        result.stop("not_prescribed", "This bag is not prescribed for any patient (no signed prescription). "
                                      + CALL_UNIT)
    elif patient is not None and allocation.patient.id != patient.id:
        result.stop("wrong_patient", f"WRONG PATIENT. This bag is prescribed for patient {allocation.patient.code}, "
                                     f"not for {patient.code} who wears this wristband.")
    donor = session.get(Donor, lot.donor_id)
    directed = product_of(lot).is_directed or (donor is not None and donor.donor_type == "familial")
    if directed:
        recipient = donor.recipient_code if donor is not None else None
        if patient is not None and recipient != patient.code:
            result.stop("directed_other", f"This is a DIRECTED donation for one recipient only ({recipient or 'none named'}), "
                                          f"not for {patient.code}. {CALL_UNIT}")
    return result


def remaining(deadline: datetime | None, now: datetime | None = None) -> timedelta | None:
    return None if deadline is None else deadline - (now or utcnow())
