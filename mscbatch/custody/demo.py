"""Demo hints for the ward page (`make run`): which wristband and which bag label code to scan. Nothing is
moved (the demo leaves the lupus patient's bags allocated, as the dose demo shows them); the walk-through is
dispatch by tech, receive and thaw by nurse, bedside check by nurse confirmed by nurse2, then the infusion, started
on the wristband and the bag scanned again at the bedside."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.core.label_token import make_token
from mscbatch.lots.models import Bag
from mscbatch.patients.demo import LUPUS_WRISTBAND, WITHDRAWN_WRISTBAND
from mscbatch.patients.models import Allocation, Patient


def _label_key() -> str:
    from flask import current_app, has_app_context

    if has_app_context():
        return str(current_app.config["LABEL_KEY"])
    from mscbatch import settings

    return str(settings.from_environment()["LABEL_KEY"])


def seed_custody(session: Session) -> list[str]:
    patient = session.scalar(select(Patient).where(Patient.wristband_id == LUPUS_WRISTBAND))
    bag = None if patient is None else session.scalar(
        select(Bag).join(Allocation, Allocation.active_bag_id == Bag.id).where(Allocation.patient_id == patient.id)
        .order_by(Bag.id))
    if patient is None or bag is None:
        return ["  (skipped: no bag is allocated to the lupus demo patient)"]
    token = make_token(bag.din + bag.check_character, _label_key())
    return [f"  on /ward: wristband {LUPUS_WRISTBAND} ({patient.code}), bag {bag.din}{bag.check_character} "
            f"({bag.status}), label code {token}",
            "  walk-through: tech dispatches it, nurse receives and thaws it, bedside check by nurse confirmed by "
            f"nurse2, then start the infusion (scan wristband {LUPUS_WRISTBAND} and the bag again at the start) and end it",
            f"  a withdrawn patient: scan wristband {WITHDRAWN_WRISTBAND} with any bag: STOP (withdrawn from the trial)"]
