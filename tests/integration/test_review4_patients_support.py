"""Helpers for the prescription API (no tests here): the signing endpoint requires the dose level, the bags and the
weight of the dry run the clinician saw (review 4), so a test signs what a dry run returned."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from mscbatch.audit.context import use_case
from mscbatch.custody.models import Infusion
from tests.conftest import PASSWORD


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
