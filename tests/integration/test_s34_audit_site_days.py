"""The audit trail's From/To filter means the site's calendar days (config/site.toml: Europe/Paris), as every other
page does, not UTC days.

A QA reviewer in Paris asking for the events of 5 December must get those from 00:00 to 24:00 Paris time:
23:00 UTC on the 4th to 23:00 UTC on the 5th in winter (CET, UTC+1), 22:00 to 22:00 UTC in summer (CEST). Read
as UTC days the filter dropped the first local hour of the 5th and took the first local hour of the 6th (an
event at 23:30 UTC on the 5th is at 00:30 on the 6th in Paris).
"""
from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from mscbatch import database
from mscbatch.audit.context import use_case
from mscbatch.auth.models import User


def _name_changes_at(app, monkeypatch: pytest.MonkeyPatch, moments: dict[str, datetime]) -> int:  # type: ignore[no-untyped-def]
    """The nurse's full name set to each key at its instant (the trail reads the clock from database.utcnow);
    returns the nurse's id, the record to filter on."""
    session = app.extensions["mscbatch.db"].new_session()
    admin = session.scalar(select(User).where(User.username == "admin"))
    nurse = session.scalar(select(User).where(User.username == "nurse"))
    for name, moment in moments.items():
        with monkeypatch.context() as clock:
            clock.setattr(database, "utcnow", lambda moment=moment: moment)
            with use_case(session, admin, "test of the audit filter's days"):
                nurse.full_name = name
    nurse_id = nurse.id
    session.close()
    return nurse_id


def _listed(client, nurse_id: int, **days: str) -> tuple[set[str], str]:  # type: ignore[no-untyped-def]
    answer = client.get("/audit", query_string={"entity_type": "user_account", "entity_id": str(nurse_id),
                                                **days})
    assert answer.status_code == 200
    page = html.unescape(answer.get_data(as_text=True))
    # each listed change by its new value (the second value cell: the first is the old value)
    return set(re.findall(r'<td class="value">[^<]*</td>\s*<td class="value">(Marker-[^<]*)</td>', page)), page


WINTER = {  # Paris is UTC+1 in December
    "Marker-04-late": datetime(2026, 12, 4, 22, 30, tzinfo=UTC),   # 4 Dec 23:30 in Paris
    "Marker-05-early": datetime(2026, 12, 4, 23, 30, tzinfo=UTC),  # 5 Dec 00:30 in Paris
    "Marker-05-late": datetime(2026, 12, 5, 22, 30, tzinfo=UTC),   # 5 Dec 23:30 in Paris
    "Marker-06-early": datetime(2026, 12, 5, 23, 30, tzinfo=UTC),  # 6 Dec 00:30 in Paris
}


def test_a_day_filter_lists_the_site_day_from_local_midnight_to_local_midnight(app, users, client_as, monkeypatch):
    nurse_id = _name_changes_at(app, monkeypatch, WINTER)
    qa = client_as("qa")
    listed, page = _listed(qa, nurse_id, **{"from": "2026-12-05", "to": "2026-12-05"})
    # 23:30 UTC on the 5th is the 6th in Paris: not listed; 23:30 UTC on the 4th is the 5th: listed
    assert listed == {"Marker-05-early", "Marker-05-late"}, listed
    assert "From and To are days in Europe/Paris time" in page
    # the span applied, in UTC as the list, with the local midnights it stands for
    assert ("Listed: events from 2026-12-04 23:00 UTC (00:00 on 2026-12-05 in Europe/Paris) up to 2026-12-05 23:00 "
            "UTC (00:00 on 2026-12-06 in Europe/Paris), not included.") in page
    # the instants themselves stay in UTC (the record's words)
    assert "2026-12-05 23:30:00 UTC" not in page and "2026-12-04 23:30:00 UTC" in page


def test_the_event_at_23_30_utc_belongs_to_the_next_paris_day(app, users, client_as, monkeypatch):
    nurse_id = _name_changes_at(app, monkeypatch, WINTER)
    qa = client_as("qa")
    assert _listed(qa, nurse_id, **{"from": "2026-12-06", "to": "2026-12-06"})[0] == {"Marker-06-early"}
    assert _listed(qa, nurse_id, **{"from": "2026-12-04", "to": "2026-12-04"})[0] == {"Marker-04-late"}
    # one bound alone: the same local midnights
    assert _listed(qa, nurse_id, **{"from": "2026-12-06"})[0] == {"Marker-06-early"}
    assert _listed(qa, nurse_id, to="2026-12-04")[0] == {"Marker-04-late"}


def test_a_summer_day_starts_at_22_00_utc(app, users, client_as, monkeypatch):
    """In July Paris is UTC+2: 5 July runs from 22:00 UTC on the 4th to 22:00 UTC on the 5th."""
    nurse_id = _name_changes_at(app, monkeypatch, {
        "Marker-04-late": datetime(2026, 7, 4, 21, 30, tzinfo=UTC),   # 4 Jul 23:30 in Paris
        "Marker-05-early": datetime(2026, 7, 4, 22, 30, tzinfo=UTC),  # 5 Jul 00:30
        "Marker-05-late": datetime(2026, 7, 5, 21, 30, tzinfo=UTC),   # 5 Jul 23:30
        "Marker-06-early": datetime(2026, 7, 5, 22, 30, tzinfo=UTC),  # 6 Jul 00:30
    })
    listed, page = _listed(client_as("qa"), nurse_id, **{"from": "2026-07-05", "to": "2026-07-05"})
    assert listed == {"Marker-05-early", "Marker-05-late"}, listed
    assert "from 2026-07-04 22:00 UTC (00:00 on 2026-07-05 in Europe/Paris)" in page
