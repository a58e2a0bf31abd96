"""Session 36 (QA auditor walk): the audit trail page read without scrolling sideways, in the site's time, its
record types in plain words, its filter days checked, its chain verified and its events exported.

The reviewer found: a page of 50 events 20 000 px tall (whole-row JSON snapshots in the New column) with the Reason
column past the right edge; "When (UTC)" alone; a free-text record type needing table names ("user_account");
dates the wrong way round, or in year 0001, silently giving "No events match" or 1899; no way to verify the chain
but the command line; no CSV of the events."""
from __future__ import annotations

import csv
import html
import io
import re

from sqlalchemy import select, text

from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.auth.models import User


def _page(client, **query) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    answer = client.get("/audit", query_string=query)
    return answer.status_code, html.unescape(answer.get_data(as_text=True))


def test_a_long_value_is_folded_to_its_first_characters_and_short_ones_stay_whole(app, users, client_as):
    status, page = _page(client_as("qa"), entity_type="user_account")
    assert status == 200
    # each user's insert event carries the whole row as JSON: folded, its beginning in the summary
    folded = re.findall(r'<td class="value"><details class="long-value"><summary>([^<]*)</summary>([^<]*)</details>',
                        page)
    assert folded, page
    for summary, whole in folded:
        assert len(summary) <= 81 and summary.endswith("…") and whole.startswith(summary[:-1]) and len(whole) > 80
    assert "table.audit" in client_as("qa").get("/static/css/mscbatch.css").get_data(as_text=True)


def test_times_are_local_with_utc_and_record_types_in_plain_words(app, users, client_as):
    status, page = _page(client_as("qa"))
    assert status == 200
    assert "When (UTC)" not in page and "<th>When</th>" in page
    # "2026-12-05 21:48:07 CET (2026-12-05 20:48:07 UTC)": the site's zone first, the UTC instant beside it
    assert re.search(r'<span class="local">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (CET|CEST)</span> '
                     r'<span class="utc hint">\(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)</span>', page), page
    # the record type is a choice of the types in the trail, in words, its value the table's name
    assert '<select name="entity_type">' in page and '<option value="user_account">User account</option>' in page
    assert "<td>user account " in page  # the list's record: its type in words, its id kept
    # the internal value in the query string still filters (links from other pages use it)
    status, page = _page(client_as("qa"), entity_type="user_account")
    assert status == 200 and '<option value="user_account" selected>User account</option>' in page


def test_filter_days_the_wrong_way_round_are_refused_naming_both_fields(app, users, client_as):
    status, page = _page(client_as("qa"), **{"from": "2026-12-31", "to": "2026-01-01"})
    assert status == 422
    assert "To (2026-01-01) is before From (2026-12-31): To must be the same day as From or a later one." in page
    assert "No events match" not in page
    # the line under the filter points at the marked field, not at a date format that was right (re-review)
    assert "correct what is marked above" in page and "YYYY-MM-DD, e.g." not in page


def test_a_day_out_of_range_is_refused_not_moved_to_1899(app, users, client_as):
    for name, day in (("from", "0001-01-01"), ("to", "9999-12-31")):
        status, page = _page(client_as("qa"), **{name: day})
        assert status == 422, name
        assert "is not a day the trail can hold: type a day from 2000-01-01 to 2099-12-31" in page, page
        assert "1899" not in page and "No events match" not in page


def test_verify_the_chain_from_the_page_says_the_events_checked(app, users, client_as, db_session):
    qa = client_as("qa")
    _, page = _page(qa)
    assert 'action="/audit/verify"' in page and "Verify the chain" in page
    total = db_session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1))
    db_session.close()
    answer = qa.post("/audit/verify")
    # post, redirect, get: the verdict is said on the trail's own page, once; a reload verifies nothing again
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/audit"), answer.headers
    said = html.unescape(qa.get("/audit").get_data(as_text=True))
    assert f"The audit trail is intact: {total} events verified" in said, said
    assert 'id="chain-verdict"' in said and "Verify the chain" in said
    assert "intact" not in qa.get("/audit").get_data(as_text=True)  # said once: the reload lists the events only
    assert client_as("admin").post("/audit/verify", follow_redirects=True).status_code == 200
    assert client_as("technician").post("/audit/verify").status_code == 403
    assert "intact" not in qa.get("/audit/verify").get_data(as_text=True)  # a POST: never set off by a link


def test_verify_names_the_first_broken_link(app, users, client_as, db_session):
    seq = db_session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq).limit(1))
    # tamper as an attacker with database access would: past the append-only trigger (SQLite)
    if db_session.get_bind().dialect.name != "sqlite":
        db_session.close()
        return
    db_session.execute(text("DROP TRIGGER IF EXISTS audit_event_no_update"))
    db_session.execute(text("UPDATE audit_event SET reason = 'forged' WHERE seq = :seq"), {"seq": seq})
    db_session.commit()
    db_session.close()
    answer = client_as("qa").post("/audit/verify", follow_redirects=True)
    said = html.unescape(answer.get_data(as_text=True))
    assert f"The audit trail is BROKEN at event {seq}:" in said, said
    assert f"{seq - 1} events were verified before it." in said


def test_the_filtered_events_download_as_csv(app, users, client_as, db_session):
    admin = db_session.scalar(select(User).where(User.username == "admin"))
    nurse = db_session.scalar(select(User).where(User.username == "nurse"))
    with use_case(db_session, admin, "=cmd|' /C calc'!A0 as a reason"):
        nurse.full_name = "Nurse Renamed"
    nurse_id = nurse.id
    db_session.close()
    qa = client_as("qa")
    answer = qa.get("/audit/events.csv", query_string={"entity_type": "user_account", "entity_id": str(nurse_id)})
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert rows and {row["record_id"] for row in rows} == {str(nurse_id)}
    renamed = [row for row in rows if row["new_value"] == "Nurse Renamed"]
    assert renamed and renamed[0]["reason"].startswith("'=")  # defused against formula injection
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", renamed[0]["occurred_at_utc"])
    _, page = _page(qa, entity_type="user_account", entity_id=str(nurse_id))
    assert f'href="/audit/events.csv?entity_type=user_account&entity_id={nurse_id}"' in page.replace("&amp;", "&")
    assert qa.get("/audit/events.csv", query_string={"from": "2026-12-31", "to": "2026-01-01"}).status_code == 422
    assert client_as("nurse").get("/audit/events.csv").status_code == 403
