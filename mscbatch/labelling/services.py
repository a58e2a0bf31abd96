"""Printing bag labels (issue 7, DOMAIN.md section 7) and verifying a scanned label code.

The pure label code (mscbatch.labels) draws a LabelData; this service decides what goes on it from the bag,
its lot, the product and site configuration, the donor's intended recipient (directed products) and the
lot's release state, and records every print (LabelPrint: who, when, which bags, which layout, reprint and
why). Labels are printed only for bags of a lot in quarantine, released or conditionally released, and only for
a bag the verification page would not call unusable (expired, donor not approved or reopened, late OOS, past its
post-thaw limit, returned: the same rules, `_not_usable`) and in the unit (custody.services.STATELESS_FROM["labelled"]:
never a bag on the ward); a bag printed before is a reprint, which needs a reason and is marked "REPRINT". Each
print item records the lot's release state at print time, so that custody dispatch can refuse a bag whose latest
label is not its released one (dispatch_label_problem).
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.core.identifiers import IdentifierError, din_shown, parse_din, parse_product_code
from mscbatch.core.label_token import TokenInvalid, make_token_url, verify_token
from mscbatch.core.site_config import effective_storage_limit_c
from mscbatch.custody import log as custody_log
from mscbatch.database import locked_row, utcnow
from mscbatch.donors.clearance import donor_clearance
from mscbatch.donors.models import Donor
from mscbatch.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from mscbatch.labelling.models import PRINT_FORMATS, LabelPrint, LabelPrintItem
from mscbatch.labels import LabelData, LabelError, recipient_words
from mscbatch.labels.layout import BAG_LAYOUT, LabelLayout, load_layout
from mscbatch.labels.render import render_labels, render_sheet
from mscbatch.lots.models import Bag, Lot
from mscbatch.lots.queries import bags_of, product_of
from mscbatch.lots.services import lock_lot
from mscbatch.recall.queries import bag_hold
from mscbatch.site import site_config

PRINTABLE_LOT_STATES = ("quarantine", "released", "conditional_release")
NOT_PRINTABLE_BAG_STATES = ("infused", "discarded")
BIOHAZARD = "BIOHAZARD"

PRINTERS = ("technician", "qa")  # who prints and reprints bag labels (the pages and this service)
#: the longest reason a print takes: each bag's "labelled" custody event keeps at most 2000 characters (custody.log)
MAX_PRINT_REASON = 2000


# ---- what a label prints ---------------------------------------------------------------------------------

def release_marker(session: Session, lot: Lot, state: Any = None) -> str | None:
    """The short marker printed in the inverse box: quarantine, conditional or exceptional release."""
    from mscbatch.release.queries import release_state

    if lot.status == "quarantine":
        return "QUARANTINE not for clinical use"
    state = state or release_state(session, lot)
    if state.exceptional:
        return "EXCEPTIONAL RELEASE"
    if state.conditional:
        return "CONDITIONAL RELEASE"
    return None


def intended_recipient(session: Session, lot: Lot, bag: Bag | None = None, state: Any = None) -> str | None:
    """The recipient printed (under "For use by intended recipient only") on a bag that is one patient's alone:

    - a directed product: the trial patient code of the donor's intended recipient. A bag is directed when the
      product code frozen on it says so (the configuration may change later; the bag does not);
    - an exceptionally released lot (an OOS batch released for one named patient, EU GMP Part IV 11.5): that
      patient's code (release_state(...).patient_code), which the bedside check holds the bag to.

    With the patient's initials and date of birth when the patient is registered. A directed lot exceptionally
    released for another patient than its donor's recipient is refused: a label names one recipient."""
    from mscbatch.release.queries import release_state

    directed = parse_product_code(bag.product_code).is_directed if bag is not None else product_of(lot).is_directed
    code = ""
    if directed:
        donor = session.get(Donor, lot.donor_id)
        code = (donor.recipient_code or "").strip() if donor else ""
        if not code:
            raise Conflict(f"Lot {lot.lot_number} is a directed product but its donor names no intended recipient: "
                           "record the recipient on the donor before printing labels.")
    state = state or release_state(session, lot)
    if state.exceptional:
        named = (state.patient_code or "").strip()
        if not named:
            raise Conflict(f"Lot {lot.lot_number} was exceptionally released but its release names no patient: "
                           "no label is printed. Ask QA to review the exceptional release.")
        if code and code.upper() != named.upper():
            raise Conflict(f"Lot {lot.lot_number} is a directed product for {code} but was exceptionally released "
                           f"for patient {named}: a label names one recipient, so none is printed. Ask QA.")
        code = code or named
    if not code:
        return None
    from mscbatch.patients.queries import patient_by_code

    patient = patient_by_code(session, code)
    if patient is None:
        return code
    return recipient_words(patient.code, patient.initials, patient.date_of_birth)


def label_data(session: Session, bag: Bag, lot: Lot, *, base_url: str, key: bytes | str,
               reprint: bool = False, state: Any = None) -> LabelData:
    """Map a bag to everything its label prints (no patient data in the QR: only DIN + K and a signature).
    `state`: the lot's release_state, read once per print (the marker, the recipient and the print record agree)."""
    from mscbatch.release.queries import release_state

    state = state or release_state(session, lot)
    product = product_of(lot)
    trial = (product.trial or "").strip()
    if not trial:  # the loader refuses a product without one; a label never says "clinical trial" without its id
        raise LabelError(f"product {product.id} has no trial id (config/products.toml, key trial): the label "
                         "prints \"For clinical trial use only\" with the trial id")
    site = site_config()
    din = parse_din(bag.din + bag.check_character)
    biohazard = parse_product_code(bag.product_code).is_biohazard  # the bag's own code
    warnings = [BIOHAZARD] if biohazard else []
    limit = effective_storage_limit_c(site, product)
    return LabelData(
        din=din, product_name=lot.product_name, product_class=lot.product_class, product_code=bag.product_code,
        division_text=f"bag {bag.bag_number} of {bag.bag_count}", lot_number=lot.lot_number,
        collection_facility=lot.collection_site, processing_facility=site.facility_name,
        collection_date=lot.collection_at.astimezone(site.tz).date(), volume_ml=Decimal(bag.volume_ml),
        total_cells=int(bag.total_cells), cells_per_ml=Decimal(bag.cells_per_ml),
        dmso_percent=Decimal(bag.dmso_percent), storage_temperature=f"{limit:f} \u00b0C or colder",
        expiry=bag.expires_at, timezone_name=site.timezone, trial_id=trial,
        token_url=make_token_url(base_url, din.typed, key),
        intended_recipient=intended_recipient(session, lot, bag, state),
        warnings=tuple(warnings), reprint=reprint, release_marker=release_marker(session, lot, state),
        cell_basis=lot.cell_basis or "viable", biohazard=biohazard)


# ---- printing -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PrintedLabels:
    pdf: bytes
    print_id: int
    filename: str
    reprint: bool


def check_printable(lot: Lot) -> None:
    if lot.status not in PRINTABLE_LOT_STATES:
        raise Conflict(f"Labels are printed only for bags of a lot in quarantine or released: lot {lot.lot_number} "
                       f"is {lot.status.replace('_', ' ')}. No label was printed.")


def label_refusals(session: Session, lot: Lot, bags: Sequence[Bag], now: datetime | None = None,
                   state: Any = None) -> dict[int, tuple[str, ...]]:
    """Why each bag may get no label now (bag id -> reasons, only bags with one): the reasons the verification
    page gives for "DO NOT USE" (`_not_usable`, the same rules: expired, donor reopened, late OOS, past its
    post-thaw limit, returned, on hold...). A fresh label on such a bag would look like a bag fit for use.
    One exception: the bags of a lot in quarantine are labelled, and their label says "QUARANTINE not for clinical
    use", so a quarantine lot's bags are judged on everything else, as if the lot were released.
    `state`: the lot's release_state when the caller has read it already."""
    from mscbatch.core.states import effective_bag_status
    from mscbatch.release.queries import release_state

    now = now or utcnow()
    release = state or release_state(session, lot)
    lot_state = "released" if lot.status == "quarantine" else lot.status
    refused = {}
    for bag in bags:
        status = effective_bag_status(lot_state, bag.status, on_hold=bag_hold(session, bag.id) is not None)
        reasons = _not_usable(session, bag, lot, release, status, now)
        if reasons:
            refused[bag.id] = reasons
    return refused


def check_usable_for_labels(session: Session, lot: Lot, bags: Sequence[Bag], state: Any = None) -> None:
    """Refuse the print, naming each bag and why, when a bag must not be used (label_refusals)."""
    refused = label_refusals(session, lot, bags, state=state)
    if not refused:
        return
    named = " ".join(f"Bag {din_shown(bag)} ({bag.bag_number} of {bag.bag_count}) must not be used: "
                     f"{'; '.join(refused[bag.id])}." for bag in bags if bag.id in refused)
    raise Conflict(f"No label was printed: a label is printed only for a bag that may still be used. {named}")


def printed_before(session: Session, bag_ids: Sequence[int]) -> set[int]:
    if not bag_ids:
        return set()
    return set(session.scalars(select(LabelPrintItem.bag_id).where(LabelPrintItem.bag_id.in_(list(bag_ids)))))


def labelled_from() -> tuple[str, ...]:
    """The bag states in which a label may be printed: in the unit (custody.services.STATELESS_FROM["labelled"],
    the rule custody's own "labelled" event follows). Imported here: custody imports this module."""
    from mscbatch.custody.services import STATELESS_FROM

    return STATELESS_FROM["labelled"]


def _selected_bags(session: Session, lot: Lot, bag_id: int | None) -> list[Bag]:
    """The bags to print, each locked and read afresh, in id order (two prints of one bag run one after the
    other: the second sees the first's print record, so it is a reprint, never a second original). One bag
    (bag_id) is refused when it is not in the unit, infused, discarded or on hold; a whole lot leaves out the
    bags no longer in the unit (on the ward, infused, discarded)."""
    if bag_id is not None:
        bag = session.get(Bag, bag_id)
        if bag is None or bag.lot_id != lot.id:
            raise NotFound(f"Lot {lot.lot_number} has no bag with id {bag_id}.")
        ids = [bag.id]
    else:
        ids = [b.id for b in bags_of(session, lot.id)]
    locked = {row_id: locked_row(session, Bag, row_id, "bag") for row_id in sorted(ids)}
    chosen = [locked[row_id] for row_id in ids]  # in bag-number order (bags_of) for the labels
    in_unit = labelled_from()
    if bag_id is None:
        chosen = [b for b in chosen if b.status in in_unit]
    if not chosen:
        raise Conflict(f"Lot {lot.lot_number} has no bag to label: a label is printed only for a bag in the unit "
                       f"({_words(in_unit)}).")
    for bag in chosen:
        if bag.status in NOT_PRINTABLE_BAG_STATES:
            raise Conflict(f"Bag {din_shown(bag)} is {bag.status.replace('_', ' ')}: it gets no new label.")
        if bag.status not in in_unit:
            raise Conflict(f"Bag {din_shown(bag)} ({bag.bag_number} of {bag.bag_count}) is {bag.status.replace('_', ' ')}, "
                           f"out of the unit: a label is printed only for a bag in the unit ({_words(in_unit)}). "
                           "No label was printed.")
        hold = bag_hold(session, bag.id)
        if hold:
            raise Conflict(f"Bag {din_shown(bag)} is {hold}. No label is printed for a bag on hold.")
    return chosen


def _words(states: Sequence[str]) -> str:
    names = [state.replace("_", " ") for state in states]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)


def print_labels(session: Session, actor: Any, lot_id: int, *, print_format: str, base_url: str,
                 key: bytes | str, bag_id: int | None = None, reason: str = "",
                 layout: LabelLayout | None = None, paper: str = "A4") -> PrintedLabels:
    """Render the labels of one bag or a whole lot (label-printer pages, or an A4 sheet) and record the print.

    A bag printed before makes this a reprint: refused without a reason; the reprinted labels say "REPRINT".
    """
    if actor is None or not any(actor.has_role(role) for role in PRINTERS):
        raise PermissionDenied("Only a technician or QA prints bag labels.")
    if print_format not in PRINT_FORMATS:
        raise ValidationFailed(f"Unknown print format {print_format!r}.", field="print_format")
    if print_format == "bag" and bag_id is None:
        raise ValidationFailed("Choose the bag to print.", field="bag_id")
    from mscbatch.release.queries import release_state

    # the lot row locked and read afresh before anything is decided, then its bags (lot then bags: the order
    # corrections take): a rejection, recall or late result (each locks the lot first) committed since the page
    # was read is seen here, or waits for this print. Its status read before the lock let a label be printed for
    # a lot rejected or recalled meanwhile (PostgreSQL, READ COMMITTED).
    lot = lock_lot(session, lot_id)
    check_printable(lot)
    chosen = _selected_bags(session, lot, None if print_format == "lot" else bag_id)  # locked: read after this
    state = release_state(session, lot)  # read once: the refusals, the labels and the print record agree
    check_usable_for_labels(session, lot, chosen, state)
    again = printed_before(session, [b.id for b in chosen])
    reason = (reason or "").strip()
    if len(reason) > MAX_PRINT_REASON:  # the labelled custody events keep it whole, never cut
        raise ValidationFailed(f"The reason has at most {MAX_PRINT_REASON} characters (this one has {len(reason)}). "
                               "Nothing was printed.", field="reason")
    if again and not reason:
        dins = ", ".join(din_shown(b) for b in chosen if b.id in again)
        raise ValidationFailed(f"Labels were printed before for {dins}: a reprint needs a reason (e.g. label "
                               "damaged). Nothing was printed.", field="reason")
    layout = layout or load_layout(BAG_LAYOUT)
    try:
        labels = [label_data(session, bag, lot, base_url=base_url, key=key, reprint=bag.id in again, state=state)
                  for bag in chosen]
        pdf = render_sheet(layout, labels, paper) if print_format == "sheet" else render_labels(layout, labels)
    except LabelError as error:
        raise Conflict(f"The label cannot be printed: {error}") from error
    reprint = bool(again)
    with use_case(session, actor, reason or None):
        job = LabelPrint(lot_id=lot.id, print_format=print_format, layout_id=layout.id,
                         layout_version=layout.version, layout_sha256=layout.sha256, bag_count=len(chosen),
                         reprint=reprint, reason=reason, pdf_sha256=hashlib.sha256(pdf).hexdigest(),
                         printed_by_id=actor.id, printed_at=utcnow())
        session.add(job)
        session.flush()
        session.add_all([LabelPrintItem(print_id=job.id, bag_id=bag.id, reprint=bag.id in again,
                                        lot_status=lot.status, released=state.released) for bag in chosen])
        for bag in chosen:
            custody_log.note(session, actor, bag, "labelled", reason=reason,
                             details={"label_print_id": job.id, "reprint": bag.id in again, "layout": layout.id})
        job_id = job.id
    stem = chosen[0].din if len(chosen) == 1 else lot.lot_number
    filename = f"labels-{stem}{'-sheet' if print_format == 'sheet' else ''}{'-REPRINT' if reprint else ''}.pdf"
    return PrintedLabels(pdf=pdf, print_id=job_id, filename=filename, reprint=reprint)


# ---- the released label, before a bag leaves the unit ---------------------------------------------------------

RELEASED_LABEL_FIRST = "Print the bag's released label first"


def latest_labels(session: Session, bag_ids: Sequence[int]) -> dict[int, LabelPrintItem]:
    """bag id -> the bag's latest label print item (bags never labelled are left out)."""
    if not bag_ids:
        return {}
    latest = (select(LabelPrintItem.bag_id, func.max(LabelPrintItem.id).label("item_id"))
              .where(LabelPrintItem.bag_id.in_(list(bag_ids))).group_by(LabelPrintItem.bag_id).subquery())
    items = session.scalars(select(LabelPrintItem).join(latest, LabelPrintItem.id == latest.c.item_id))
    return {item.bag_id: item for item in items}


def label_problem_of(item: LabelPrintItem | None) -> str | None:
    """Why a bag whose latest label print is `item` may not leave the unit with it (pure), or None."""
    if item is None:
        return f"{RELEASED_LABEL_FIRST}: it was never labelled"
    if item.released:
        return None
    if item.lot_status is None:
        return (f"{RELEASED_LABEL_FIRST}: its last label was printed before labels recorded the lot's release "
                "state (reprint it)")
    if item.lot_status == "quarantine":
        return f"{RELEASED_LABEL_FIRST}: its last label was printed in quarantine"
    return f"{RELEASED_LABEL_FIRST}: its last label was printed while the lot was {item.lot_status.replace('_', ' ')}"


#: what a bag label prints of the bag's content (label_data); a change of one after the print makes the label wrong
LABELLED_CONTENT = ("volume_ml", "cells_per_ml", "total_cells", "dmso_percent")


def relabel_after_correction(session: Session, bag_ids: Sequence[int]) -> set[int]:
    """The bags whose content (volume, cells, DMSO: what their label prints) was changed after their latest label
    print (lots.corrections.correct_bag_content): the label they wear shows the old values. Read off the audit
    trail's order (seq, one chain for every writer), so a correction and a print a moment apart are never tied."""
    latest = latest_labels(session, bag_ids)
    if not latest:
        return set()
    printed = {entity: seq for entity, seq in session.execute(select(AuditEvent.entity_id, AuditEvent.seq).where(
        AuditEvent.entity_type == LabelPrintItem.__tablename__, AuditEvent.action == "insert",
        AuditEvent.entity_id.in_([str(item.id) for item in latest.values()])))}
    changed = {entity: seq for entity, seq in session.execute(
        select(AuditEvent.entity_id, func.max(AuditEvent.seq)).where(
            AuditEvent.entity_type == Bag.__tablename__, AuditEvent.action == "update",
            AuditEvent.field.in_(LABELLED_CONTENT), AuditEvent.entity_id.in_([str(bag_id) for bag_id in latest]))
        .group_by(AuditEvent.entity_id))}
    return {bag_id for bag_id, item in latest.items()
            if str(bag_id) in changed and changed[str(bag_id)] > printed.get(str(item.id), 0)}


def dispatch_label_problem(session: Session, bag: Bag) -> str | None:
    """Why the bag may not leave the unit as labelled, in plain words, or None when its latest label print was
    made while the lot was released (a conditional or exceptional release counts: that label carries the
    release's marker, and an exceptional release's patient) and after the last change of the content it prints.
    The label a bag carries is its latest print: a QUARANTINE label reprinted after a released one is what the bag
    now wears. Custody dispatch asks this."""
    item = latest_labels(session, [bag.id]).get(bag.id)
    if item is not None and bag.id in relabel_after_correction(session, [bag.id]):
        return (f"{RELEASED_LABEL_FIRST}: its content (volume, cells per mL, DMSO) was corrected after its last "
                "label was printed, so that label shows the old values")
    return label_problem_of(item)


@dataclass(frozen=True)
class PrintRecord:
    job: LabelPrint
    printed_by: str
    dins: list[str]


def prints_of_lot(session: Session, lot_id: int) -> list[PrintRecord]:
    from mscbatch.auth.models import User

    jobs = list(session.scalars(select(LabelPrint).where(LabelPrint.lot_id == lot_id).order_by(LabelPrint.id.desc())))
    out = []
    for job in jobs:
        user = session.get(User, job.printed_by_id)
        dins = [din_shown(bag) for bag in session.scalars(  # as the labels print them, with K
            select(Bag).join(LabelPrintItem, LabelPrintItem.bag_id == Bag.id)
            .where(LabelPrintItem.print_id == job.id).order_by(Bag.bag_number))]
        out.append(PrintRecord(job=job, printed_by=user.full_name if user else "?", dins=dins))
    return out


# ---- verification of a scanned code ------------------------------------------------------------------------

@dataclass(frozen=True)
class Verification:
    """What a scanned label code says. Holds no patient data (the verification page is public), except an
    exceptional release's patient in `release_flag` when verify_label was asked for a reader of patients."""

    valid: bool
    problem: str | None = None
    #: of a refused code: "unreadable" (a read cut short, damaged, not a label code: scan again) or "forged" (a whole
    #: code whose signature is not this unit's); None for a code refused for what it names (no such bag)
    problem_kind: str | None = None
    bag_ref: str | None = None
    bag_id: int | None = None
    din: str | None = None
    din_display: str | None = None
    product_name: str | None = None
    product_class: str | None = None
    product_code: str | None = None
    division_text: str | None = None
    lot_number: str | None = None
    lot_status: str | None = None
    release_flag: str | None = None
    bag_status: str | None = None
    expires_at: datetime | None = None
    expires_local: str | None = None
    expired: bool = False
    on_hold: bool = False
    hold_reason: str | None = None
    usable: bool = False
    # why the bag must not be used, in plain words (no patient or donor identity: the page is public)
    reasons: tuple[str, ...] = ()


EXCEPTIONAL_WITHOUT_PATIENT = "EXCEPTIONAL RELEASE: for one named patient only"


def shown_release_flag(release: Any, *, sees_patients: bool) -> str | None:
    """The release flag as shown to a reader: an exceptional release names its one patient only to those who
    read patients (the public QR page never: anyone can scan a label)."""
    if release.exceptional and not release.failed_late and not sees_patients:
        return EXCEPTIONAL_WITHOUT_PATIENT
    return release.flag or None


def verify_label(session: Session, text: str, key: bytes | str, *, sees_patients: bool = False) -> Verification:
    """Check a scanned code's signature and look the bag up. A forged or altered code -> valid False.
    `sees_patients`: the reader may read patients (the release flag then names an exceptional release's
    patient); false for the public page."""
    from mscbatch.core.states import effective_bag_status
    from mscbatch.release.queries import release_state

    try:
        bag_ref = verify_token(text, key)
    except TokenInvalid as invalid:
        return Verification(valid=False, problem=invalid.reason, problem_kind=invalid.kind)
    try:
        din = parse_din(bag_ref)
    except IdentifierError:
        return Verification(valid=False, bag_ref=bag_ref, problem="the code's bag reference is not a DIN")
    bag = session.scalar(select(Bag).where(Bag.din == din.text))
    if bag is None:
        return Verification(valid=False, bag_ref=bag_ref, problem=f"no bag with DIN {din.display} in this unit")
    lot = session.get(Lot, bag.lot_id)
    assert lot is not None
    hold = bag_hold(session, bag.id)
    status = effective_bag_status(lot.status, bag.status, on_hold=hold is not None)
    release = release_state(session, lot)
    now = utcnow()
    reasons = _not_usable(session, bag, lot, release, status, now)
    if relabel_after_correction(session, [bag.id]):  # here only: a print (label_refusals) is what cures it
        reasons += (LABEL_OUT_OF_DATE,)
    local = bag.expires_at.astimezone(site_config().tz)
    return Verification(
        valid=True, bag_ref=bag_ref, bag_id=bag.id, din=bag.din, din_display=din.display,
        product_name=lot.product_name, product_class=lot.product_class, product_code=bag.product_code,
        division_text=f"bag {bag.bag_number} of {bag.bag_count}", lot_number=lot.lot_number,
        lot_status=lot.status, release_flag=shown_release_flag(release, sees_patients=sees_patients),
        bag_status=status.status,
        expires_at=bag.expires_at, expires_local=f"{local:%Y-%m-%d %H:%M} {local.tzname()}",
        expired=bag.expires_at <= now, on_hold=hold is not None, hold_reason=hold,
        usable=not reasons, reasons=reasons)


def _not_usable(session: Session, bag: Bag, lot: Lot, release: Any, status: Any, now: datetime) -> tuple[str, ...]:
    """Why the bag must not be used: the hard stops of the bedside check that a label alone can show (a page
    that said only "genuine" in green for a bag the bedside check refuses would reassure the wrong way). Who the
    bag is for is the bedside check's to say; it needs the wristband."""
    from mscbatch.custody.checks import past_post_thaw_limit, thawed_at

    reasons = [] if status.usable else [status.reason]
    if release.failed_late:
        reasons.append("a test of the lot failed after its conditional release (late OOS): not for use while "
                       "it is investigated")
    donor = donor_not_cleared(session, lot.donor_id)
    if donor is not None:
        reasons.append(f"{donor}: not for use" if donor == DONOR_INELIGIBLE else f"{donor}: not for use until QA has decided")
    if bag.expires_at <= now:
        reasons.append("the bag has expired")
    if bag.status == "thawed":
        limit = past_post_thaw_limit(bag, lot, session.scalar(select(thawed_at(bag.id))), now)  # the bedside's rule
        if limit:
            reasons.append(f"too long since thawing: it had to be given within "
                           f"{int(limit.total_seconds() // 60)} minutes")
    return tuple(reasons)


#: a label scanned after its bag's content was corrected: every label the bag wears was printed before (the latest
#: print is older than the correction), so the one in hand shows the old volume, cells or DMSO
LABEL_OUT_OF_DATE = ("the bag's content (volume, cells or DMSO) was corrected after this label was printed: the label "
                     "shows the old values and must be printed again before the bag leaves the unit")
DONOR_NOT_APPROVED_YET = "the donor's eligibility is not approved yet (QA has not signed it)"
DONOR_REOPENED = "new information reopened the donor's eligibility"
DONOR_INELIGIBLE = "QA judged the donor not eligible"
DONOR_WORDS = {"not_approved_yet": DONOR_NOT_APPROVED_YET, "reopened": DONOR_REOPENED, "ineligible": DONOR_INELIGIBLE}


def donor_not_cleared(session: Session, donor_id: int) -> str | None:
    """Why the lot's donor does not clear its bags, in words that are true of the donor's history
    (donors.clearance judges it), or None when QA's approval stands."""
    verdict = donor_clearance(session, donor_id)
    return None if verdict is None else DONOR_WORDS[verdict]


def bag_lot(session: Session, bag_id: int) -> tuple[Bag, Lot]:
    bag = session.get(Bag, bag_id)
    if bag is None:
        raise NotFound(f"No bag with id {bag_id}.")
    lot = session.get(Lot, bag.lot_id)
    assert lot is not None
    return bag, lot
