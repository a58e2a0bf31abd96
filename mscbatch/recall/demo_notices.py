"""Demo (`make run`): a recall that reached patients, with one clinician recorded as told and one not yet.

A fifth cord donor ("MW") is screened negative and approved by qa; the technician makes a UC-MSC lot from her (P0-P3,
the demo reagent lots linked, 2 bags of 100 x10^6 viable cells stored in Box A2) and sends it to quarantine; QC (tech2)
enters every test but sterility (7-14 days of incubation) and qa2 releases it conditionally, pending sterility
(signed, EU GMP Part IV 11). Two lupus patients of 50 kg, enrolled by the clinician, are each prescribed one bag of it
(2 x10^6/kg); each bag is dispatched, received, thawed, checked at the bedside by two nurses and infused. Then the
sterility culture turns positive (entered by tech2): a late OOS opens, listing both patients, and qa (who took no part
in the lot) confirms it (signed), which recalls the lot. qa records that the first patient's clinician was told by
phone, with a note; the second patient is left "Not yet notified", so the clinician's home page offers "I have been
told" for them, and the recall cannot be completed until then. Everything goes through the services. The infusions
are recorded at once (a demo cannot wait the protocol's hour), with that reason. Made once: a later run says where
the recall stands. The other demo stories are untouched: new donor, lot, bags and patients, none allocatable."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from flask import current_app, has_app_context
from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.auth.models import User
from mscbatch.core.culture import BagPlan
from mscbatch.core.identifiers import din_shown
from mscbatch.core.label_token import make_token
from mscbatch.custody import bedside, handover, infusions
from mscbatch.custody.demo import _label_key
from mscbatch.database import utcnow
from mscbatch.donors.demo import DEMO_PASSWORD, _approved_cord_donor, demo_cord_donor
from mscbatch.donors.models import Donor
from mscbatch.labelling.demo import DEMO_BASE_URL
from mscbatch.labelling.services import print_labels
from mscbatch.lots.demo import _chain_lot, _registered_reagents
from mscbatch.lots.models import Bag, Lot
from mscbatch.lots.queries import bags_of
from mscbatch.lots.services import transition_lot
from mscbatch.patients import enrolment, prescriptions, services
from mscbatch.patients.demo import LATE_OOS_WRISTBANDS, SLE_VALUES, _by_wristband, _protocol_id
from mscbatch.patients.inventory import calculate
from mscbatch.patients.models import Patient
from mscbatch.recall import notices
from mscbatch.recall.models import Recall
from mscbatch.recall.queries import not_yet_told
from mscbatch.recall.report import patients_to_notify
from mscbatch.release import oos, release, results
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import OosInvestigation
from mscbatch.site import site_today

LATE_OOS_DONOR_INITIALS = "MW"
M = 10**6
#: two bags of 40 mL at 2.5 x10^6 viable cells/mL: 100 x10^6 each, one whole bag per 50 kg patient at 2 x10^6/kg
LATE_OOS_BAG = BagPlan(volume_ml=Decimal(40), cells_per_ml=2_500_000, dmso_percent=Decimal(10))
LATE_OOS_WEIGHT_KG = "50"
#: the two patients: initials, birth date, ward bed (wristbands: patients.demo.LATE_OOS_WRISTBANDS)
LATE_OOS_PATIENTS = (("SK", date(1986, 5, 30), "Internal medicine, bed 5"),
                     ("YT", date(1990, 10, 12), "Internal medicine, bed 6"))
CONDITIONAL_JUSTIFICATION = ("Every other release test passes; sterility (BacT/ALERT, 7-14 days) is still incubating "
                             "and both patients' infusions are scheduled: released pending sterility, its result to "
                             "be reviewed by QA as soon as it is read (EU GMP Part IV 11).")
OOS_INVESTIGATION = ("Sterility culture positive on day 5 (aerobic bottle, Gram-positive cocci, identification "
                     "pending). Phase I laboratory investigation: no assignable laboratory cause (negative controls, "
                     "isolator and operator monitoring all within limits). The failure stands: OOS confirmed; the "
                     "conditionally released lot is recalled and the clinicians of both patients given it are told.")
END_REASON = ("Demo: the infusion is recorded at once so the demo shows a recall reaching an infused patient; a real "
              "infusion lasts the protocol's time.")
NOTICE_NOTE = "Told by phone; the patient is called back for blood cultures and a clinical check today."
_NEXT = ("  next, as clinician: Home: Recall R-{id} for your patient {code} (bag {din} of lot {lot}, infused): press "
         "I have been told (as qa, Recalls, R-{id}: one notice recorded, {code} Not yet notified; Complete the "
         "recall is refused naming {code} until then)")


def _user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def late_oos_donor(session: Session) -> Donor | None:
    return demo_cord_donor(session, LATE_OOS_DONOR_INITIALS)


def late_oos_lot(session: Session) -> Lot | None:
    donor = late_oos_donor(session)
    return None if donor is None else session.scalar(select(Lot).where(Lot.donor_id == donor.id).order_by(Lot.id))


def late_oos_recall(session: Session) -> Recall | None:
    lot = late_oos_lot(session)
    return None if lot is None else session.scalar(
        select(Recall).where(Recall.scope == "lot", Recall.lot_id == lot.id).order_by(Recall.id))


def _where_it_stands(session: Session) -> list[str]:
    lot, recall = late_oos_lot(session), late_oos_recall(session)
    if lot is None or recall is None:
        return ["  (the late-OOS recall was not made: an earlier run stopped before it)"]
    entries = patients_to_notify(session, recall)
    told = [e for e in entries if e.notice is not None]
    waiting = not_yet_told(entries)
    head = (f"  R-{recall.id}, lot {lot.lot_number} (late sterility OOS): {recall.status}; {len(entries)} patient(s) "
            f"reached, {len(told)} clinician notice(s) recorded")
    if recall.status != "active":
        return [f"{head} (closed by QA)"]
    if not waiting:
        return [f"{head}; every clinician told: as qa, Recalls, R-{recall.id}: Complete the recall (signed)"]
    first = waiting[0]
    bag, bag_lot, _r = first.received[0]
    return [f"{head}; not yet notified: {', '.join(e.patient.code for e in waiting)}",
            _NEXT.format(id=recall.id, code=first.patient.code, din=din_shown(bag), lot=bag_lot.lot_number)]


def _patient(session: Session, clinician: User, wristband: str, initials: str, born: date, ward: str) -> Patient:
    patient = services.register_patient(session, clinician, services.PatientDetails(
        protocol_id=_protocol_id("SLE-UC"), initials=initials, date_of_birth=born, sex="female", ward=ward,
        wristband_id=wristband))
    services.record_weight(session, clinician, patient.id, weight_kg=LATE_OOS_WEIGHT_KG,
                           measured_on=site_today() - timedelta(days=1))
    check = enrolment.check_enrolment(session, clinician, patient.id, SLE_VALUES)
    enrolment.enrol(session, clinician, check.id, DEMO_PASSWORD)
    return patient


def _infuse(session: Session, clinician: User, tech: User, nurse: User, patient: Patient, bag: Bag, key: str) -> None:
    """The patient's prescription of this one bag (signed), and the bag carried to the bedside and infused."""
    result = calculate(session, patient, only_bag_ids=[bag.id])
    assert result.allocation is not None, result.refusal
    prescriptions.prescribe(session, clinician, DEMO_PASSWORD, patient.id, bag_ids=[bag.id],
                            weight_id=result.weight.id if result.weight is not None else None)
    token = make_token(bag.din + bag.check_character, key)
    ward = "Internal medicine"
    handover.dispatch(session, tech, bag.id, courier="Hospital courier", shipper="Dry shipper DS-5",
                      temperature_logger_id="TL-0108", location="Cell therapy unit")
    handover.receive(session, nurse, bag.id, location=ward, scan=token)
    handover.thaw(session, nurse, bag.id, location=ward, scan=token)
    check = bedside.bedside_check(session, nurse, wristband=patient.wristband_id, bag_scan=token, label_key=key)
    assert check.matches and check.check_id is not None, [f.message for f in check.failures]
    bedside.confirm_second_person(session, nurse, check.check_id, username="nurse2", password=DEMO_PASSWORD,
                                  checker_password=DEMO_PASSWORD, label_key=key)
    infusion = infusions.start_infusion(session, nurse, bag.id, wristband=patient.wristband_id, bag_scan=token,
                                        label_key=key)
    infusions.end_infusion(session, nurse, infusion.id, volume_ml=str(bag.volume_ml), reason=END_REASON,
                           label_key=key)


def seed_recall_notices(session: Session) -> list[str]:
    if late_oos_donor(session) is not None:  # made by an earlier run: where its recall stands now
        return _where_it_stands(session)
    names = ("tech", "tech2", "qa", "qa2", "clinician", "nurse", "nurse2")
    tech, tech2, qa, qa2, clinician, nurse, _nurse2 = (_user(session, name) for name in names)
    used = _registered_reagents(session)
    if None in (tech, tech2, qa, qa2, clinician, nurse, _nurse2) or used is None:
        return ["  (skipped: a demo user or the demo reagent lots are missing)"]
    assert tech and tech2 and qa and qa2 and clinician and nurse
    if any(_by_wristband(session, wristband) is not None for wristband in LATE_OOS_WRISTBANDS):
        return ["  (skipped: a patient already wears one of the wristbands " + ", ".join(LATE_OOS_WRISTBANDS) + ")"]
    key = _label_key()
    donor = _approved_cord_donor(session, tech, qa, LATE_OOS_DONOR_INITIALS, date(1993, 4, 22), days_ago=28)
    lot = _chain_lot(session, tech, donor, used, chain=(28, "Demo maternity, delivery room 2"),
                     plans=[LATE_OOS_BAG] * 2)
    transition_lot(session, tech, lot.id, "quarantine", "Cryopreserved and stored: awaiting QC and release")
    count = lot.harvest_viable_cells or 230 * M
    enter_panel(session, tech2, lot.id, {"viable_cell_count": (str(count), "cells")}, skip=("sterility",))
    release.release_lot(session, qa2, lot.id, DEMO_PASSWORD, conditional_tests=["sterility"],
                        justification=CONDITIONAL_JUSTIFICATION)
    base_url = (current_app.config.get("LABEL_BASE_URL") if has_app_context() else None) or DEMO_BASE_URL
    print_labels(session, tech, lot.id, print_format="lot", base_url=base_url, key=key)
    bags = sorted(bags_of(session, lot.id), key=lambda b: b.id)
    patients = [_patient(session, clinician, wristband, initials, born, ward)
                for wristband, (initials, born, ward) in zip(LATE_OOS_WRISTBANDS, LATE_OOS_PATIENTS, strict=True)]
    for patient, bag in zip(patients, bags, strict=True):
        _infuse(session, clinician, tech, nurse, patient, bag, key)
    # the sterility culture turns positive: a late OOS opens (the lot is conditionally released), listing both
    results.enter_result(session, tech2, lot.id, results.ResultEntry(
        test_id="sterility", value="positive", unit="", analyst=tech2.full_name, tested_on=site_today(),
        method="Ph. Eur. 2.6.27 (BacT/ALERT)"))
    opened = session.scalar(select(OosInvestigation).where(OosInvestigation.lot_id == lot.id,
                                                           OosInvestigation.test_id == "sterility"))
    assert opened is not None and opened.late
    oos.confirm_oos(session, qa, opened.id, OOS_INVESTIGATION, DEMO_PASSWORD)
    recall = late_oos_recall(session)
    assert recall is not None
    told, waiting = patients
    notices.record_notice(session, qa, recall.id, told.id, clinician=clinician.full_name, how="phone",
                          told_at=utcnow(), note=NOTICE_NOTE)
    dins = [din_shown(bag) for bag in bags]
    return [f"  {donor.code} ({LATE_OOS_DONOR_INITIALS}), umbilical cord, approved by {qa.username}; {lot.lot_number} "
            f"UC-MSC made by {tech.username}, 2 bags of 100 x10^6 cells ({', '.join(dins)}); every test but "
            f"sterility entered by {tech2.username}, conditionally released by {qa2.username} pending sterility "
            "(signed), labels printed",
            f"  {told.code} and {waiting.code} (lupus, {LATE_OOS_WEIGHT_KG} kg, enrolled) each prescribed one bag by "
            f"{clinician.username}, dispatched, received, thawed, checked by nurse and nurse2 and infused",
            f"  then sterility came back positive: late OOS {opened.id} confirmed by {qa.username} (signed), lot "
            f"{lot.lot_number} recalled as R-{recall.id}; {qa.username} recorded {told.code}'s clinician told by "
            f"phone; {waiting.code} not yet notified",
            _NEXT.format(id=recall.id, code=waiting.code, din=dins[1], lot=lot.lot_number)]
