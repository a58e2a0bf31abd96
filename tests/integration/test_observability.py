"""Observability (issue 9 point 5): JSON logs with request id, user and action; security events in the logs;
/healthz up and down; the admin's counters of refused sign-ins, bedside STOPs, refused infusion starts and refused
signatures."""
from __future__ import annotations

import io
import json
import logging
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from mscbatch.auth.access import public
from mscbatch.custody.models import TwoPersonCheck
from mscbatch.database import Base, make_engine, utcnow
from mscbatch.donors.models import APPROVED
from mscbatch.monitoring import counters
from mscbatch.patients.models import Patient
from mscbatch.settings import SettingsError, from_environment
from mscbatch.web.logs import make_handler
from tests.conftest import PASSWORD, api_token_for, login, make_app, screening_seen
from tests.integration.test_custody_support import check, checked_and_confirmed, prescribed_bag
from tests.integration.test_donors import screened_donor

SECRET = "Sup3r-Secret-Passw0rd!"


@pytest.fixture
def app(database_url: str) -> Any:
    """The app with JSON logs: its own stderr handler writes them, and capsys reads them."""
    app = make_app(database_url, LOG_FORMAT="json")
    yield app
    app.extensions["mscbatch.db"].engine.dispose()


def log_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    err = capsys.readouterr().err
    return [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is a JSON object


def access_line(lines: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    [line] = [x for x in lines if x["logger"] == "mscbatch.access" and x["request_id"] == request_id]
    return line


def test_each_request_has_one_json_access_line_with_request_id_user_action_and_status(client_as, capsys):
    nurse = client_as("nurse")
    capsys.readouterr()
    response = nurse.get("/ward?wristband=WB-QUERY-VALUE", headers={"X-Request-ID": "proxy-id-0001"})
    assert response.status_code == 200 and response.headers["X-Request-ID"] == "proxy-id-0001"
    line = access_line(log_lines(capsys), "proxy-id-0001")
    assert line["user"] == "nurse" and line["action"] == line["endpoint"] == "custody.ward"
    assert (line["method"], line["path"], line["status"], line["level"]) == ("GET", "/ward", 200, "INFO")
    assert isinstance(line["duration_ms"], float) and line["time"].endswith("+00:00")
    assert "WB-QUERY-VALUE" not in json.dumps(line)  # the path only, never the query string


def test_the_text_format_carries_the_same_request_id_and_user(app, client_as):
    nurse, stream = client_as("nurse"), io.StringIO()
    handler = make_handler("text", stream)
    logging.getLogger().addHandler(handler)
    try:
        nurse.get("/ward", headers={"X-Request-ID": "text-id-0001"})
        app.test_client().get("/healthz", headers={"X-Request-ID": "text-id-0002"})
    finally:
        logging.getLogger().removeHandler(handler)
    lines = stream.getvalue().splitlines()
    [signed_in] = [x for x in lines if "text-id-0001" in x]
    [anonymous] = [x for x in lines if "text-id-0002" in x]
    assert re.fullmatch(r"\S+\+00:00 INFO \[text-id-0001 nurse\] mscbatch\.access: GET /ward 200 [\d.]+ms "
                        r"action=custody\.ward", signed_in), signed_in
    assert " INFO [text-id-0002 -] mscbatch.access: GET /healthz 200 " in anonymous, anonymous


def test_the_counters_endpoint_is_in_the_openapi_document(app):
    paths = app.test_client().get("/api/v1/openapi.json").get_json()["paths"]
    operation = paths["/api/v1/admin/counters"]["get"]
    assert set(operation["responses"]) >= {"200", "401", "403"}


def test_a_request_id_is_generated_when_missing_and_replaced_when_hostile(app):
    client = app.test_client()
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert client.get("/healthz").headers["X-Request-ID"] != generated
    for hostile in ("a" * 65, "abc12345\nSet-Cookie: x=1", "short", "<script>alert(1)</script>"):
        echoed = client.get("/healthz", environ_overrides={"HTTP_X_REQUEST_ID": hostile}).headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", echoed), hostile


def test_a_failed_login_is_a_warning_with_its_request_id_and_no_password_in_the_logs(app, users, capsys):
    client = app.test_client()
    capsys.readouterr()
    wrong = client.post("/login", data={"username": "nurse", "password": SECRET})
    unknown = client.post("/login", data={"username": "nobody", "password": SECRET})
    err = capsys.readouterr().err
    assert wrong.status_code == unknown.status_code == 401
    assert SECRET not in err and "nobody" not in err  # what was typed is never logged
    lines = [json.loads(line) for line in err.splitlines()]
    warnings = [x for x in lines if x["level"] == "WARNING"]
    assert [(x["action"], x["reason"], x["request_id"]) for x in warnings] == [
        ("login_failed", "wrong password", wrong.headers["X-Request-ID"]),
        ("login_failed", "unknown user name", unknown.headers["X-Request-ID"])]
    assert access_line(lines, wrong.headers["X-Request-ID"])["status"] == 401


def test_healthz_answers_200_with_the_database_and_503_without(app, monkeypatch, tmp_path):
    client = app.test_client()
    assert client.get("/healthz").get_json() == {"status": "ok", "database": "ok"}
    db = app.extensions["mscbatch.db"]
    url = (f"sqlite:///{tmp_path}/no-such-dir/db.sqlite3" if db.engine.dialect.name == "sqlite"
           else "postgresql://postgres@127.0.0.1:1/unreachable")  # nothing listens on port 1
    unreachable = make_engine(url)
    monkeypatch.setattr(db, "_session_factory", sessionmaker(bind=unreachable))
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "down", "database": "unreachable or not initialised"}
    unreachable.dispose()

    empty = make_engine(f"sqlite:///{tmp_path}/empty.sqlite3")  # answers SELECT 1, but `mscbatch init` never ran
    monkeypatch.setattr(db, "_session_factory", sessionmaker(bind=empty))
    assert client.get("/healthz").status_code == 503
    empty.dispose()


def test_healthz_is_down_when_the_audit_chain_head_is_gone(app, monkeypatch, tmp_path):
    """Every write extends the chain from its head: tables without it (created, never initialised) serve no user."""
    db = app.extensions["mscbatch.db"]
    headless = make_engine(f"sqlite:///{tmp_path}/headless.sqlite3")
    Base.metadata.create_all(headless)
    monkeypatch.setattr(db, "_session_factory", sessionmaker(bind=headless))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "down", "database": "not initialised (no audit chain head)"}
    headless.dispose()


def test_an_unexpected_error_is_logged_with_its_traceback_which_the_response_never_shows(app, capsys):
    def explode() -> Any:
        raise RuntimeError("kaboom in the view")

    app.add_url_rule("/test-explode", "test_explode", public(explode))
    capsys.readouterr()
    response = app.test_client().get("/test-explode", headers={"X-Request-ID": "explode-0001"})
    assert response.status_code == 500
    assert "kaboom" not in response.get_data(as_text=True) and "Traceback" not in response.get_data(as_text=True)
    lines = log_lines(capsys)
    [error] = [x for x in lines if x["level"] == "ERROR"]
    assert error["request_id"] == "explode-0001"
    assert "Traceback" in error["traceback"] and "RuntimeError: kaboom in the view" in error["traceback"]
    assert access_line(lines, "explode-0001")["status"] == 500


def _counts_on_page(html: str) -> dict[str, list[int]]:
    rows = re.findall(r'<tr id="count-(\w+)">\s*<th scope="row">[^<]*</th>\s*<td>(\d+)</td><td>(\d+)</td>'
                      r'<td>(\d+)</td>', html)
    return {key: [int(a), int(b), int(c)] for key, a, b, c in rows}


def test_refusals_are_logged_and_counted_for_the_admin_only(app, users, client_as, db_session, capsys):
    client = app.test_client()
    login(client, "nurse", "wrong-password-1")
    login(client, "ghost", "wrong-password-2")
    donor_id = screened_donor(db_session, "adipose_at_don")
    ward, other = prescribed_bag(db_session), prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    pending = check(db_session, other).check_id  # a MATCHES check awaiting its second person
    db_session.close()
    nurse, qa, admin = client_as("nurse"), client_as("qa"), client_as("admin")
    capsys.readouterr()
    wrong_start = nurse.post(f"/ward/bags/{ward.bag_id}/infusion", data={"wristband": other.wristband,
                                                                           "bag": ward.token})
    # refused: 303 to its STOP page, GET /ward/bags/<id>/infusion (which logs and records nothing)
    assert wrong_start.status_code == 303
    stop_page = nurse.get(wrong_start.headers["Location"])
    assert stop_page.status_code == 200 and ">STOP<" in stop_page.get_data(as_text=True)
    assert "WRONG PATIENT" in stop_page.get_data(as_text=True)
    # the check is recorded by the POST (its refusal logged there) and shown by GET /ward/checks/<id>
    stop = nurse.post("/ward/check", data={"wristband": "WB-NOT-KNOWN", "bag": "not-a-bag-code"})
    assert stop.status_code == 303
    stop_page = nurse.get(stop.headers["Location"])
    refused = qa.post(f"/donors/{donor_id}/decision", data={
        **screening_seen(qa, donor_id), "decision-meaning": APPROVED,
                                                            "decision-password": "wrong-one"})
    assert stop_page.status_code == 200 and "STOP" in stop_page.get_data(as_text=True) and refused.status_code == 401
    check_id = db_session.scalar(select(TwoPersonCheck.id).where(TwoPersonCheck.result == "stop"))
    db_session.close()
    # session 45: a STOP check is refused before the second person's password is tried (counted nowhere)
    at_stop = nurse.post(f"/ward/checks/{check_id}/confirm", data={"second_username": "nurse2",
                                                                    "second_password": SECRET,
                                                                    "checker_password": PASSWORD})
    assert at_stop.status_code == 409
    second = nurse.post(f"/ward/checks/{pending}/confirm", data={"second_username": "nurse2",
                                                                  "second_password": SECRET,
                                                                  "checker_password": PASSWORD})
    assert second.status_code == 401
    err = capsys.readouterr().err
    assert SECRET not in err
    warnings = {x["action"]: x for x in map(json.loads, err.splitlines()) if x["level"] == "WARNING"}
    assert warnings["second_person_refused"]["request_id"] == second.headers["X-Request-ID"]
    assert warnings["bedside_refused"]["request_id"] == stop.headers["X-Request-ID"]
    assert warnings["bedside_refused"]["user"] == "nurse" and "unknown_wristband" in warnings["bedside_refused"]["failures"]
    assert warnings["signature_refused"]["request_id"] == refused.headers["X-Request-ID"]
    assert warnings["signature_refused"]["user"] == warnings["signature_refused"]["actor"] == "qa"
    assert warnings["infusion_start_refused"]["request_id"] == wrong_start.headers["X-Request-ID"]
    assert warnings["infusion_start_refused"]["entity_id"] == str(ward.bag_id)
    assert "WRONG PATIENT" in warnings["infusion_start_refused"]["reason"]
    assert other.wristband not in err  # what was scanned stays in the audit trail, out of the logs
    # the refusal's own words name both patients ("prescribed for patient X, not for Y"): the log says its kind only,
    # as the monitoring page does, since whoever reads the servers' logs may not read patients
    patient_codes = set(db_session.scalars(select(Patient.code).where(Patient.id.in_([ward.patient_id,
                                                                                      other.patient_id]))))
    db_session.close()
    assert len(patient_codes) == 2 and not any(code in err for code in patient_codes), err

    page = admin.get("/admin/monitoring")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'href="/admin/monitoring"' in html  # in the admin's navigation
    # the two sign-ins and the second person's wrong password: every wrong password counts
    assert _counts_on_page(html) == {"failed_logins": [3, 3, 3], "bedside_refused": [1, 1, 1],
                                     "infusion_start_refused": [1, 1, 1], "signature_refused": [1, 1, 1],
                                     "second_person_refused": [0, 0, 0]}
    for words in ("nurse (Nurse)", "wrong password", "unknown name &#39;gh…(5 characters)&#39;",  # masked in the trail
                  "no account has this user name",
                  "wristband not known", "qa (Qa)", f"wrong password when signing &#39;{APPROVED}&#39;",
                  "WRONG PATIENT: the wristband scanned is not the checked patient&#39;s"):  # by kind, escaped
        assert words in html, words
    token = api_token_for(app, "admin")
    body = admin.get("/api/v1/admin/counters", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert {k: v for k, v in body.items() if k != "generated_at"} == {
        key: {"last_24_hours": n, "last_7_days": n, "all_time": n}
        for key, n in (("failed_logins", 3), ("bedside_refused", 1), ("infusion_start_refused", 1),
                       ("signature_refused", 1), ("second_person_refused", 0))}

    assert nurse.get("/admin/monitoring").status_code == 403
    nurse_token = api_token_for(app, "nurse")
    assert nurse.get("/api/v1/admin/counters", headers={"Authorization": f"Bearer {nurse_token}"}).status_code == 403
    assert 'href="/admin/monitoring"' not in nurse.get("/").get_data(as_text=True)


def test_the_counts_move_out_of_their_time_windows(app, users, db_session):
    login(app.test_client(), "nurse", "wrong-password")
    in_two_days = counters.counts(db_session, utcnow() + timedelta(days=2))["failed_logins"]
    in_eight_days = counters.counts(db_session, utcnow() + timedelta(days=8))["failed_logins"]
    assert in_two_days == {"last_24_hours": 0, "last_7_days": 1, "all_time": 1}
    assert in_eight_days == {"last_24_hours": 0, "last_7_days": 0, "all_time": 1}


def test_the_log_format_setting_is_text_or_json(monkeypatch):
    monkeypatch.delenv("MSCBATCH_LOG_FORMAT", raising=False)
    assert from_environment()["LOG_FORMAT"] == "text"
    monkeypatch.setenv("MSCBATCH_LOG_FORMAT", "JSON")
    assert from_environment()["LOG_FORMAT"] == "json"
    monkeypatch.setenv("MSCBATCH_LOG_FORMAT", "xml")
    with pytest.raises(SettingsError, match="MSCBATCH_LOG_FORMAT must be one of text, json"):
        from_environment()


def test_a_bearer_token_that_authenticates_nobody_is_a_security_warning_without_the_secret(app, users, capsys):
    forged = "msc_AbCdEf" + "x" * 30 + "-SECRET-PART"
    capsys.readouterr()
    response = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {forged}",
                                                            "X-Request-ID": "forged-token-01"})
    assert response.status_code == 401
    [line] = [x for x in log_lines(capsys) if x.get("action") == "bearer_token_refused"]
    assert line["level"] == "WARNING" and line["request_id"] == "forged-token-01"
    assert line["token_prefix"] == "msc_AbCdEf" and "SECRET-PART" not in json.dumps(line)
