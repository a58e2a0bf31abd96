"""Safety review 2 of the dose escalation: SSc-BM gives 10 patients 1 x10^6/kg, then 10 at 3 x10^6/kg with no
decision. The higher level used to apply as soon as 10 prescriptions were signed, before any of those patients was
infused: patient 11 could be prescribed 3 x10^6/kg with nobody yet seen after 1 x10^6/kg. The higher stage now
waits for the 10 infusions; the lower stage's own places stay open, and a cancelled prescription frees its place."""
from __future__ import annotations

from sqlalchemy import select

from mscbatch.custody import bedside, handover, infusions
from mscbatch.lots.models import Bag
from mscbatch.patients import prescriptions
from mscbatch.patients.models import Allocation, Patient, Prescription
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import SSC, donor, lot_with_bags, patient, user
from tests.integration.test_custody_support import KEY, token_of
from tests.integration.test_review4_patients_support import dry_run_body, signing_body

WAITING = "3 of the 10 patients of stage &#39;low&#39; have been infused so far"


def _ssc_patient(session, n: int) -> int:  # type: ignore[no-untyped-def]
    """An enrolled SSc-BM patient of 62.5 kg whose familial donor's released lot holds three 70 x10^6 bags."""
    tech, clin = user(session, "technician"), user(session, "clinician")
    code = f"SSC-BM-{n:03d}"
    lot_with_bags(session, tech, donor(session, tech, familial_for=code), product="BM-MSC", cells=70_000_000)
    return patient(session, clin, protocol_id=SSC, code=code).id


def _infuse(session, patient_id: int) -> None:  # type: ignore[no-untyped-def]
    """The first bag of the patient's signed prescription, carried to the bedside and started."""
    tech, nurse = user(session, "technician"), user(session, "nurse")
    bag = session.scalar(select(Bag).join(Allocation, Allocation.active_bag_id == Bag.id)
                         .where(Allocation.patient_id == patient_id).order_by(Bag.id))
    wristband = session.get(Patient, patient_id).wristband_id
    handover.dispatch(session, tech, bag.id, courier="Fast Courier", shipper="Dry shipper DS-3",
                      temperature_logger_id="TL-0042", location="Cell therapy unit")
    handover.receive(session, nurse, bag.id, location="Ward 3", scan=token_of(bag))
    handover.thaw(session, nurse, bag.id, location="Ward 3", scan=token_of(bag))
    check = bedside.bedside_check(session, nurse, wristband=wristband, bag_scan=token_of(bag), label_key=KEY)
    assert check.matches, check.failures
    bedside.confirm_second_person(session, nurse, check.check_id, username="nurse2", password=PASSWORD,
                                  checker_password=PASSWORD, label_key=KEY)
    infusions.start_infusion(session, nurse, bag.id, wristband=wristband, bag_scan=token_of(bag), label_key=KEY)


def test_the_3_million_stage_waits_until_the_10_patients_at_1_million_are_infused(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    clin = user(session, "clinician")
    low = [_ssc_patient(session, n) for n in range(1, 11)]
    for pid in low:
        prescriptions.prescribe(session, clin, PASSWORD, pid)  # 1 x10^6/kg: the first stage, never held
    for pid in low[:3]:
        _infuse(session, pid)
    eleventh, twelfth = _ssc_patient(session, 11), _ssc_patient(session, 12)
    session.close()

    clinician = client_as("clinician")
    page = clinician.get(f"/patients/{eleventh}/dose").get_data(as_text=True)
    assert 'id="dose-refusal"' in page and WAITING in page, page[page.find("<main"):][:2000]
    cohorts = clinician.get(f"/patients/cohorts/{SSC}").get_data(as_text=True)
    assert WAITING in cohorts and 'id="infused-low">3<' in cohorts
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    api = app.test_client()
    refused_run = api.post(f"/api/v1/patients/{eleventh}/dose-calculation", headers=headers, json={}).get_json()
    assert not refused_run["allowed"] and refused_run["weight_id"], refused_run
    session = app.extensions["mscbatch.db"].new_session()
    stored = session.scalar(select(Bag.id).where(Bag.status == "stored").order_by(Bag.id))
    session.close()
    for level in ("3000000", "1000000"):  # neither the next stage's level nor an eleventh patient at 1 x10^6/kg
        refused = api.post(f"/api/v1/patients/{eleventh}/prescriptions", headers=headers,
                           json=signing_body(refused_run["weight_id"], [stored], level))
        assert refused.status_code == 409, refused.get_json()
        assert "3 of the 10 patients of stage 'low' have been infused so far" in refused.get_json()["detail"]
    session = app.extensions["mscbatch.db"].new_session()
    assert session.scalar(select(Prescription).where(Prescription.patient_id == eleventh)) is None
    tenth = session.scalar(select(Prescription.id).where(Prescription.patient_id == low[9]))
    session.close()

    # a cancelled prescription gives its place back: patient 11 takes it, at 1 x10^6/kg
    cancelled = clinician.post(f"/patients/prescriptions/{tenth}/cancel", data={"password": PASSWORD, "reason": "patient withdrew"})
    assert cancelled.status_code == 302, cancelled.get_data(as_text=True)
    dry_run = api.post(f"/api/v1/patients/{eleventh}/dose-calculation", headers=headers, json={}).get_json()
    assert dry_run["allowed"] and dry_run["calculation"]["dose_level_cells_per_kg"] == 1000000, dry_run
    signed = api.post(f"/api/v1/patients/{eleventh}/prescriptions", headers=headers,
                      json=dry_run_body(api, headers, eleventh))
    assert signed.status_code == 201, signed.get_json()

    session = app.extensions["mscbatch.db"].new_session()
    for pid in low[3:9] + [eleventh]:
        _infuse(session, pid)
    session.close()
    ready = api.post(f"/api/v1/patients/{twelfth}/dose-calculation", headers=headers, json={}).get_json()
    assert ready["allowed"] and ready["calculation"]["dose_level_cells_per_kg"] == 3000000, ready
    assert 'id="infused-low">10<' in clinician.get(f"/patients/cohorts/{SSC}").get_data(as_text=True)
