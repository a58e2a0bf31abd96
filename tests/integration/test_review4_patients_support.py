"""Helpers for the prescription API (no tests here): the signing endpoint requires the dose level, the bags and the
weight of the dry run the clinician saw (review 4), so a test signs what a dry run returned."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from mscbatch.audit.context import use_case
from mscbatch.custody import bedside, handover, infusions
from mscbatch.custody.models import Infusion
from mscbatch.lots.models import Bag
from mscbatch.patients import prescriptions
from tests.conftest import PASSWORD
from tests.integration.patient_factories import SLE, donor, lot_with_bags, patient, user
from tests.integration.test_custody_support import KEY, token_of


def dry_run_body(api: Any, headers: dict[str, str], patient_id: int, **extra: Any) -> dict[str, Any]:
    """The signing body for what the dry run (POST .../dose-calculation with `extra`, e.g. planned_at) returned:
    its level, bags and weight, and the password."""
    dry = api.post(f"/api/v1/patients/{patient_id}/dose-calculation", headers=headers,
                   json={k: v for k, v in extra.items() if k in ("planned_at", "dose_level_cells_per_kg")}).get_json()
    assert dry.get("allowed"), dry
    calc = dry["calculation"]
    return {"dose_level_cells_per_kg": calc["dose_level_cells_per_kg"], "weight_id": dry["weight_id"],
            "bag_ids": [int(d["bag_id"]) for d in calc["draws"]], "password": PASSWORD, **extra}


def signing_body(patient_weight_id: int, bag_ids: list[int], level: str = "2000000", **extra: Any) -> dict[str, Any]:
    """A complete signing body for values known without a dry run (a test that expects a refusal)."""
    return {"dose_level_cells_per_kg": level, "weight_id": patient_weight_id, "bag_ids": bag_ids,
            "password": PASSWORD, **extra}


def backdate_infusions(session: Any, *, days: int, patient_ids: list[int] | None = None) -> None:
    """Move the infusions' starts `days` earlier (every infusion, or those of `patient_ids`): the protocol's
    observation period after them has then passed. Audited, with its reason."""
    with use_case(session, None, "test: the infusions took place earlier"):
        query = select(Infusion)
        if patient_ids is not None:
            query = query.where(Infusion.patient_id.in_(patient_ids))
        for infusion in session.scalars(query):
            infusion.started_at = infusion.started_at - timedelta(days=days)


def five_infused(db_session: Any) -> list[int]:
    """The first SLE-UC cohort: 5 patients at 2 x10^6/kg, each prescribed, dispatched, received, thawed, checked at
    the bedside by two people and infused (today). Returns the patients' ids."""
    tech, clin, nurse = user(db_session, "technician"), user(db_session, "clinician"), user(db_session, "nurse")
    lot_with_bags(db_session, tech, donor(db_session, tech), bags=20, cells=70_000_000)
    pids = []
    for _ in range(5):
        row = patient(db_session, clin)
        pids.append(row.id)
        rx = prescriptions.prescribe(db_session, clin, PASSWORD, row.id)
        bag = db_session.get(Bag, int(rx.calculation["draws"][0]["bag_id"]))
        handover.dispatch(db_session, tech, bag.id, courier="C", shipper="S", temperature_logger_id="T")
        handover.receive(db_session, nurse, bag.id, scan=token_of(bag))
        handover.thaw(db_session, nurse, bag.id, scan=token_of(bag))
        check = bedside.bedside_check(db_session, nurse, wristband=row.wristband_id, bag_scan=token_of(bag),
                                      label_key=KEY)
        bedside.confirm_second_person(db_session, nurse, check.check_id, username="nurse2", password=PASSWORD,
                                      checker_password=PASSWORD, label_key=KEY)
        infusions.start_infusion(db_session, nurse, bag.id, wristband=row.wristband_id, bag_scan=token_of(bag),
                                 label_key=KEY)
    return pids


def decide_escalation(client: Any, decided_on: date) -> Any:
    """The clinician's SLE-UC escalation decision (adapted stage, 4 x10^6/kg) through the cohort page's form."""
    return client.post(f"/patients/cohorts/{SLE}/decision", data={
        "stage_id": "adapted", "chosen_cells_per_kg": "4000000", "decided_on": decided_on.isoformat(),
        "toxicity_review": "CTCAE review of patients 1-5: no excessive toxicity", "password": PASSWORD})
