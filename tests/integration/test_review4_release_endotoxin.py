"""The dose's endotoxin check (K/M, Ph. Eur. 5.1.10) is refused, never skipped, when a released lot's signed
specification file was edited in place or removed (review 4).

Before: release.queries.endotoxin_eu_per_ml caught spec_of_lot's NotFound and left the lot out, so an OOS batch
with 20 EU/mL released as an exception was offered to its patient with "no result" for endotoxin, and could be
prescribed. Now the dose page, the API and the prescription refuse with the administrator's plain message (409).
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pytest

from mscbatch.audit.context import use_case
from mscbatch.database import utcnow
from mscbatch.lots.models import Lot
from mscbatch.patients import inventory, prescriptions
from mscbatch.release import specs
from mscbatch.release.models import ReleaseResult
from mscbatch.release.specs import SpecificationUnusable
from mscbatch.site import site_today
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_bedside import _disposition


def _exceptional_lot_with_endotoxin(session: Any, code: str) -> tuple[int, Any]:
    """A lot released as an exception for patient `code`, its endotoxin result 20 EU/mL (an OOS batch)."""
    tech, clinician = user(session, "technician"), user(session, "clinician")
    lot_id = lot_with_bags(session, tech, donor(session, tech))[0].lot_id
    named = patient(session, clinician, code=code)
    _disposition(session, lot_id, "exceptional_release", patient_code=code)
    spec = specs.spec_for_lot(session.get(Lot, lot_id))
    with use_case(session, tech):
        session.add(ReleaseResult(lot_id=lot_id, test_id="endotoxin", spec_id=spec.id, spec_version=spec.version,
                                  spec_sha256=spec.sha256, value="20", first_value="20", unit="EU/mL", method="LAL",
                                  analyst="QC", tested_on=site_today(), entered_by_id=tech.id, entered_at=utcnow()))
    return lot_id, named


def _edit_in_place(session: Any, lot_id: int) -> Path:
    path = specs.spec_for_lot(session.get(Lot, lot_id)).path
    path.write_text(path.read_text().replace('method = "G-banding"', 'method = "G-banding (400 bands)"', 1))
    specs.all_specs.cache_clear()
    return path


@pytest.mark.parametrize("fault", ["edited", "removed"])
def test_the_dose_is_refused_when_the_released_lots_signed_specification_changed(  # type: ignore[no-untyped-def]
        app, users, db_session, client_as, spec_dir, fault):
    lot_id, named = _exceptional_lot_with_endotoxin(db_session, "SLE-UC-951")
    before = inventory.calculate(db_session, named.id)
    assert before.allocation is None and before.refusal.code == "endotoxin_limit", before.refusal
    path = _edit_in_place(db_session, lot_id)
    if fault == "removed":
        path.unlink()
        specs.all_specs.cache_clear()
    lot_number = db_session.get(Lot, lot_id).lot_number
    db_session.close()
    page = client_as("clinician").get(f"/patients/{named.id}/dose")
    assert page.status_code == 409, page.status_code
    words = html.unescape(page.get_data(as_text=True))
    assert f"the endotoxin limit (K/M, Ph. Eur. 5.1.10) of lot {lot_number} cannot be checked" in words
    assert ("has changed since (its SHA-256 differs)" if fault == "edited" else "is no longer in") in words
    token = api_token_for(app, "clinician")
    api = app.test_client().post(f"/api/v1/patients/{named.id}/dose-calculation", json={},
                                 headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 409, api.get_data(as_text=True)
    assert "cannot be checked" in api.get_json()["detail"]


def test_no_prescription_is_signed_while_the_endotoxin_limit_cannot_be_checked(  # type: ignore[no-untyped-def]
        app, users, db_session, spec_dir):
    lot_id, named = _exceptional_lot_with_endotoxin(db_session, "SLE-UC-952")
    _edit_in_place(db_session, lot_id)
    with pytest.raises(SpecificationUnusable, match="endotoxin limit"):
        prescriptions.prescribe(db_session, user(db_session, "clinician"), PASSWORD, named.id)


def test_a_late_result_for_a_lot_whose_signed_specification_changed_is_a_409_not_a_404(  # type: ignore[no-untyped-def]
        app, users, db_session, spec_dir):
    """The lot exists; its specification cannot be used. A 404 told an API client the lot was not there."""
    lot_id, _named = _exceptional_lot_with_endotoxin(db_session, "SLE-UC-953")
    _edit_in_place(db_session, lot_id)
    count = db_session.query(ReleaseResult).filter_by(lot_id=lot_id).count()
    db_session.close()
    token = api_token_for(app, "technician")
    answer = app.test_client().post(f"/api/v1/release/lots/{lot_id}/results", headers={"Authorization": f"Bearer {token}"},
                                    json={"test_id": "sterility", "value": "negative", "unit": "", "analyst": "QC",
                                          "tested_on": site_today().isoformat()})
    assert answer.status_code == 409, answer.get_data(as_text=True)
    assert answer.get_json()["title"] == "Release specification cannot be used"
    assert "has changed since (its SHA-256 differs)" in answer.get_json()["detail"]
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.query(ReleaseResult).filter_by(lot_id=lot_id).count() == count
