"""The donor JSON API (/api/v1/donors): same services and role rules as the pages, identity fields null for
roles that may not see them, RFC 9457 problems naming the field, and every endpoint in the OpenAPI document."""
from __future__ import annotations

from sqlalchemy import func, select

from mscbatch.donors import decisions
from mscbatch.donors.models import APPROVED, DonorLookback, ScreeningResult
from mscbatch.donors.queries import get_donor
from tests.conftest import PASSWORD, api_token_for
from tests.integration.test_donors import DATES, db_session, screened_donor, user  # noqa: F401 (fixture)


def bearer(app, username):  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {api_token_for(app, username)}"}


def test_listing_and_reading_donors_hides_identity_from_a_nurse(app, users, db_session):  # noqa: F811
    donor_id = screened_donor(db_session, "marrow_ssc_bm", initials="QRS")
    code = get_donor(db_session, donor_id).code
    db_session.rollback()
    client = app.test_client()
    listing = client.get("/api/v1/donors?source=bone_marrow", headers=bearer(app, "nurse")).get_json()
    assert listing["total"] == 1 and listing["items"][0]["code"] == code
    assert listing["items"][0]["initials"] is None and listing["items"][0]["date_of_birth"] is None
    assert listing["items"][0]["recipient_code"] == "SSC-BM-001"
    seen = client.get(f"/api/v1/donors/{donor_id}", headers=bearer(app, "technician")).get_json()
    assert seen["initials"] == "QRS" and seen["date_of_birth"] is not None and seen["weight_kg"] == "70.0"
    missing = client.get("/api/v1/donors/999999", headers=bearer(app, "qa"))
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
    bad = client.get("/api/v1/donors?status=happy", headers=bearer(app, "qa"))
    assert bad.status_code == 422 and "status" in bad.get_json()["errors"]


def test_a_technician_adds_a_result_and_the_evaluation_follows(app, users, db_session):  # noqa: F811
    donor_id = screened_donor(db_session, "adipose_at_don", skip=("hev",))
    client, headers = app.test_client(), bearer(app, "technician")
    before = client.get(f"/api/v1/donors/{donor_id}/eligibility", headers=headers).get_json()
    assert before["status"] == "pending" and before["current_decision"] is None
    grey = [item for item in before["checklist"] if item["colour"] == "grey"]
    assert [item["rule_id"] for item in grey] == ["marker.hev"]

    sample = DATES["adipose_at_don"][1].isoformat()
    response = client.post(f"/api/v1/donors/{donor_id}/results", headers=headers, json={
        "marker": "hev", "result": "negative", "sample_date": sample, "lab_reference": "API-1"})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["method"] == "serology"
    results = client.get(f"/api/v1/donors/{donor_id}/results", headers=bearer(app, "nurse")).get_json()
    assert "API-1" in {r["lab_reference"] for r in results}
    after = client.get(f"/api/v1/donors/{donor_id}/eligibility", headers=headers).get_json()
    assert after["status"] == "eligible" and after["ruleset_id"] == "adipose_at_don"
    assert len(after["ruleset_sha256"]) == 64


def test_bad_results_are_refused_with_the_field_named_and_nothing_written(app, users, db_session):  # noqa: F811
    donor_id = screened_donor(db_session, "cord_eu")
    before = db_session.scalar(select(func.count()).select_from(ScreeningResult))
    db_session.rollback()
    client, headers = app.test_client(), bearer(app, "technician")
    url = f"/api/v1/donors/{donor_id}/results"
    sample = DATES["cord_eu"][1].isoformat()
    response = client.post(url, headers=headers, json={"marker": "hev", "result": "negative", "sample_date": sample,
                                                       "lab_reference": "X"})
    assert response.status_code == 422 and "marker" in response.get_json()["errors"]
    response = client.post(url, headers=headers, json={"marker": "hbsag", "result": "maybe", "sample_date": sample,
                                                       "lab_reference": "X"})
    assert response.status_code == 422 and "result" in response.get_json()["errors"]
    response = client.post(url, headers=headers, json={"marker": "hbsag", "method": "NAT", "result": "negative",
                                                       "sample_date": sample, "lab_reference": "X"})
    assert response.status_code == 422 and "method" in response.get_json()["errors"]
    response = client.post(url, headers=bearer(app, "nurse"), json={"marker": "hbsag", "result": "negative",
                                                                    "sample_date": sample, "lab_reference": "X"})
    assert response.status_code == 403
    assert db_session.scalar(select(func.count()).select_from(ScreeningResult)) == before
    db_session.rollback()


def test_a_late_positive_through_the_api_reopens_the_decision_and_flags_a_lookback(app, users, db_session):  # noqa: F811
    donor_id = screened_donor(db_session, "adipose_at_don")
    decisions.decide(db_session, user(db_session, "qa"), donor_id, APPROVED, PASSWORD)
    client = app.test_client()
    decided = client.get(f"/api/v1/donors/{donor_id}/eligibility", headers=bearer(app, "qa")).get_json()
    assert decided["current_decision"]["meaning"] == APPROVED
    assert decided["current_decision"]["signatures"][0]["printed_name"] == "Qa"
    response = client.post(f"/api/v1/donors/{donor_id}/results", headers=bearer(app, "technician"), json={
        "marker": "anti_hiv_1_2", "result": "positive", "sample_date": DATES["adipose_at_don"][1].isoformat(),
        "lab_reference": "LATE"})
    assert response.status_code == 201
    after = client.get(f"/api/v1/donors/{donor_id}/eligibility", headers=bearer(app, "qa")).get_json()
    assert after["donor_status"] == "pending_review" and after["current_decision"] is None
    assert after["decisions"][0]["superseded_at"] is not None and after["open_lookbacks"] == 1
    assert db_session.scalar(select(func.count()).select_from(DonorLookback)) == 1
    db_session.rollback()


def test_the_donor_endpoints_are_in_the_openapi_document(app):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    for path in ("/api/v1/donors", "/api/v1/donors/{donor_id}", "/api/v1/donors/{donor_id}/results",
                 "/api/v1/donors/{donor_id}/eligibility"):
        assert path in spec["paths"], path
    assert set(spec["paths"]["/api/v1/donors/{donor_id}/results"]) >= {"get", "post"}
    assert "ResultIn" in spec["components"]["schemas"] and "Eligibility" in spec["components"]["schemas"]
