"""Demo (`make run`): a bag returned to the unit, waiting for QA's assessment on the Returned bags page.

A lupus patient of 50 kg is prescribed, one of the bags goes to the ward and is received, the infusion is postponed
(a fever) and the nurse returns the bag frozen in its shipper; the clinician cancels the prescription, which lets
the returned bag go (prescriptions.GONE_FROM_STOCK) and puts the other back into stock. QA then assesses the return:
back into stock (the logger's warmest reading, the bag intact) or discard. Made once."""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.auth.models import User
from mscbatch.custody import handover
from mscbatch.custody.models import CustodyEvent
from mscbatch.donors import demo as donor_demo
from mscbatch.errors import DomainError
from mscbatch.lots.models import Bag
from mscbatch.patients import enrolment, prescriptions, services
from mscbatch.patients.demo import SLE_VALUES, _by_wristband, _protocol_id
from mscbatch.patients.inventory import calculate
from mscbatch.site import site_today

RETURNED_WRISTBAND = "WB-100477"
LOGGER = "TL-0107"
RETURN_REASON = "Infusion postponed: the patient has a fever (38.6 °C). Returned frozen in its dry shipper."


def _user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def _where_it_stands(session: Session, code: str) -> list[str]:
    bag = session.scalar(select(Bag).join(CustodyEvent, CustodyEvent.bag_id == Bag.id)
                         .where(CustodyEvent.kind == "returned", CustodyEvent.reason == RETURN_REASON))
    if bag is None:
        return []
    state = ("waits for QA's assessment (as qa, Returned bags)" if bag.status == "returned"
             else f"was assessed by QA: now {bag.status.replace('_', ' ')}")
    return [f"  {code}'s bag {bag.din}{bag.check_character}, returned from the ward, {state}"]


def seed_returned(session: Session) -> list[str]:
    patient = _by_wristband(session, RETURNED_WRISTBAND)
    if patient is not None:  # made by an earlier run: where its bag stands now
        return _where_it_stands(session, patient.code)
    clinician, tech, nurse = _user(session, "clinician"), _user(session, "tech"), _user(session, "nurse")
    if clinician is None or tech is None or nurse is None:
        return ["  (skipped: a demo user is missing)"]
    patient = services.register_patient(session, clinician, services.PatientDetails(
        protocol_id=_protocol_id("SLE-UC"), initials="AB", date_of_birth=date(1991, 2, 9), sex="female",
        ward="Internal medicine, bed 3", wristband_id=RETURNED_WRISTBAND))
    services.record_weight(session, clinician, patient.id, weight_kg="50", measured_on=site_today() - timedelta(days=1))
    check = enrolment.check_enrolment(session, clinician, patient.id, SLE_VALUES)
    enrolment.enrol(session, clinician, check.id, donor_demo.DEMO_PASSWORD)
    result = calculate(session, patient)
    if result.allocation is None:
        return [f"  (returned bag skipped: {result.refusal.reason if result.refusal else 'no allocation'})"]
    try:
        rx = prescriptions.prescribe(session, clinician, donor_demo.DEMO_PASSWORD, patient.id,
                                     bag_ids=[int(d.bag_id) for d in result.allocation.draws],
                                     weight_id=result.weight.id if result.weight is not None else None)
        bag = session.get(Bag, int(result.allocation.draws[0].bag_id))
        handover.dispatch(session, tech, bag.id, courier="Hospital courier", shipper="Dry shipper DS-5",
                          temperature_logger_id=LOGGER, location="Cell therapy unit")
        handover.receive(session, nurse, bag.id, location="Internal medicine")
        handover.return_bag(session, nurse, bag.id, reason=RETURN_REASON, location="Internal medicine")
        prescriptions.cancel(session, clinician, rx.id, "Infusion postponed until the fever has settled; a new "
                             "prescription will follow.", password=donor_demo.DEMO_PASSWORD)
    except DomainError as error:
        return [f"  (returned bag skipped: {error.message})"]
    return [f"  {patient.code}  lupus (SLE-UC), 50 kg: its infusion was postponed and bag {bag.din}{bag.check_character} "
            f"came back from the ward; as qa, on Returned bags, assess it: back into stock (logger {LOGGER}'s warmest "
            "reading, e.g. -171.5 °C, and the bag intact) or discard"]
