"""S40 (a nurse leaves the ward page open on a tablet at 3 a.m.): its "Infusions running now" refreshes itself
(js/ward-running.js fetches custody.ward_running, the list alone, every ~30 s). A bag recalled after the page loaded
shows STOP THE INFUSION NOW in the next refresh, an infusion started since shows too, and "Updated" says when the list
was read. For the bedside roles, as the check and the start are; it reads only, and does not keep the session alive
(a page's own poll: auth.loading.PASSIVE_ENDPOINTS); signed out, it answers 401 in JSON, which the script says."""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.auth.models import AuthSession
from mscbatch.database import utcnow
from mscbatch.site import local_parts
from tests.integration.test_s39_infusion_stop_watch import _recall, _running  # the same running infusion

pytestmark = pytest.mark.usefixtures("users")

REFRESH = "/ward/running"


def _audit_count(app: Any) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent))


def _row(page: str, infusion_id: int) -> str:
    found = re.search(rf'<tr id="running-{infusion_id}"[^>]*>(.*?)</tr>', page, re.S)
    assert found, page[:4000]
    return found.group(1)


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_a_bag_recalled_after_the_page_loaded_shows_stop_in_the_next_refresh(app, client_as):  # type: ignore[no-untyped-def]
    ward, infusion_id = _running(app)
    nurse = client_as("nurse")
    page = nurse.get("/ward").get_data(as_text=True)
    assert f'data-refresh-url="{REFRESH}"' in page and 'src="/static/js/ward-running.js' in page
    assert 'id="running-announce"' in page and 'aria-live="assertive"' in page
    assert "STOP" not in _row(page, infusion_id)

    _recall(app, ward)  # while the page stays open
    later, later_id = _running(app)  # and another infusion started since
    before = _audit_count(app)
    answer = nurse.get(REFRESH)
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    assert answer.headers["Cache-Control"] == "no-store"
    listed = answer.get_data(as_text=True)
    assert '<div id="running-list">' in listed
    assert "<html" not in listed  # the list alone, not a page
    words = _text(_row(listed, infusion_id))
    assert "STOP THE INFUSION NOW" in words and "RECALLED" in words
    assert f'id="running-{later_id}"' in listed and "STOP" not in _row(listed, later_id)
    assert listed.index(f'id="running-{infusion_id}"') < listed.index(f'id="running-{later_id}"')  # STOP first
    assert f'href="/ward/infusions/{infusion_id}"' in listed
    assert _audit_count(app) == before  # reads only: nothing recorded per refresh
    # "Updated" at the time the list was read, the site's local time with UTC, as the pages write an instant
    updated = re.search(r'<p class="hint" id="running-updated">(.*?)</p>', listed, re.S)
    assert updated, listed
    local, utc = local_parts(utcnow())
    assert _text(updated.group(1)).startswith(f"Updated {local.split(' ', 1)[1]} ({utc})")
    assert 'href="/ward#h-running"' in updated.group(1)  # the Refresh link, as without JavaScript


def test_no_infusion_running_says_so_in_the_refresh(app, client_as):  # type: ignore[no-untyped-def]
    listed = client_as("clinician").get(REFRESH).get_data(as_text=True)
    assert "No infusion is running now." in listed and 'id="running-updated"' in listed


def test_the_refresh_is_for_the_bedside_roles_as_the_check_is(app, client_as):  # type: ignore[no-untyped-def]
    _running(app)
    for role in ("nurse", "clinician"):
        assert client_as(role).get(REFRESH).status_code == 200, role
    for role in ("qa", "technician", "admin"):
        client = client_as(role)
        assert client.get(REFRESH).status_code == 403, role
    # the ward page's other readers get the list and its Refresh link (a reload), no script that would be refused
    for role in ("qa", "technician"):
        page = client_as(role).get("/ward").get_data(as_text=True)
        assert 'id="running-list"' in page and 'id="running-refresh"' in page, role
        assert "data-refresh-url" not in page, role


def test_a_signed_out_refresh_answers_401_in_json(app):  # type: ignore[no-untyped-def]
    answer = app.test_client().get(REFRESH)
    assert answer.status_code == 401 and answer.is_json
    assert answer.get_json()["signed_out"] is True
    assert "no longer updates" in answer.get_json()["message"]


def test_the_refresh_does_not_keep_the_session_alive(app, client_as):  # type: ignore[no-untyped-def]
    """A page's own poll (auth.loading.PASSIVE_ENDPOINTS): an unattended tablet still idles out."""
    nurse = client_as("nurse")
    db = app.extensions["mscbatch.db"]

    def seen_minutes_ago(minutes: int) -> Any:
        with db.new_session() as session:
            row = session.scalars(select(AuthSession).where(AuthSession.ended_at.is_(None))).one()
            row.last_seen_at = utcnow() - timedelta(minutes=minutes)
            session.commit()
            return row.last_seen_at

    def last_seen() -> Any:
        with db.new_session() as session:
            return session.scalars(select(AuthSession.last_seen_at).where(AuthSession.ended_at.is_(None))).one()

    earlier = seen_minutes_ago(5)
    assert nurse.get(REFRESH).status_code == 200
    assert last_seen() == earlier  # the refresh did not slide the idle window
    assert nurse.get("/ward").status_code == 200
    assert last_seen() > earlier  # a page the nurse opens does (the check above can fail)
