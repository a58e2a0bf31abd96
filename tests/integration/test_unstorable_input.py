"""Input no database can store, or no parser survives, is refused with a 4xx naming the field, before any view
reads it; extreme dates, ids and dose levels are refused or read as "no bound". Each was a 500 (issue 9 review),
the NUL ones on PostgreSQL only, which is why every test here runs on both databases."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.custody.models import TwoPersonCheck
from tests.conftest import PASSWORD, api_token_for
from tests.integration.test_custody_support import prescribed_bag


def _written(session: Any) -> tuple[int, int]:
    session.rollback()
    counts = (session.scalar(select(func.count()).select_from(TwoPersonCheck)),
              session.scalar(select(func.count()).select_from(AuditEvent)))
    session.rollback()
    return counts


def test_a_nul_in_a_bedside_scan_is_refused_naming_the_field_and_nothing_is_written(app, users, db_session,
                                                                                     client_as):
    ward = prescribed_bag(db_session)
    db_session.rollback()  # SQLite: no transaction of the test may hold the lock while the clients write
    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}
    nurse = client_as("nurse")
    before = _written(db_session)
    api = app.test_client().post("/api/v1/custody/scan-verify", headers=headers,
                                 json={"wristband": ward.wristband + "\x00", "bag": ward.token})
    assert api.status_code == 400 and api.mimetype == "application/problem+json"
    assert "Field 'wristband' holds a NUL character" in api.get_json()["detail"]
    assert api.get_json()["errors"] == {"wristband": [api.get_json()["detail"]]}
    web = nurse.post("/ward/check", data={"wristband": ward.wristband, "bag": "\x00" + ward.token})
    assert web.status_code == 400 and "Field &#39;bag&#39; holds a NUL character" in web.get_data(as_text=True)
    assert "Traceback" not in web.get_data(as_text=True)
    assert _written(db_session) == before

    fine = app.test_client().post("/api/v1/custody/scan-verify", headers=headers,
                                  json={"wristband": ward.wristband, "bag": ward.token})
    assert fine.status_code == 200 and fine.get_json()["result"] == "MATCHES"  # the guard lets real scans through


def test_a_nul_at_sign_in_in_a_search_or_a_lone_surrogate_is_refused(app, users, client_as):
    signed_out = app.test_client()
    assert signed_out.post("/login", data={"username": "qa\x00", "password": PASSWORD}).status_code == 400
    qa = client_as("qa")
    assert qa.get("/donors?q=%00").status_code == 400
    assert qa.get("/audit?actor=a%00b").status_code == 400
    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}", "Content-Type": "application/json"}
    surrogate = app.test_client().post("/api/v1/custody/scan-verify", headers=headers,
                                       data='{"wristband": "\\ud800", "bag": "x"}')
    assert surrogate.status_code == 400 and "lone surrogate" in surrogate.get_json()["detail"]


def test_json_too_deep_or_with_a_huge_integer_is_refused_as_malformed(app, users):
    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}", "Content-Type": "application/json"}
    client = app.test_client()
    deep = client.post("/api/v1/custody/scan-verify", headers=headers, data="[" * 100_000 + "]" * 100_000)
    assert deep.status_code == 400 and "not valid JSON (nested too deeply)" in deep.get_json()["detail"]
    huge = client.post("/api/v1/custody/scan-verify", headers=headers,
                       data='{"wristband": ' + "9" * 5000 + ', "bag": "x"}')
    assert huge.status_code == 400 and "not valid JSON" in huge.get_json()["detail"]


def test_extreme_dates_and_ids_in_list_filters_mean_no_bound(app, users, client_as):
    qa, tech = client_as("qa"), client_as("technician")
    for url in ("/audit?before=9223372036854775808", "/audit?before=-1"):
        assert qa.get(url).status_code == 200, url
    for url in ("/audit?to=9999-12-31", "/audit?from=0001-01-01"):  # a trail's day out of 2000-2099: said, not read
        refused = qa.get(url)
        assert refused.status_code == 422 and "2000-01-01" in refused.get_data(as_text=True), url
    for url in ("/lots?before=2147483648", "/lots?before=99999999999999999999", "/lots?from=0001-01-01",
                "/lots?to=9999-12-31"):
        assert tech.get(url).status_code == 200, url
    headers = {"Authorization": f"Bearer {api_token_for(app, 'technician')}"}
    assert app.test_client().get("/api/v1/lots?collected_from=0001-01-01", headers=headers).status_code == 200


def test_an_implausible_dose_level_is_refused_naming_it(app, users, db_session, client_as):
    ward = prescribed_bag(db_session, state="allocated")
    db_session.rollback()
    clinician = client_as("clinician")
    for level in ("1E%2B999999999", "Infinity", "NaN", "-2000000"):
        page = clinician.get(f"/patients/{ward.patient_id}/dose?level={level}")
        assert page.status_code == 422 and "Dose level: a number of cells per kg" in page.get_data(as_text=True)
    page = clinician.get(f"/patients/{ward.patient_id}/dose?planned_on=0001-01-01")
    assert page.status_code == 422 and "Planned infusion date: between 1900-01-01" in page.get_data(as_text=True)
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    api = app.test_client().post(f"/api/v1/patients/{ward.patient_id}/dose-calculation", headers=headers,
                                 json={"dose_level_cells_per_kg": "1E+999999999"})
    assert api.status_code == 422 and "Dose level" in api.get_json()["detail"]


def test_a_multipart_part_whose_name_cannot_be_read_and_holds_a_nul_is_a_400(app, users, db_session):  # type: ignore[no-untyped-def]
    """Werkzeug files a part whose name holds a newline under the key None; the guard named the field by slicing
    that key (TypeError, a 500) before it could refuse the NUL in its value (review 5's fuzz)."""
    from io import BytesIO

    before = _written(db_session)
    answer = app.test_client().post("/login", data={"a\nb": (BytesIO(b"x\x00y"), "f.pdf"), "username": "u"},
                                    content_type="multipart/form-data")
    assert answer.status_code == 400, answer.get_data(as_text=True)[:500]
    assert "NUL" in answer.get_data(as_text=True)
    assert _written(db_session) == before
