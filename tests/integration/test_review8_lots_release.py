"""Review 8: DOMAIN.md sections 4 (lots and manufacturing) and 5 (release specification), rule by rule, through the
pages and the JSON API a user takes."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mscbatch.release import specs
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import OosInvestigation, ReleaseResult
from mscbatch.site import site_today
from tests.conftest import PASSWORD, api_token_for
from tests.integration.test_release_support import seed_quarantine_lot, user
from tests.integration.test_s37_release_seen import seen

COMMON = {"analyst": "Tom QC", "tested_on": site_today().isoformat()}


@pytest.fixture
def tested_lot(app, users, monkeypatch, spec_dir):  # type: ignore[no-untyped-def]
    """A quarantined adipose lot with every result entered under msc_default version 1 (viability 92.5 %)."""
    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id)
    return lot_id


def _install_v2(spec_dir: Path, *replacements: tuple[str, str]) -> None:
    text = (spec_dir / "msc_default_v1.toml").read_text().replace('version = "1"', 'version = "2"')
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    (spec_dir / "msc_default_v2.toml").write_text(text)
    specs.all_specs.cache_clear()


def _enter(client: Any, lot_id: int, test_id: str, value: str, unit: str) -> None:
    response = client.post(f"/release/lots/{lot_id}/results", data={
        "result-test_id": test_id, "result-value": value, "result-unit": unit,
        **{f"result-{k}": v for k, v in COMMON.items()}})
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]


def _api(app: Any, username: str, path: str) -> Any:
    token = api_token_for(app, username)
    response = app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)[:3000]
    return response.get_json()


def _rows(app: Any, model: Any, *where: Any) -> list[Any]:
    with app.extensions["mscbatch.db"].new_session() as session:
        return list(session.scalars(select(model).where(*where).order_by(model.id)))


# --- Section 5: "Any fail = OOS: an investigation record is required" under the version in force --------------------

@pytest.mark.parametrize("change", ["limit", "blocking"])
def test_a_result_that_fails_only_under_a_new_version_gets_its_oos_and_a_retest_can_clear_it(
        app, client_as, tested_lot, spec_dir, change):  # type: ignore[no-untyped-def]
    """Viability 92.5 % passed version 1 (>= 70 %); version 2, installed while the lot waits in quarantine, asks
    >= 95 % (or makes the 48 % potency blocking at >= 50 %). The lot is judged under version 2: the result fails,
    but no OOS was ever opened for it (OOS are opened when a result is entered). A failing result stands until its
    OOS investigation invalidates it, so the retest QC enters could never count: the lot was stuck FAIL with no
    investigation to close. The retest now opens the missing investigation of the earlier result, which QA closes
    with that retest."""
    if change == "limit":
        _install_v2(spec_dir, ("min = 70", "min = 95"))
        test_id, retest = "viability", "96.5"
    else:
        _install_v2(spec_dir, ("min = 20\ngroup = \"potency\"\nmethod = \"co-culture with PHA-stimulated PBMC\"\n"
                               "blocking = false", "min = 50\ngroup = \"potency\"\nmethod = \"co-culture with "
                               "PHA-stimulated PBMC\"\nblocking = true"))
        test_id, retest = "potency_pbmc", "61"
    tech, qa = client_as("technician"), client_as("qa2")
    status = _api(app, "qa2", f"/api/v1/release/lots/{tested_lot}")
    assert status["spec_version"] == "2" and status["overall"] == "fail"
    assert any("has no OOS investigation yet" in r and "retest" in r for r in status["refusals_for_you"])

    _enter(tech, tested_lot, test_id, retest, "%")
    first = _rows(app, ReleaseResult, ReleaseResult.lot_id == tested_lot, ReleaseResult.test_id == test_id)
    investigations = _rows(app, OosInvestigation, OosInvestigation.lot_id == tested_lot)
    assert [o.result_id for o in investigations] == [first[0].id], "the earlier result's OOS is opened"
    assert "version 2" in investigations[0].description
    page = qa.get(f"/release/lots/{tested_lot}").get_data(as_text=True)
    assert 'name="oos-retest_result_id"' in page and f'value="{first[-1].id}"' in page

    closed = qa.post(f"/release/oos/{investigations[0].id}", data={
        "oos-investigation": "Specification version 2 raised the limit; the retest meets it.",
        "oos-retest_result_id": str(first[-1].id), "oos-assignable_cause": "other", "oos-password": PASSWORD,
        **seen(qa, tested_lot)})
    assert closed.status_code == 302, closed.get_data(as_text=True)[:3000]
    status = _api(app, "qa2", f"/api/v1/release/lots/{tested_lot}")
    verdict = next(v for v in status["verdicts"] if v["test_id"] == test_id)
    assert verdict["status"] == "pass" and status["overall"] == "ready", verdict


def test_a_result_failing_only_under_a_new_version_is_not_corrected_into_compliance(
        app, client_as, tested_lot, spec_dir):  # type: ignore[no-untyped-def]
    """A failing result is settled by its investigation, never typed over (FDA OOS guidance): the correction form
    refused that only when an OOS was open, so the 92.5 % failing version 2 (no OOS yet) could be "corrected" to
    96.5 % and pass."""
    _install_v2(spec_dir, ("min = 70", "min = 95"))
    viability = _rows(app, ReleaseResult, ReleaseResult.lot_id == tested_lot, ReleaseResult.test_id == "viability")[0]
    response = client_as("technician").post(f"/release/results/{viability.id}/correct", data={
        "value": "96.5", "unit": "%", "reason": "typed 92.5 instead of 96.5"})
    assert response.status_code == 409, response.get_data(as_text=True)[:3000]
    words = response.get_data(as_text=True)
    assert "version 2" in words and "retest" in words
    assert _rows(app, ReleaseResult, ReleaseResult.id == viability.id)[0].value == "92.5"
    status = _api(app, "qa2", f"/api/v1/release/lots/{tested_lot}")
    assert status["overall"] == "fail"


@pytest.mark.parametrize("version_1", ["installed", "removed"])
def test_an_oos_of_a_test_a_new_version_dropped_is_judged_under_the_retest_s_version_not_a_server_error(
        app, users, client_as, monkeypatch, spec_dir, version_1):  # type: ignore[no-untyped-def]
    """Karyotype "abnormal" opens an OOS under version 1 and QC enters a retest "normal"; version 2 then reports the
    karyotype under a new test id (the loader's own advice for a new way of reporting). Invalidating the OOS with
    the retest looked the test up in version 2 and fell over (500). The retest is judged under the version it was
    entered under; with that version no longer installed the refusal says so, nothing signed."""
    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id, {"karyotype": ("abnormal", "")})
    tech, qa = client_as("technician"), client_as("qa2")
    _enter(tech, lot_id, "karyotype", "normal", "none")  # the form's "no unit (a result word)"
    _install_v2(spec_dir, ('id = "karyotype"', 'id = "karyotype_gbanding"'))
    if version_1 == "removed":
        (spec_dir / "msc_default_v1.toml").unlink()
        specs.all_specs.cache_clear()
    oos = _rows(app, OosInvestigation, OosInvestigation.lot_id == lot_id)[0]
    retest = _rows(app, ReleaseResult, ReleaseResult.lot_id == lot_id, ReleaseResult.test_id == "karyotype")[-1]
    response = qa.post(f"/release/oos/{oos.id}", data={
        "oos-investigation": "Culture contaminated with another sample: the retest is normal.",
        "oos-retest_result_id": str(retest.id), "oos-assignable_cause": "sample", "oos-password": PASSWORD,
        **seen(qa, lot_id)})
    status = _rows(app, OosInvestigation, OosInvestigation.id == oos.id)[0].status
    if version_1 == "installed":
        assert response.status_code == 302, response.get_data(as_text=True)[:3000]
        assert status == "invalidated"
        return
    assert response.status_code == 409, response.get_data(as_text=True)[:3000]
    words = response.get_data(as_text=True)
    assert "&#39;karyotype&#39; is no longer in specification msc_default version 2" in words and "Confirm" in words
    assert status == "open"


# --- Section 5: thresholds exactly at the limit, entered through the JSON API ------------------------------------------

@pytest.mark.parametrize(("product", "test_id", "value", "unit", "verdict"), [
    ("AT-MSC", "cd73", "95", "%", "pass"), ("AT-MSC", "cd73", "94.99", "%", "fail"),
    ("AT-MSC", "cd45", "2", "%", "pass"), ("AT-MSC", "cd45", "2.01", "%", "fail"),
    ("AT-MSC", "hla_dr", "2", "%", "pass"), ("AT-MSC", "hla_dr", "2.1", "%", "fail"),
    ("AT-MSC", "viability", "70", "%", "pass"), ("AT-MSC", "viability", "69.99", "%", "fail"),
    ("AT-MSC", "endotoxin", "0.49", "EU/mL", "pass"), ("AT-MSC", "endotoxin", "0.5", "EU/mL", "fail"),
    ("AT-MSC", "viable_cell_count", "100", "x10^6 cells", "pass"),
    ("AT-MSC", "viable_cell_count", "99999999", "cells", "fail"),
    ("UC-MSC", "viability", "80", "%", "fail"), ("UC-MSC", "viability", "80.01", "%", "pass"),
    ("AT-MSC", "potency_pbmc", "19.9", "%", "informative"),
])
def test_a_result_exactly_at_its_limit_is_judged_as_the_specification_writes_it(
        app, users, monkeypatch, product, test_id, value, unit, verdict):  # type: ignore[no-untyped-def]
    """ISCT >= 95 % and <= 2 % (HLA-DR blocking by default), viability >= 70 % (BM/AT) but > 80 % (UC), endotoxin
    < 0.5 EU/mL, a viable count >= 100 x10^6; a fail opens its OOS at once, an informative test never does."""
    from tests.integration.test_release_support import cord_quarantine_lot

    lot_id = seed_quarantine_lot(app, monkeypatch)
    if product == "UC-MSC":
        with app.extensions["mscbatch.db"].new_session() as session:
            lot_id = cord_quarantine_lot(session)
            session.commit()
    token = api_token_for(app, "technician")
    response = app.test_client().post(f"/api/v1/release/lots/{lot_id}/results", headers={
        "Authorization": f"Bearer {token}"}, json={"test_id": test_id, "value": value, "unit": unit,
                                                    "analyst": "Tom QC", "tested_on": site_today().isoformat()})
    assert response.status_code == 201, response.get_data(as_text=True)
    status = _api(app, "qa", f"/api/v1/release/lots/{lot_id}")
    assert next(v for v in status["verdicts"] if v["test_id"] == test_id)["status"] == verdict
    opened = _rows(app, OosInvestigation, OosInvestigation.lot_id == lot_id)
    assert len(opened) == (1 if verdict == "fail" else 0)


# --- Section 5 / preamble: a value the specification marks "to confirm" is said so in the UI --------------------------

def test_the_review_page_and_the_certificate_say_what_the_specification_notes_on_a_test(
        app, users, client_as, monkeypatch, spec_dir):  # type: ignore[no-untyped-def]
    """The viable cell count's minimum is a site value "to confirm" and HLA-DR may be informative (<= 20 %, not
    release-blocking): the specification says so in each test's note, which neither the review page nor the
    certificate printed: QA read "100 x10^6 cells" as a settled limit."""
    from tests.integration.test_review5_release_coa import _coa

    _install_v2(spec_dir, ('variant = "blocking"', 'variant = "informative"'))
    lot_id = seed_quarantine_lot(app, monkeypatch)
    qa = client_as("qa")
    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert "Site value to confirm: minimum viable cells in the lot" in page
    assert "Informative, not release-blocking (common GMP practice; Dominici 2006 asks &lt;= 2 %)" in page
    certificate = _coa(qa, lot_id)
    assert "Site value to confirm" in certificate and "Informative, not release-blocking" in certificate


def test_the_certificate_names_each_result_s_analyst_and_instrument_as_the_review_page_does(
        app, users, client_as, monkeypatch):  # type: ignore[no-untyped-def]
    """DOMAIN.md section 5: each result has its value, unit, method, analyst, date and instrument or reagent lot.
    The review page shows them; the certificate printed the method alone."""
    from tests.integration.test_review5_release_coa import _coa

    lot_id = seed_quarantine_lot(app, monkeypatch)
    tech = client_as("technician")
    response = tech.post(f"/release/lots/{lot_id}/results", data={
        "result-test_id": "endotoxin", "result-value": "0.12", "result-unit": "EU/mL", "result-analyst": "Ana Lyst",
        "result-tested_on": site_today().isoformat(), "result-instrument": "Kinetic reader KR-7",
        "result-reagent_lot": "LAL-5531"})
    assert response.status_code == 302
    certificate = _coa(client_as("qa"), lot_id)
    assert "Ana Lyst" in certificate and "KR-7" in certificate and "LAL-5531" in certificate


# --- Section 5: conditional release names only tests the specification allows to be pending --------------------------

def test_a_conditional_release_naming_a_test_the_specification_does_not_let_be_pending_is_refused(
        app, users, client_as, monkeypatch):  # type: ignore[no-untyped-def]
    """The page offers sterility only (EudraLex Part IV 11: a slow test still incubating), but the posted form was
    not checked against it: naming the informative potency test, not yet entered, signed a conditional release the
    specification does not allow (core.verdicts.can_release skipped informative tests before looking at it)."""
    from mscbatch.lots.models import Lot

    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id, skip=("potency_pbmc",))
    response = client_as("qa2").post(f"/release/lots/{lot_id}/release", data={**seen(client_as("qa2"), lot_id),
        "action": "conditional", "release-conditional_tests": "potency_pbmc", "release-password": PASSWORD,
        "release-justification": "Potency assay still running, results expected next week."})
    assert response.status_code == 409, response.get_data(as_text=True)[:3000]
    assert "cannot be pending at conditional release" in response.get_data(as_text=True)
    assert _rows(app, Lot, Lot.id == lot_id)[0].status == "quarantine"


# --- Section 4: the passage limit and cumulative PD belong to the product specification ------------------------------

def test_the_api_records_passages_up_to_the_product_limit_and_refuses_the_next(app, users):  # type: ignore[no-untyped-def]
    """AT-MSC allows P5 (config/products.toml culture.max_passage, warning from P4) and 25 cumulative PD: P5 is
    recorded with its warning, P6 is a 409 naming the limit; a P0 of exactly 25.00 PD is recorded, 25.01 refused."""
    from datetime import timedelta

    from mscbatch.lots import steps
    from tests.integration.lot_factories import TODAY, M, approved_adipose_donor, passages, start_lot

    with app.extensions["mscbatch.db"].new_session() as session:
        donor = approved_adipose_donor(session)
        lot_id = start_lot(session, donor)
        passages(session, lot_id, [(1 * M, 2 * M)] * 5, start_days_ago=19)  # P0..P4, PD 1 each
        isolated = [start_lot(session, donor) for _ in range(2)]
        for other in isolated:
            # 25 doublings take at least 15.6 days (15 h each: config/products.toml culture.min_doubling_time)
            steps.record_isolation(session, user(session, "technician"), other, performed_on=TODAY - timedelta(days=17))
        session.commit()
    token = api_token_for(app, "technician")
    client = app.test_client()

    def passage(lot: int, number: int, seeded: int, harvested: int) -> Any:
        return client.post(f"/api/v1/lots/{lot}/passages", headers={"Authorization": f"Bearer {token}"}, json={
            "passage_number": number, "performed_on": TODAY.isoformat(), "seeded_cells": seeded,
            "harvested_cells": harvested, "viability_percent": "95"})

    fifth = passage(lot_id, 5, 1 * M, 2 * M)
    assert fifth.status_code == 201 and "at or past the warning level P4 (limit P5)" in fifth.get_json()["warnings"]
    sixth = passage(lot_id, 6, 1 * M, 2 * M)
    assert sixth.status_code == 409 and "passage P6 is beyond the product limit of P5" in sixth.get_data(as_text=True)
    exact = passage(isolated[0], 0, 1000, 1000 * 2**25)  # log2(2^25) = 25.00
    assert exact.status_code == 201 and exact.get_json()["cumulative_pd"] == "25.00", exact.get_json()
    over = passage(isolated[1], 0, 1000, 33_786_000_000)  # log2(33786000) = 25.01
    assert over.status_code == 409, over.get_json()
    assert "cumulative population doublings 25.01 exceed the product limit 25.0" in over.get_data(as_text=True)


def test_a_result_of_a_test_a_new_version_dropped_is_not_corrected_and_the_page_says_why(
        app, client_as, tested_lot, spec_dir):  # type: ignore[no-untyped-def]
    """Version 2 reports the karyotype under a new test id: correcting the version 1 karyotype result was refused as
    "Choose a test of specification msc_default v2." on a page with no test to choose."""
    _install_v2(spec_dir, ('id = "karyotype"', 'id = "karyotype_gbanding"'))
    karyotype = _rows(app, ReleaseResult, ReleaseResult.lot_id == tested_lot, ReleaseResult.test_id == "karyotype")[0]
    response = client_as("technician").post(f"/release/results/{karyotype.id}/correct", data={
        "value": "abnormal", "unit": "", "reason": "misread the report"})
    assert response.status_code == 409, response.get_data(as_text=True)[:3000]
    assert "is no longer in specification msc_default version 2" in response.get_data(as_text=True)
    assert _rows(app, ReleaseResult, ReleaseResult.id == karyotype.id)[0].value == "normal"
