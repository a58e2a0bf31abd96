"""CSV exports: header row, UTF-8, ISO dates, no identity beyond pseudonymised codes, formula-injection safe,
and the same role rules on the page and the API."""
from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from mscbatch.site import site_today
from tests.conftest import api_token_for

EVIL = {"analyst": "=HYPERLINK(\"http://evil\")", "instrument": "@SUM(A1)", "reagent_lot": "+1-2", "method": "-3+4"}


@pytest.fixture
def exported(app, users):  # type: ignore[no-untyped-def]
    """An approved donor, a lot frozen into 3 bags, and one release result with formula-like text."""
    from mscbatch.release import results
    from tests.integration.lot_factories import approved_adipose_donor, cryopreserved_lot
    from tests.integration.test_donors import user

    session = app.extensions["mscbatch.db"].new_session()
    try:
        lot_id, bags = cryopreserved_lot(session, approved_adipose_donor(session), count=3)
        results.enter_result(session, user(session, "technician"), lot_id, results.ResultEntry(
            test_id="cd105", value="98", unit="%", tested_on=site_today(), **EVIL))
        from mscbatch.lots.models import Lot

        lot = session.get(Lot, lot_id)
        return {"lot_number": lot.lot_number, "dins": [b.din for b in bags], "donor_id": lot.donor_id}
    finally:
        session.close()


def _rows(response):  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(response.data.decode("utf-8"))))


def test_lots_csv_has_a_header_iso_dates_and_only_the_donor_code(client_as, exported, app):
    from mscbatch.donors.models import Donor

    rows = _rows(client_as("nurse").get("/exports/lots.csv"))
    assert [r["lot_number"] for r in rows] == [exported["lot_number"]]
    row = rows[0]
    with app.app_context():
        donor = app.extensions["mscbatch.db"].session.get(Donor, exported["donor_id"])
        code = donor.code
    assert row["donor_code"] == code
    assert not {"initials", "date_of_birth", "donor_id", "patient_id"} & set(row)
    assert row["collection_at"].endswith("+00:00") and "T" in row["collection_at"]
    date.fromisoformat(row["collection_at"][:10])
    assert row["harvest_total_cells"] == "100000000" and row["tissue_amount"] == "50.00"


def test_bags_csv_lists_each_din_with_its_lot_and_product_code(client_as, exported):
    rows = _rows(client_as("technician").get("/exports/bags.csv"))
    assert [r["din"] for r in rows] == exported["dins"]
    assert {r["lot_number"] for r in rows} == {exported["lot_number"]}
    assert [r["division"] for r in rows] == ["A0", "B0", "C0"]
    assert rows[0]["expires_at"][:4].isdigit() and rows[0]["usable"] in ("true", "false")
    assert rows[0]["volume_ml"] == "20.00"


def test_release_results_csv_defuses_formulas(client_as, exported):
    rows = _rows(client_as("qa").get("/exports/release-results.csv"))
    assert len(rows) == 1
    row = rows[0]
    for field, value in EVIL.items():
        assert row[field] == "'" + value, field
    assert row["value"] == "98" and row["tested_on"] == site_today().isoformat() and row["invalidated"] == "false"


def test_formula_cells_are_quoted_but_numbers_are_not():
    from decimal import Decimal

    from mscbatch.interop.csv_exports import cell

    assert [cell(v) for v in ("=1+1", "+1+1", "-1-1", "-2+3+cmd|' /C calc'!A0", "@A1", "\tx", "plain", "a=b")] == [
        "'=1+1", "'+1+1", "'-1-1", "'-2+3+cmd|' /C calc'!A0", "'@A1", "'\tx", "plain", "a=b"]
    # a text that is a plain number (a result value stored as typed) is read by a spreadsheet as that number, never
    # as a formula: quoting it would turn -0.5 into text
    assert [cell(v) for v in ("-0.5", "+1", "-1", "12.50", " -1", "-1e5", "-\u0661")] == [
        "-0.5", "+1", "-1", "12.50", "' -1", "'-1e5", "'-\u0661"]
    assert cell(Decimal("-150.0")) == "-150.0" and cell(-3) == -3 and cell(None) == "" and cell(True) == "true"


def test_a_nurse_is_refused_the_release_results_on_the_page_and_the_api(app, client_as, exported):
    assert client_as("nurse").get("/exports/release-results.csv").status_code == 403
    token = api_token_for(app, "nurse")
    response = app.test_client().get("/api/v1/exports/release-results.csv", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403 and response.mimetype == "application/problem+json"
    page = client_as("nurse").get("/exports").get_data(as_text=True)
    assert "/exports/lots.csv" in page and "/exports/release-results.csv" not in page


def test_the_api_gives_the_same_file_as_the_page(app, client_as, exported):
    token = api_token_for(app, "clinician")
    api = app.test_client().get("/api/v1/exports/bags.csv", headers={"Authorization": f"Bearer {token}"})
    page = client_as("clinician").get("/exports/bags.csv")
    assert _rows(api) == _rows(page)
    assert app.test_client().get("/api/v1/exports/bags.csv").status_code == 401


def test_the_exports_page_lists_every_export_for_qa(client_as):
    page = client_as("qa").get("/exports").get_data(as_text=True)
    for name in ("lots", "bags", "release-results"):
        assert f"/exports/{name}.csv" in page
    assert client_as("qa").get("/exports/lots.csv").data.decode("utf-8").startswith("lot_number,product_id")


def test_infusions_csv_has_the_trial_code_only_and_is_refused_to_nurses(app, client_as, users, db_session):
    from mscbatch.custody import infusions
    from mscbatch.patients.models import Patient
    from tests.integration.patient_factories import user
    from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag

    ward = prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    infusion = infusions.start_infusion(db_session, user(db_session, "nurse"), ward.bag_id, wristband=ward.wristband, bag_scan=ward.token,
                                        label_key=KEY)
    infusions.end_infusion(db_session, user(db_session, "nurse"), infusion.id, volume_ml="24.5")
    infusions.record_reaction(db_session, user(db_session, "nurse"), infusion.id, infusions.ReactionDetails(
        "Fever", "2", "38.5 °C"))
    patient = db_session.get(Patient, ward.patient_id)
    code, initials, infusion_id = patient.code, patient.initials, infusion.id
    db_session.rollback()  # end the read transaction: SQLite would otherwise keep the requests waiting
    rows = _rows(client_as("qa").get("/exports/infusions.csv"))
    assert len(rows) == 1
    row = rows[0]
    assert row["patient_code"] == code and row["infusion_id"] == str(infusion_id)
    assert row["status"] == "ended" and row["volume_infused_ml"] == "24.50"
    assert row["reaction_count"] == "1" and row["worst_reaction_grade"] == "2"
    assert not {"initials", "date_of_birth", "wristband_id", "patient_id"} & set(row)
    text = client_as("clinician").get("/exports/infusions.csv").get_data(as_text=True)
    assert initials not in text.split("\r\n", 1)[1].replace(code, "")
    token = api_token_for(app, "clinician")
    api = app.test_client().get("/api/v1/exports/infusions.csv", headers={"Authorization": f"Bearer {token}"})
    assert _rows(api) == rows
    assert client_as("admin").get("/exports/infusions.csv").status_code == 403  # reads no patient
    assert client_as("nurse").get("/exports/infusions.csv").status_code == 403
    nurse = api_token_for(app, "nurse")
    refused = app.test_client().get("/api/v1/exports/infusions.csv", headers={"Authorization": f"Bearer {nurse}"})
    assert refused.status_code == 403 and refused.mimetype == "application/problem+json"
    assert "/exports/infusions.csv" not in client_as("nurse").get("/exports").get_data(as_text=True)
