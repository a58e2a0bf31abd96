"""Demo trial patients for `make run`, entered through the services by the demo clinician: a lupus patient
(SLE-UC) at 62.5 kg, enrolled; a systemic sclerosis patient (SSc-BM) whose code is the one the demo familial
marrow donor names; and a prescription for the lupus patient when released UC-MSC bags are in stock."""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.auth.models import User
from mscbatch.donors.demo import DEMO_PASSWORD
from mscbatch.errors import DomainError
from mscbatch.patients import enrolment, prescriptions, services
from mscbatch.patients.inventory import calculate
from mscbatch.patients.models import Patient
from mscbatch.patients.queries import familial_donor_of, protocols

SLE_VALUES = {"selena_sledai_points": "10", "creatinine_clearance_ml_per_min": "85", "lvef_percent": "60",
              "ast_x_uln": "1", "alt_x_uln": "1", "mean_pap_echo_mmhg": "20", "pao2_mmhg": "90", "paco2_mmhg": "40",
              "neutrophils_g_per_l": "3", "platelets_g_per_l": "40", "haemoglobin_g_per_dl": "11",
              "cd4_per_ul": "500", "hiv_positive": "no", "htlv_positive": "no", "hbsag_positive": "no",
              "hcv_positive": "no", "months_since_belimumab": "never", "months_since_b_cell_depletion": "12",
              "pregnant": "no"}


def _protocol_id(short_name: str) -> str:
    return next(p.id for p in protocols().values() if p.short_name == short_name)


def seed_patients(session: Session) -> list[str]:
    existing = session.scalars(select(Patient).order_by(Patient.id)).all()
    if existing:
        return [f"  {p.code:<12} {p.protocol_id:<18} {p.status}" for p in existing]
    clinician = session.scalar(select(User).where(User.username == "clinician"))
    if clinician is None:
        return ["  (skipped: the demo clinician is missing)"]
    today = date.today()
    lupus = services.register_patient(session, clinician, services.PatientDetails(
        protocol_id=_protocol_id("SLE-UC"), initials="LM", date_of_birth=date(1988, 6, 14), sex="female",
        ward="Internal medicine, bed 12", wristband_id="WB-100234"))
    services.record_weight(session, clinician, lupus.id, weight_kg="62.5", measured_on=today - timedelta(days=1))
    check = enrolment.check_enrolment(session, clinician, lupus.id, SLE_VALUES)
    enrolment.enrol(session, clinician, check.id, DEMO_PASSWORD)
    ssc = services.register_patient(session, clinician, services.PatientDetails(
        protocol_id=_protocol_id("SSc-BM"), code="SSC-BM-007", initials="RT", date_of_birth=date(1972, 3, 2),
        sex="male", ward="Internal medicine, bed 4", wristband_id="WB-100871"))
    services.record_weight(session, clinician, ssc.id, weight_kg="81", measured_on=today - timedelta(days=2))
    donor = familial_donor_of(session, ssc)
    lines = [f"  {lupus.code}  lupus (SLE-UC), 62.5 kg, enrolled (signed by Dr Clara Clinician); wristband WB-100234",
             f"  {ssc.code}  systemic sclerosis (SSc-BM), 81 kg, familial donor "
             f"{donor.code if donor else '(none found)'}; not enrolled yet"]
    result = calculate(session, lupus)
    if result.allocation is None:
        lines.append(f"  (prescription skipped: {result.refusal.reason if result.refusal else 'no allocation'}; the "
                     "lupus trial needs released UC-MSC bags)")
        return lines
    try:
        rx = prescriptions.prescribe(session, clinician, DEMO_PASSWORD, lupus.id,
                                     bag_ids=[int(d.bag_id) for d in result.allocation.draws])
    except DomainError as error:
        lines.append(f"  (prescription skipped: {error.message})")
        return lines
    lines.append(f"  prescription {rx.id} for {lupus.code}: {result.allocation.bag_count} bag(s), dose sheet at "
                 f"/patients/prescriptions/{rx.id}/dose-sheet.pdf")
    return lines
