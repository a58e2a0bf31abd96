"""Demo hints for the ward page (`make run`): which wristband and which bag label code to scan, and the next steps
for that bag as the database has it now. Nothing is moved (the demo leaves the lupus patient's bags allocated, as
the dose demo shows them); a newcomer who already dispatched, received, thawed or infused a bag is told the next
step for it, or for the next bag, not the walk-through of a bag already given."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.core.label_token import make_token
from mscbatch.lots.models import Bag
from mscbatch.patients.demo import LATE_OOS_WRISTBANDS, LUPUS_WRISTBAND, READY_WRISTBAND, WITHDRAWN_WRISTBAND
from mscbatch.patients.models import Allocation, Patient

#: the bedside part, the same from a thawed bag on: the order the ward page accepts it in
_BEDSIDE = ("then scan wristband {wristband} and the bag: bedside check (MATCHES), confirmed by nurse2 with both "
            "passwords; Start infusion (wristband and bag scanned again), then end it")
#: what is left to do for a bag in each custody state, in the order the ward page accepts it
_NEXT = {
    "allocated": "tech dispatches it (Dispatch a bag to the ward); nurse scans only the bag, Receive, then Thaw; "
                 + _BEDSIDE,
    "dispatched": "nurse (not the one who dispatched it) scans only the bag, Receive, then Thaw; " + _BEDSIDE,
    "received": "nurse scans only the bag, Thaw; " + _BEDSIDE,
    "thawed": "nurse " + _BEDSIDE.removeprefix("then ") + " (within the post-thaw limit; past it, discard the bag "
              "from /ward with the reason)",
}


def _label_key() -> str:
    from flask import current_app, has_app_context

    if has_app_context():
        return str(current_app.config["LABEL_KEY"])
    from mscbatch import settings

    return str(settings.from_environment()["LABEL_KEY"])


def _allocated(session: Session) -> list[tuple[Bag, Patient]]:
    """Every bag a patient's prescription still holds, the lupus demo patient's first, then by patient and bag; not
    the bags given to the late-OOS recall's patients (mscbatch.recall.demo_notices), no part of the ward walk-through."""
    rows = session.execute(select(Bag, Patient).join(Allocation, Allocation.active_bag_id == Bag.id)
                           .join(Patient, Patient.id == Allocation.patient_id)
                           .where(Patient.wristband_id.not_in(LATE_OOS_WRISTBANDS)).order_by(Patient.id, Bag.id)).all()
    return sorted(((bag, patient) for bag, patient in rows), key=lambda row: row[1].wristband_id != LUPUS_WRISTBAND)


def seed_custody(session: Session) -> list[str]:
    from mscbatch.custody.models import Infusion

    rows = _allocated(session)
    lines, running = [], set()
    for bag, patient in rows:
        infusion = session.scalar(select(Infusion.id).where(Infusion.bag_id == bag.id, Infusion.ended_at.is_(None)))
        if infusion is not None:
            running.add(bag.id)
            lines.append(f"  infusion of bag {bag.din}{bag.check_character} for {patient.code} started, not ended: "
                         f"end it on /ward/infusions/{infusion} (as nurse)")
    given = [(bag, patient) for bag, patient in rows
             if bag.status in ("infused", "discarded") and bag.id not in running]
    ahead = next(((bag, patient) for bag, patient in rows if bag.status in _NEXT), None)
    if ahead is None:
        ready = session.scalar(select(Patient.code).where(Patient.wristband_id == READY_WRISTBAND,
                                                          Patient.status == "enrolled"))
        lines.append("  no prescribed bag is left to walk to the bedside" + (
            f" ({len(given)} given or discarded)" if given else "")
            + (f"; prescribe for {ready} (wristband {READY_WRISTBAND}) as clinician, then walk its first bag"
               if ready else "; prescribe for an enrolled patient as clinician, then walk its first bag"))
    else:
        bag, patient = ahead
        token = make_token(bag.din + bag.check_character, _label_key())
        if given:
            lines.append(f"  already given or discarded: {', '.join(b.din + b.check_character for b, _p in given)}")
        lines += [f"  on /ward: wristband {patient.wristband_id} ({patient.code}), bag {bag.din}{bag.check_character} "
                  f"({bag.status}), label code {token}",
                  "  next: " + _NEXT[bag.status].format(wristband=patient.wristband_id)]
    lines.append(f"  a withdrawn patient: scan wristband {WITHDRAWN_WRISTBAND} with any bag: STOP (withdrawn from the "
                 "trial)")
    return lines
