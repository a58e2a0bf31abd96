"""Prescription: the clinician signs the dose level, the weight used and the bags with their volumes; the
allocation reserves the bags for that patient (DOMAIN.md sections 6 and 8; issue 6 point 5).

Double booking is impossible, whoever runs concurrently:
- the prescription recalculates inside its transaction, from the bags the clinician saw in the dry run, and
  refuses if any of them has been taken meanwhile ("bag X was just allocated to another patient; recalculate");
- prescriptions of one protocol are serialised (PostgreSQL advisory transaction lock; SQLite BEGIN IMMEDIATE)
  so that the cohort count and the bag stock are read after the previous prescription committed;
- the chosen bag rows are locked (SELECT ... FOR UPDATE) and re-read before they are moved to "allocated"
  through the lots' state machine;
- and the database refuses a second ACTIVE allocation of a bag (UNIQUE bag_allocation.active_bag_id).
"""
from __future__ import annotations

import json
import zlib
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.core.identifiers import din_shown
from mscbatch.core.states import BAG, TransitionRefused, effective_bag_status
from mscbatch.custody import log as custody_log
from mscbatch.custody.services import lock_bag
from mscbatch.database import reading, utcnow
from mscbatch.errors import Conflict, ValidationFailed
from mscbatch.lots.models import Bag, Lot
from mscbatch.patients.inventory import (
    AlreadyInfused,
    DoseResult,
    allocation_data,
    already_infused,
    calculate,
)
from mscbatch.patients.models import (
    CANCELLED,
    COURSE_CLOSED,
    COURSE_STOPPED,
    PRESCRIBED,
    Allocation,
    Prescription,
    WeightMeasurement,
)
from mscbatch.patients.queries import (
    allocations_of,
    get_patient,
    get_prescription,
    lock_patient,
    prescriptions_of,
    protocol_of,
)
from mscbatch.patients.services import require_clinician
from mscbatch.signatures.services import sign

TAKEN = "Bag {din} was just allocated to another patient; recalculate."
#: bags a cancelled prescription lets go of without moving them: they can never be given nor go back into stock
#: (a discarded bag; a bag returned from the ward, which QA assesses), so they must not keep the patient from a new
#: prescription. A bag on its way or on the ward (dispatched, received, thawed) still refuses the cancel; an infused
#: bag keeps its allocation (the course is then "stopped").
GONE_FROM_STOCK = ("discarded", "returned")


def serialise_prescriptions(session: Session, protocol_id: str) -> None:
    """The protocol's prescription lock (PostgreSQL; SQLite serialises writers): taken by a prescription and by a
    withdrawal, so that no prescription of a patient being withdrawn is signed meanwhile."""
    _serialise(session, protocol_id)


def _serialise(session: Session, protocol_id: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(727006, :key)"),
                        {"key": zlib.crc32(protocol_id.encode()) & 0x7FFFFFFF})


def _lock_and_check(session: Session, bag_ids: list[int]) -> None:
    """Lock the bag rows and re-read them: any bag taken or no longer usable refuses the prescription."""
    rows = session.execute(select(Bag, Lot).join(Lot, Lot.id == Bag.lot_id).where(Bag.id.in_(bag_ids))
                           .order_by(Bag.id).with_for_update(of=Bag).execution_options(populate_existing=True)).all()
    found = {bag.id: (bag, lot) for bag, lot in rows}
    taken = set(session.scalars(select(Allocation.active_bag_id).where(Allocation.active_bag_id.in_(bag_ids))))
    for bag_id in bag_ids:
        if bag_id not in found:
            raise Conflict(f"Bag {bag_id} does not exist; recalculate.")
        bag, lot = found[bag_id]
        if bag.id in taken or bag.status == "allocated":
            raise Conflict(TAKEN.format(din=din_shown(bag)))
        status = effective_bag_status(lot.status, bag.status)
        if not status.usable or bag.status != "stored" or bag.expires_at <= utcnow():
            reason = status.reason if not status.usable else f"it is {bag.status.replace('_', ' ')}"
            if bag.expires_at <= utcnow():
                reason = "it has expired"
            raise Conflict(f"Bag {din_shown(bag)} can no longer be allocated ({reason}); recalculate.")


def _refuse_changed_weight(session: Session, result: DoseResult, weight_id: int) -> None:
    """The signature covers the weight the clinician saw in the dry run: a weight recorded since (by a colleague,
    a typo corrected) changes the volumes to draw, so the clinician must see the new calculation before signing."""
    if result.weight is not None and result.weight.id == weight_id:
        return
    seen = session.get(WeightMeasurement, weight_id)
    was = (f"{seen.weight_kg.normalize():f} kg (measured {seen.measured_on})"
           if seen is not None and seen.patient_id == result.patient.id else "another weight")
    now = (f"{result.weight.weight_kg.normalize():f} kg (measured {result.weight.measured_on})"
           if result.weight is not None else "no weight")
    raise Conflict(f"Weight: the patient's weight changed since the calculation. You saw {was}; the latest is "
                   f"{now}. Nothing was signed: calculate again and check the dose before signing.")


def _signed_calculation(allocation: Any, already: AlreadyInfused, repeat: str | None, *,
                        planned: bool) -> dict[str, Any]:
    """The calculation the signature covers; a repeat course adds its reason and what was already given.
    `planned`: the clinician gave a planned day (otherwise planned_at is only the moment of signing, which the
    dose sheet must not print as a deadline)."""
    data = allocation_data(allocation)
    data["infusion_planned"] = planned
    if repeat is not None:
        given = already.data()
        data["repeat_course"] = {"reason": repeat, "already_infused_cells": given["cells"],
                                 "already_infused_cells_per_kg": given["cells_per_kg"],
                                 "already_infused_words": given["words"],
                                 "already_infused_bag_ids": [b["bag_id"] for b in given["bags"]]}
    return data


def _refuse(result: DoseResult) -> None:
    if result.refusal is None:
        return
    if result.refusal.code == "dmso_limit":  # the dose itself breaks the DMSO rule: invalid, not a race
        later = result.refusal.later  # DMSO already given in the 24 hours before it: the planned time is the field
        raise ValidationFailed(f"Dose refused: {result.refusal.reason}. Nothing was signed."
                               + (f" {later}." if later else ""),
                               field="planned_at" if later else "dose_level_cells_per_kg")
    # a weight missing, too old at the planned infusion or unreadable is the weight's problem, not the dose level's:
    # the field is the request's weight (weight_id), which a newer weight replaces
    field = "weight_id" if result.refusal.code.startswith("weight_") else "dose_level_cells_per_kg"
    raise Conflict(f"Dose refused: {result.refusal.reason}.", field=field)


REPEAT = "repeat course"
#: a full new dose on top of cells already given is signed with a reason that says why ("x" said nothing), as the
#: clinical justification of a release (release.release)
REPEAT_REASON_LEAST = 20


def _why(reason: str) -> str:
    """The reason without the words "repeat course:" a clinician may type before it (they say nothing of why)."""
    if reason.lower().startswith(REPEAT):
        return reason[len(REPEAT):].lstrip(" :-").strip()
    return reason


def _withdrawn_words(code: str) -> str:
    return f"Patient {code} has been withdrawn from the trial: no prescription can be made."


def _repeat_course(already: AlreadyInfused, reason: str | None) -> str | None:
    """The repeat course's reason as recorded ("repeat course: ..."), when cells were already infused to the patient
    under the protocol (None otherwise); refused without one. The new dose is never reduced by what was given:
    whether to give a full course again is the clinician's decision, written down and signed."""
    if not already.bags:
        return None
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed(f"Repeat course: {already.words}. This prescription gives its full dose on top of "
                               "that. Write the reason for the repeat course (e.g. \"repeat course: pump failure "
                               "after the first bag, decided with the investigator\") to sign it; nothing was signed.",
                               field="repeat_course_reason")
    if len(_why(reason)) < REPEAT_REASON_LEAST:
        raise ValidationFailed(f"Repeat course: {already.words}. Write the reason for the repeat course (at least "
                               f"{REPEAT_REASON_LEAST} characters, beside the words \"{REPEAT}\"): what happened and "
                               "who decided it, e.g. \"pump failure after the first bag, decided with the "
                               "investigator\"; nothing was signed.", field="repeat_course_reason")
    if len(reason) > 2000:
        raise ValidationFailed("The reason for the repeat course has at most 2000 characters.",
                               field="repeat_course_reason")
    return reason if reason.lower().startswith(REPEAT) else f"{REPEAT}: {reason}"


def _completed(session: Session, prescription: Prescription) -> bool:
    """Every bag of the prescription was given, its infusion ended (the course is completed; no stored status)."""
    from mscbatch.patients.course import bag_outcomes, course_completed

    return course_completed(bag_outcomes(session, prescription, allocations_of(session, prescription.id)).values())


def completed_course(session: Session, prescription: Prescription) -> bool:
    """An active prescription whose every bag was given, its infusion ended: the page offers to close it."""
    return prescription.status == "active" and _completed(session, prescription)


def standing_words(session: Session, patient: Any) -> str | None:
    """Why no new prescription can be signed while the patient has an active one (its bags are reserved for it), in
    words; None without one. The signature refuses it (refuse_standing) and the API's dry run says it beforehand."""
    standing = next((p for p in prescriptions_of(session, patient.id) if p.status == "active"), None)
    if standing is None:
        return None
    if _completed(session, standing):
        return (f"Patient {patient.code}'s prescription {standing.id} is COMPLETED (every bag given) but not closed: "
                "close it on its page first.")
    return f"Patient {patient.code} already has an active prescription: cancel it first."


def refuse_standing(session: Session, patient: Any) -> None:
    words = standing_words(session, patient)
    if words is not None:
        raise Conflict(words)


def prescribe(session: Session, signer: Any, password: str, patient_id: int, *,
              level_cells_per_kg: Decimal | None = None, bag_ids: list[int] | None = None,
              planned_at: datetime | None = None, weight_id: int | None = None,
              repeat_course_reason: str | None = None) -> Prescription:
    """Sign a prescription and allocate its bags. `bag_ids` and `weight_id`: the bags and the weight of the dry run
    the clinician saw (refused if either has changed since; the pages and the API require both). When cells were
    already infused to the patient under the protocol (a stopped course), `repeat_course_reason` is required; it
    is recorded in the signed calculation, with what was already given, and as the audit reason."""
    require_clinician(signer, "prescribes")
    if bag_ids is not None and not bag_ids:
        raise ValidationFailed("No bag was chosen: calculate the dose first.", field="bag_ids")
    with reading(session):  # before the use case: its audit reason names the repeat course (read again under lock)
        first = get_patient(session, patient_id)
        withdrawn = first.status == "withdrawn"
        standing = standing_words(session, first)
        already = already_infused(session, first, protocol_of(first))
    if withdrawn:  # said first: no reason for a repeat course can make a prescription for a withdrawn patient
        raise Conflict(_withdrawn_words(first.code))
    if standing is not None:  # nor for a patient whose active prescription stands (read again under the lock)
        raise Conflict(standing)
    repeat = _repeat_course(already, repeat_course_reason)
    try:
        with use_case(session, signer, f"{PRESCRIBED}; {repeat}" if repeat else PRESCRIBED):
            patient = get_patient(session, patient_id)
            protocol = protocol_of(patient)
            _serialise(session, protocol.id)
            patient = lock_patient(session, patient.id)  # read afresh under the lock: withdrawn meanwhile?
            if patient.status == "withdrawn":
                raise Conflict(_withdrawn_words(patient.code))
            refuse_standing(session, patient)
            if already_infused(session, patient, protocol) != already:
                raise Conflict("An infusion of this patient was recorded meanwhile: nothing was signed. Calculate "
                               "again.")
            if bag_ids is not None:
                _lock_and_check(session, list(bag_ids))
            result = calculate(session, patient, level_cells_per_kg=level_cells_per_kg, planned_at=planned_at,
                               only_bag_ids=list(bag_ids) if bag_ids is not None else None)
            if weight_id is not None:
                _refuse_changed_weight(session, result, weight_id)
            _refuse(result)
            allocation = result.allocation
            assert allocation is not None and result.weight is not None and result.level_cells_per_kg is not None
            chosen = [int(d.bag_id) for d in allocation.draws]
            if bag_ids is not None and set(chosen) != set(bag_ids):
                raise Conflict("The bags that fit have changed since the calculation; recalculate.")
            if bag_ids is None:
                _lock_and_check(session, chosen)
            prescription = Prescription(
                patient_id=patient.id, protocol_id=protocol.id, protocol_version=protocol.version,
                protocol_sha256=protocol.sha256, dose_level_cells_per_kg=int(result.level_cells_per_kg),
                weight_id=result.weight.id, weight_kg=result.weight.weight_kg,
                weight_measured_on=result.weight.measured_on, target_cells=int(allocation.target_cells),
                delivered_cells=int(allocation.delivered_cells), total_volume_ml=allocation.total_volume_ml,
                dmso_g=allocation.dmso_g.quantize(Decimal("0.001")), dmso_g_per_kg=allocation.dmso_g_per_kg,
                calculation_json=json.dumps(_signed_calculation(allocation, already, repeat,
                                                                planned=planned_at is not None), sort_keys=True),
                planned_at=result.planned_at, status="active", prescribed_by_id=signer.id)
            session.add(prescription)
            session.flush()
            for draw in allocation.draws:
                bag, lot = result.bag(draw.bag_id)
                try:
                    BAG.check(bag.status, "allocated", signer.role_names, subject=f"bag {din_shown(bag)}")
                except TransitionRefused as refusal:
                    raise Conflict(str(refusal)) from None
                custody_log.note(session, signer, bag, "allocated", from_status=bag.status, to_status="allocated",
                                 details={"prescription_id": prescription.id, "patient_id": patient.id})
                bag.status = "allocated"
                session.add(Allocation(prescription_id=prescription.id, patient_id=patient.id, bag_id=bag.id,
                                       active_bag_id=bag.id, volume_ml=draw.volume_ml, cells=int(draw.cells),
                                       partial=draw.partial, conditional_release=lot.status == "conditional_release"))
            sign(session, signer, password, prescription, PRESCRIBED, required_role="clinician")
    except IntegrityError:
        raise Conflict("A bag of this calculation was just allocated to another patient; recalculate.") from None
    return prescription


#: where a bag not yet given is, in the words of a refused cancel
OUT_OF_UNIT = {"dispatched": "is on its way to the ward (dispatched): the ward records its receipt and returns it",
               "received": "is on the ward (received, still frozen): the ward returns it to the unit, or discards "
                           "it if it is damaged",
               "thawed": "is THAWED on the ward: it can never go back to stock; the ward discards it (ward page, "
                         "Discard, with the reason)"}


def _cancel_refused(session: Session, prescription: Prescription) -> str | None:
    """Why the prescription cannot be cancelled or stopped yet, in words (its bags out of the unit), or None."""
    out = []
    for row in allocations_of(session, prescription.id):
        if row.active:
            bag = session.get(Bag, row.bag_id)
            if bag is not None and bag.status in OUT_OF_UNIT:
                out.append(f"bag {din_shown(bag)} {OUT_OF_UNIT[bag.status]}")
    if not out:
        return None
    return ("Cannot cancel or stop this prescription yet: " + "; ".join(out) + ". Then cancel or stop it here. "
            "Nothing was changed. Until then the bedside check may still answer MATCHES for these bags: tell the "
            "ward not to give them.")


def let_go(session: Session, actor: Any, prescription: Prescription, reason: str, *,
           withdrawal: bool = False) -> list[str]:
    """Release the prescription's bags not yet given (inside the caller's use case; prescription locked): a bag in
    the unit goes back into stock, a bag discarded or returned is only released (GONE_FROM_STOCK), an infused bag
    keeps its allocation (the record of what the patient received). A bag out of the unit (dispatched, on the
    ward, thawed) refuses it, except for a withdrawal (`withdrawal`), which is never held up: the bedside check says
    STOP for a withdrawn patient, the bag is released from the patient and the ward returns or discards it. Moves
    the prescription to "stopped" when some bag was given, "cancelled" otherwise. Returns the DINs released while
    out of the unit, as the label shows them (withdrawal only)."""
    now, given, out, refused = utcnow(), False, [], None
    for row in allocations_of(session, prescription.id):
        if not row.active:
            continue
        # locked and read again: a dispatch committed meanwhile must be seen, not overwritten with "stored"
        bag = lock_bag(session, row.bag_id)
        if bag.status in OUT_OF_UNIT and not withdrawal:  # refused, naming every bag out of the unit (rolled back)
            raise Conflict(_cancel_refused(session, prescription) or f"Bag {din_shown(bag)} has left the unit.")
        if bag.status == "infused":  # given: the allocation stays, the record of what the patient received
            given = True
            continue
        if bag.status in GONE_FROM_STOCK or (withdrawal and bag.status != "allocated"):
            # broken at thaw, returned from the ward: released, never restocked; a withdrawal also lets go of a bag
            # on the ward (the ward returns or discards it) or on hold (QA decides): released where it is
            if bag.status in OUT_OF_UNIT:
                out.append(din_shown(bag))  # as the ward reads it on the label, K included
            row.active_bag_id, row.released_at, row.released_by_id = None, now, actor.id
            continue
        try:
            BAG.check(bag.status, "stored", actor.role_names, subject=f"bag {din_shown(bag)}")
        except TransitionRefused as refusal:  # said once every bag is read: a bag out of the unit is said first
            refused = refused or f"Cannot cancel or stop this prescription: {refusal}. Nothing was changed."
            continue
        custody_log.note(session, actor, bag, "stored", from_status=bag.status, to_status="stored",
                         details={"prescription_id": prescription.id, "cancelled": True,
                                  **({"withdrawal": True} if withdrawal else {})}, reason=reason)
        bag.status = "stored"
        row.active_bag_id, row.released_at, row.released_by_id = None, now, actor.id
    if refused:
        raise Conflict(refused)
    prescription.status = "stopped" if given else "cancelled"
    prescription.cancelled_at, prescription.cancelled_by_id = now, actor.id
    prescription.cancel_reason = reason
    return out


def ended_meaning(prescription: Prescription, completed: bool) -> str:
    """What the clinician's signature ending the prescription means (its reason is in the content it covers)."""
    return CANCELLED if prescription.status == "cancelled" else COURSE_CLOSED if completed else COURSE_STOPPED


def cancel(session: Session, actor: Any, prescription_id: int, reason: str, *,
           password: str | None = None) -> Prescription:
    """Cancel an active prescription, or stop its course once some of its bags have been given: the bags given keep
    their record (allocation, infusion), the bags not given go back into stock (a bag discarded or returned from the
    ward is only released: GONE_FROM_STOCK). A bag on its way or on the ward must first be returned (or, thawed,
    discarded): the refusal says so, bag by bag. The reason is required and goes into the audit trail.

    A clinical decision, signed like the prescription itself (21 CFR 11.50, 11.200): the clinician re-enters their
    `password`; the signature's meaning says what it did (models.COURSE_STOPPED) and it covers the status, who,
    when and why (the reason in the content, not the meaning: the administrator's audit view masks it). No password
    (None or empty: 422 on `password`) or a wrong one (401, counted towards the lockout as at any signature) stops
    nothing."""
    require_clinician(actor, "cancels or stops prescriptions")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Give the reason for cancelling: it goes into the audit trail.", field="reason")
    if len(reason) > 2000:
        raise ValidationFailed("The reason has at most 2000 characters.", field="reason")
    with use_case(session, actor, reason):
        # locked and read again: two clinicians cancelling at once (PostgreSQL) both saw it active and both put its
        # bags back in stock, twice in the custody log
        get_prescription(session, prescription_id)
        prescription = session.get(Prescription, prescription_id, with_for_update=True, populate_existing=True)
        assert prescription is not None
        if prescription.status != "active":
            raise Conflict(f"This prescription is {prescription.status}; it cannot be cancelled.")
        completed = _completed(session, prescription)  # before the bags are let go: a closing, not a stop
        let_go(session, actor, prescription, reason)
        sign(session, actor, password or "", prescription, ended_meaning(prescription, completed),
             required_role="clinician")
    return prescription
