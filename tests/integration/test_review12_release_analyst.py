"""Review 12, release: an analyst's name too long to keep (more than 120 characters) was refused as if none had been
given ("Analyst: give the name of the person who performed the test."), on the one-result form and the flow panel
alike. It is refused, naming the field, with what is wrong: at most 120 characters, how many were given; nothing is
recorded and the name is never cut (SQLite and PostgreSQL)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mscbatch.errors import ValidationFailed
from mscbatch.release import results
from mscbatch.release.models import ReleaseResult
from mscbatch.site import site_today
from tests.integration.test_release_support import seed_quarantine_lot, user

LONG = "Dr " + "A" * 118  # 121 characters


@pytest.fixture
def lot_id(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    return seed_quarantine_lot(app, monkeypatch)


def _count(app, lot_id: int) -> int:  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        return int(session.scalar(select(func.count()).select_from(ReleaseResult)
                                  .where(ReleaseResult.lot_id == lot_id)))


def test_a_too_long_analyst_is_refused_as_too_long_by_the_service(app, lot_id):  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        entry = results.ResultEntry(test_id="viability", value="92.5", unit="%", analyst=LONG, tested_on=site_today())
        with pytest.raises(ValidationFailed) as caught:
            results.enter_result(session, user(session, "technician"), lot_id, entry)
        session.rollback()
    assert caught.value.field == "analyst"
    assert "at most 120 characters (121 given)" in str(caught.value.message)
    assert "give the name" not in str(caught.value.message)
    at_limit = results.ResultEntry(test_id="viability", value="92.5", unit="%", analyst=LONG[:120],
                                   tested_on=site_today())
    with app.extensions["mscbatch.db"].new_session() as session:
        kept = results.enter_result(session, user(session, "technician"), lot_id, at_limit)
        session.commit()
        assert kept.analyst == LONG[:120]


@pytest.mark.parametrize("path,prefix,fields", [
    ("results", "result", {"test_id": "viability", "value": "92.5", "unit": "%"}),
    ("panel", "panel", {"cd73": "99", "cd90": "99", "cd105": "99", "cd45": "1", "cd34": "1", "cd14": "1",
                        "cd79a": "1", "hla_dr": "1"}),
])
def test_the_pages_say_the_analyst_is_too_long_beside_the_field(app, lot_id, client_as, path, prefix, fields):  # type: ignore[no-untyped-def]
    before = _count(app, lot_id)
    data = {f"{prefix}-{k}": v for k, v in {**fields, "analyst": LONG,
                                            "tested_on": site_today().isoformat()}.items()}
    page = client_as("technician").post(f"/release/lots/{lot_id}/{path}", data=data)
    body = page.get_data(as_text=True)
    assert page.status_code == 422 and f'id="{prefix}-analyst-error"' in body
    assert "at most 120 characters (121 given)" in body and LONG in body  # kept in the field to shorten
    assert _count(app, lot_id) == before
