"""Dose calculation and bag offering through the services, the pages and the API (issue 6, both databases)."""
from __future__ import annotations

from decimal import Decimal

from mscbatch.core.dosing import DoseAllocation
from mscbatch.patients.inventory import calculate
from mscbatch.site import site_today
from tests.conftest import api_token_for
from tests.integration.patient_factories import SSC, donor, lot_with_bags, patient, user


def _setup(app, **bag_args):  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    clin, tech = user(session, "clinician"), user(session, "technician")
    bags = lot_with_bags(session, tech, donor(session, tech), **bag_args)
    return session, clin, tech, bags


def test_62_5_kg_at_2_million_per_kg_takes_two_full_bags_and_a_25_million_partial_draw(app, users, client_as):
    session, clin, _tech, bags = _setup(app)
    p = patient(session, clin)
    result = calculate(session, p.id)
    a = result.allocation
    assert isinstance(a, DoseAllocation), result.refusal
    assert a.target_cells == Decimal(125_000_000)
    assert a.bag_count == 3 and a.delivered_cells == Decimal(125_000_000)
    assert a.low_cells <= a.delivered_cells <= a.high_cells
    full = [d for d in a.draws if not d.partial]
    partial = [d for d in a.draws if d.partial]
    assert len(full) == 2 and len(partial) == 1
    assert partial[0].cells == Decimal(25_000_000) and partial[0].volume_ml == Decimal("12.5")
    assert full[0].dmso_g == Decimal("2.75")  # 25 mL at 10 % DMSO x 1.10 g/mL
    assert (full[0].dmso_g / Decimal("62.5")) == Decimal("0.044")
    assert a.dmso_g_per_kg == Decimal("0.1100")
    pid = p.id
    session.rollback()  # SQLite: every transaction is a write transaction (BEGIN IMMEDIATE); end the read
    page = client_as("clinician").get(f"/patients/{pid}/dose")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "125,000,000" in html and "12.50 mL" in html and "partial draw" in html  # two decimals, as signed
    session.close()


def test_the_api_dry_run_gives_the_same_answer_and_writes_nothing(app, users):
    session, clin, _tech, bags = _setup(app)
    p = patient(session, clin)
    pid = p.id
    session.rollback()
    token = api_token_for(app, "clinician")
    response = app.test_client().post(f"/api/v1/patients/{pid}/dose-calculation", json={},
                                      headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["allowed"] and body["calculation"]["target_cells"] == 125000000
    assert len(body["calculation"]["draws"]) == 3
    assert all(b.status == "stored" for b in bags)
    session.rollback()
    session.close()


def test_a_weight_older_than_the_validity_period_is_refused(app, users):
    session, clin, _tech, _bags = _setup(app)
    p = patient(session, clin, weighed_days_ago=8)
    result = calculate(session, p.id)
    assert result.allocation is None and result.refusal.code == "weight_stale"
    session.close()


def test_expired_or_unreleased_bags_are_never_offered(app, users):
    session, clin, tech, _ = _setup(app, bags=1)
    d = donor(session, tech)
    expired = lot_with_bags(session, tech, d, bags=3, expires_in_days=-1)
    quarantined = lot_with_bags(session, tech, d, bags=3, status="quarantine")
    p = patient(session, clin)
    result = calculate(session, p.id)
    offered = set(result.bags)
    assert not offered & {str(b.id) for b in expired + quarantined}
    assert result.refusal is not None and result.refusal.code == "not_enough_cells"
    session.close()


def test_a_bag_of_another_recipients_familial_donor_is_never_offered(app, users):
    session = app.extensions["mscbatch.db"].new_session()
    clin, tech = user(session, "clinician"), user(session, "technician")
    mine = donor(session, tech, familial_for="SSC-BM-001")
    theirs = donor(session, tech, familial_for="SSC-BM-002")
    lot_with_bags(session, tech, theirs, product="BM-MSC", bags=4, cells=100_000_000)
    own = lot_with_bags(session, tech, mine, product="BM-MSC", bags=2, cells=50_000_000)
    p = patient(session, clin, protocol_id=SSC, code="SSC-BM-001", weight="62.5")
    assert p.familial_donor_id == mine.id
    result = calculate(session, p.id)
    a = result.allocation
    assert a is not None, result.refusal
    assert {d.bag_id for d in a.draws} <= {str(b.id) for b in own}
    assert {e.reason for e in a.excluded} == {"for use by another intended recipient only"}
    session.close()


def test_a_dose_that_no_partial_draw_can_bring_inside_the_tolerance_band_is_refused(app, users):
    session, clin, _tech, _bags = _setup(app, bags=1, cells=1_000_000_000, volume_ml="1")
    p = patient(session, clin)
    result = calculate(session, p.id)
    assert result.allocation is None and result.refusal.code == "outside_tolerance"
    session.close()


def test_a_patient_who_is_not_enrolled_gets_no_dose(app, users):
    session, clin, _tech, _bags = _setup(app)
    p = patient(session, clin, enrol=False)
    assert calculate(session, p.id).refusal.code == "not_enrolled"
    session.close()


def _endotoxin_result(session, actor, lot_id, value, *, invalidated=False):  # type: ignore[no-untyped-def]
    """An endotoxin release result written directly (the release capability has its own entry tests)."""

    from mscbatch.audit.context import use_case
    from mscbatch.database import utcnow
    from mscbatch.lots.models import Lot
    from mscbatch.release.models import ReleaseResult
    from mscbatch.release.specs import spec_for_lot

    spec = spec_for_lot(session.get(Lot, lot_id))
    with use_case(session, actor):
        session.add(ReleaseResult(
            lot_id=lot_id, test_id="endotoxin", spec_id=spec.id, spec_version=spec.version, spec_sha256=spec.sha256,
            value=value, first_value=value, unit="EU/mL", method="LAL", analyst="A. Analyst", tested_on=site_today(),
            entered_by_id=actor.id, entered_at=utcnow(), invalidated_at=utcnow() if invalidated else None,
            invalidated_reason="OOS invalidated" if invalidated else None))


def test_the_lots_endotoxin_result_gives_the_endotoxin_load_against_the_k_over_m_limit(app, users, client_as):
    session, clin, tech, bags = _setup(app)
    _endotoxin_result(session, tech, bags[0].lot_id, "0.9", invalidated=True)  # never counts
    _endotoxin_result(session, tech, bags[0].lot_id, "0.2")
    p = patient(session, clin)
    result = calculate(session, p.id)
    a = result.allocation
    assert a is not None, result.refusal
    assert all(result.bags[d.bag_id][0].endotoxin_eu_per_ml == Decimal("0.2") for d in a.draws)
    assert a.total_volume_ml == Decimal("62.5")
    assert a.endotoxin_eu == Decimal("12.5")  # 62.5 mL x 0.2 EU/mL
    assert a.endotoxin_limit_eu == Decimal("312.5")  # K 5 EU/kg/h x 62.5 kg x 1 h
    pid = p.id
    session.rollback()
    html = client_as("clinician").get(f"/patients/{pid}/dose").get_data(as_text=True)
    assert "12.5" in html and "EU (limit 312.5" in html and "no result on the bags" not in html
    session.close()


def test_an_endotoxin_load_above_the_k_over_m_limit_is_refused_by_the_core_with_its_reason(app, users):
    session, clin, tech, bags = _setup(app)
    _endotoxin_result(session, tech, bags[0].lot_id, "6")  # 62.5 mL x 6 = 375 EU > 312.5 EU
    p = patient(session, clin)
    result = calculate(session, p.id)
    assert result.allocation is None and result.refusal is not None
    assert result.refusal.code == "endotoxin_limit"
    assert "above K x weight x time" in result.refusal.reason and "312.5" in result.refusal.reason
    session.close()


def test_bags_of_a_lot_without_an_endotoxin_result_report_no_load(app, users):
    session, clin, _tech, _bags = _setup(app)
    p = patient(session, clin)
    a = calculate(session, p.id).allocation
    assert a is not None and a.endotoxin_eu is None
    session.close()
