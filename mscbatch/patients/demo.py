"""Demo trial patients for `make run`, entered through the services by the demo clinician: a lupus patient
(SLE-UC) at 62.5 kg, enrolled; a systemic sclerosis patient (SSc-BM) whose code is the one the demo familial
marrow donor names; the lupus patient's signed prescription allocating the released UC-MSC bags of the
demo cord lot (mscbatch.lots.demo.chain_lot); a second lupus patient enrolled, then withdrawn from the trial; and a
third lupus patient enrolled at 70 kg with no prescription, for a newcomer to dry-run and prescribe (the second
UC-MSC lot's bags are free for it).
Idempotent: each record is made only when missing."""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.auth.models import User
from mscbatch.core.culture import format_cells
from mscbatch.core.identifiers import din_shown
from mscbatch.donors import demo as donor_demo
from mscbatch.errors import DomainError
from mscbatch.lots.models import Bag
from mscbatch.patients import enrolment, prescriptions, services, weight_errors, withdrawal
from mscbatch.patients.inventory import calculate
from mscbatch.patients.models import Patient
from mscbatch.patients.queries import allocations_of, familial_donor_of, prescriptions_of, protocols
from mscbatch.site import site_today

# donor_demo.DEMO_PASSWORD is read at each use, never copied at import: a test that sets it for the donor
# decisions (tests/integration/test_release_support.py) and imports this module meanwhile must not leave the copy
# behind for later tests (the demo then signed with a wrong password in test_demo, depending on test order).

#: values of a lupus patient who meets every inclusion criterion (demo, scale data and tests enrol them)
SLE_VALUES = {"selena_sledai_points": "10", "creatinine_clearance_ml_per_min": "85", "lvef_percent": "60",
              "ast_x_uln": "1", "alt_x_uln": "1", "mean_pap_echo_mmhg": "20", "pao2_mmhg": "90", "paco2_mmhg": "40",
              "neutrophils_g_per_l": "3", "platelets_g_per_l": "40", "haemoglobin_g_per_dl": "11",
              "cd4_per_ul": "500", "hiv_positive": "no", "htlv_positive": "no", "hbsag_positive": "no",
              "hcv_positive": "no", "months_since_belimumab": "never", "months_since_b_cell_depletion": "12",
              "pregnant": "no"}
#: the same for systemic sclerosis
SSC_VALUES = {"mrss_points": "20", "creatinine_clearance_ml_per_min_m2": "60", "lvef_percent": "60", "ast_x_uln": "1",
              "alt_x_uln": "1", "bilirubin_x_uln": "1", "systolic_pap_echo_mmhg": "30", "dlco_percent_predicted": "60",
              "pao2_mmhg": "85", "paco2_mmhg": "40", "neutrophils_g_per_l": "3", "platelets_g_per_l": "150",
              "haemoglobin_g_per_dl": "12", "cd4_per_ul": "600", "hiv_positive": "no", "htlv_positive": "no",
              "chronic_hepatitis_b": "no", "chronic_hepatitis_c": "no", "pregnant": "no"}


def _protocol_id(short_name: str) -> str:
    return next(p.id for p in protocols().values() if p.short_name == short_name)


LUPUS_WRISTBAND = "WB-100234"
SSC_WRISTBAND = "WB-100871"
WITHDRAWN_WRISTBAND = "WB-100412"  # a lupus patient enrolled, then withdrawn (signed): the bedside check says STOP
READY_WRISTBAND = "WB-100555"  # a lupus patient enrolled, not prescribed: the newcomer prescribes
READY_WEIGHT_KG = "70"
#: two lupus patients given a bag each of a conditionally released lot later recalled for a late sterility OOS
#: (mscbatch.recall.demo_notices): their courses are complete, so the ward walk-through's hints leave them out
LATE_OOS_WRISTBANDS = ("WB-100631", "WB-100632")
WITHDRAWAL_REASON = "Consent withdrawn by the patient at the screening visit (demo)."
DEMO_WEIGHT_ERROR = "Typed 18 for 81 kg (demo): a slip on the keypad."


def _by_wristband(session: Session, wristband: str) -> Patient | None:
    return session.scalar(select(Patient).where(Patient.wristband_id == wristband))


def _register(session: Session, clinician: User) -> list[str]:
    """The two demo patients, each made only when missing."""
    today = site_today()
    lines = []
    lupus = _by_wristband(session, LUPUS_WRISTBAND)
    if lupus is None:
        lupus = services.register_patient(session, clinician, services.PatientDetails(
            protocol_id=_protocol_id("SLE-UC"), initials="LM", date_of_birth=date(1988, 6, 14), sex="female",
            ward="Internal medicine, bed 12", wristband_id=LUPUS_WRISTBAND))
        services.record_weight(session, clinician, lupus.id, weight_kg="62.5", measured_on=today - timedelta(days=1))
        check = enrolment.check_enrolment(session, clinician, lupus.id, SLE_VALUES)
        enrolment.enrol(session, clinician, check.id, donor_demo.DEMO_PASSWORD)
        lines.append(f"  {lupus.code}  lupus (SLE-UC), 62.5 kg, enrolled (signed by Dr Clara Clinician); wristband "
                     f"{LUPUS_WRISTBAND}")
    if _by_wristband(session, SSC_WRISTBAND) is None:
        ssc = services.register_patient(session, clinician, services.PatientDetails(
            protocol_id=_protocol_id("SSc-BM"), code="SSC-BM-007", initials="RT", date_of_birth=date(1972, 3, 2),
            sex="male", ward="Internal medicine, bed 4", wristband_id=SSC_WRISTBAND))
        services.record_weight(session, clinician, ssc.id, weight_kg="81", measured_on=today - timedelta(days=2))
        # a weight typed wrong, marked entered in error (signed): struck through on the patient's page, not used
        typo = services.record_weight(session, clinician, ssc.id, weight_kg="18", measured_on=today - timedelta(days=1),
                                      weight_confirmed=True)
        weight_errors.mark_entered_in_error(session, clinician, ssc.id, typo.id, reason=DEMO_WEIGHT_ERROR,
                                            password=donor_demo.DEMO_PASSWORD)
        donor = familial_donor_of(session, ssc)
        lines.append(f"  {ssc.code}  systemic sclerosis (SSc-BM), 81 kg (18 kg typed the next day, marked entered in "
                     f"error), familial donor {donor.code if donor else '(none found)'}; not enrolled yet")
    return lines


def _withdrawn(session: Session, clinician: User) -> list[str]:
    """A lupus patient enrolled and then withdrawn from the trial (signed, with the reason), made once: the patient
    page shows the withdrawal, no prescription can be made, and a scan of the wristband at the bedside says STOP."""
    if _by_wristband(session, WITHDRAWN_WRISTBAND) is not None:
        return []
    today = site_today()
    patient = services.register_patient(session, clinician, services.PatientDetails(
        protocol_id=_protocol_id("SLE-UC"), initials="NV", date_of_birth=date(1979, 11, 3), sex="female",
        ward="Internal medicine, bed 7", wristband_id=WITHDRAWN_WRISTBAND))
    services.record_weight(session, clinician, patient.id, weight_kg="58", measured_on=today - timedelta(days=1))
    check = enrolment.check_enrolment(session, clinician, patient.id, SLE_VALUES)
    enrolment.enrol(session, clinician, check.id, donor_demo.DEMO_PASSWORD)
    withdrawal.withdraw(session, clinician, donor_demo.DEMO_PASSWORD, patient.id, reason=WITHDRAWAL_REASON)
    return [f"  {patient.code}  lupus (SLE-UC), enrolled then WITHDRAWN from the trial (signed by Dr Clara Clinician); "
            f"wristband {WITHDRAWN_WRISTBAND}: the bedside check says STOP"]


def _ready_to_prescribe(session: Session, clinician: User) -> list[str]:
    """A lupus patient enrolled at 70 kg, made once and never prescribed here: 2 x10^6/kg x 70 kg = 140 x10^6 cells,
    which the released UC-MSC bags left free (the first lot's last bag and the second lot's four) cover."""
    if _by_wristband(session, READY_WRISTBAND) is not None:
        return []
    patient = services.register_patient(session, clinician, services.PatientDetails(
        protocol_id=_protocol_id("SLE-UC"), initials="PD", date_of_birth=date(1983, 8, 21), sex="female",
        ward="Internal medicine, bed 9", wristband_id=READY_WRISTBAND))
    services.record_weight(session, clinician, patient.id, weight_kg=READY_WEIGHT_KG,
                           measured_on=site_today() - timedelta(days=1))
    check = enrolment.check_enrolment(session, clinician, patient.id, SLE_VALUES)
    enrolment.enrol(session, clinician, check.id, donor_demo.DEMO_PASSWORD)
    return [f"  {patient.code}  lupus (SLE-UC), {READY_WEIGHT_KG} kg, enrolled, no prescription yet: dry-run a dose and "
            f"prescribe it as clinician; wristband {READY_WRISTBAND}"]


def _prescribe(session: Session, clinician: User) -> list[str]:
    """The lupus patient's signed prescription, allocating released UC-MSC bags (once)."""
    lupus = _by_wristband(session, LUPUS_WRISTBAND)
    if lupus is None:
        return []
    active = next((p for p in prescriptions_of(session, lupus.id) if p.status == "active"), None)
    if active is not None:
        dins = [din_shown(session.get(Bag, a.bag_id)) for a in allocations_of(session, active.id)]  # type: ignore[union-attr]
        return [f"  prescription {active.id} for {lupus.code}: {len(dins)} bag(s) allocated ({', '.join(dins)})"]
    if lupus.status != "enrolled":
        return [f"  (prescription skipped: {lupus.code} is {lupus.status})"]
    result = calculate(session, lupus)
    if result.allocation is None:
        return [f"  (prescription skipped: {result.refusal.reason if result.refusal else 'no allocation'}; the "
                "lupus trial needs released UC-MSC bags)"]
    try:
        rx = prescriptions.prescribe(session, clinician, donor_demo.DEMO_PASSWORD, lupus.id,
                                     bag_ids=[int(d.bag_id) for d in result.allocation.draws],
                                     weight_id=result.weight.id if result.weight is not None else None)
    except DomainError as error:
        return [f"  (prescription skipped: {error.message})"]
    a = result.allocation
    endotoxin = "no result" if a.endotoxin_eu is None else f"{a.endotoxin_eu.normalize():f} EU"
    return [f"  prescription {rx.id} for {lupus.code} (signed by Dr Clara Clinician): "
            f"{format_cells(a.delivered_cells)} cells ({format_cells(a.dose_level_cells_per_kg)}/kg x "
            f"{a.weight_kg.normalize():f} kg) from {a.bag_count} bag(s) "
            f"({', '.join(f'{din_shown(result.bag(d.bag_id)[0])} {d.volume_ml.normalize():f} mL' for d in a.draws)}); endotoxin {endotoxin} "
            f"(limit {a.endotoxin_limit_eu.normalize():f} EU); dose sheet at "
            f"/patients/prescriptions/{rx.id}/dose-sheet.pdf"]


def seed_patients(session: Session) -> list[str]:
    """Idempotent: patients and the prescription are made only when missing."""
    clinician = session.scalar(select(User).where(User.username == "clinician"))
    if clinician is None:
        return ["  (skipped: the demo clinician is missing)"]
    lines = _register(session, clinician)
    if not lines:
        lines = [f"  {p.code:<12} {p.protocol_id:<18} {p.status}"
                 for p in session.scalars(select(Patient).order_by(Patient.id))]
    return (lines + _prescribe(session, clinician) + _withdrawn(session, clinician)
            + _ready_to_prescribe(session, clinician))
