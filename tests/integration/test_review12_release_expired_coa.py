"""Review 12, release: a released lot whose shelf life has run out is still "released" on its record until someone
marks it expired (lots.services: no job moves it), while every bag of it is refused (allocation, dispatch, bedside).
Its certificate of analysis printed no red line at all and read as a lot in use; the review page too. Both now say
"EXPIRED on <date>: not for clinical use" (README, Release: the certificate is headed EXPIRED in red for a lot not in
use, whatever signatures it carries), and a lot not yet expired says nothing of the kind (SQLite and PostgreSQL)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import text

from mscbatch.database import utcnow
from mscbatch.release import release
from mscbatch.release.demo import enter_panel
from tests.conftest import PASSWORD
from tests.integration.test_labelling import pdf_text
from tests.integration.test_release_support import seed_quarantine_lot, user
from tests.time_words import site_then_utc


def _expire(app: Any, lot_id: int) -> str:
    """Time passes: the shelf life set at cryopreservation runs out (written on the rows, as no service moves an
    expiry). Returns the expiry as every page says an instant: site time with its zone, UTC beside it."""
    expired_at = utcnow() - timedelta(hours=1)
    with app.extensions["mscbatch.db"].new_session() as session:
        session.execute(text("UPDATE lot SET expires_at = :t WHERE id = :i"), {"t": expired_at, "i": lot_id})
        session.execute(text("UPDATE bag SET expires_at = :t WHERE lot_id = :i"), {"t": expired_at, "i": lot_id})
        session.commit()
    return site_then_utc(expired_at)


def _released(app: Any, monkeypatch: Any, **options: Any) -> int:
    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id, skip=options.pop("skip", ()))
        release.release_lot(session, user(session, "qa"), lot_id, PASSWORD, **options)
        session.commit()
    return lot_id


def _coa(client: Any, lot_id: int) -> str:
    response = client.get(f"/release/lots/{lot_id}/certificate.pdf")
    assert response.status_code == 200
    return pdf_text(response.data)


def test_the_certificate_and_the_page_of_a_released_lot_past_its_expiry_say_it_is_expired(app, users, client_as,
                                                                                          monkeypatch):
    lot_id = _released(app, monkeypatch)
    qa = client_as("qa2")
    assert "EXPIRED" not in _coa(qa, lot_id)  # in use: no such line
    assert 'id="expired-flag"' not in qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)

    when = _expire(app, lot_id)
    words = f"EXPIRED on {when}: not for clinical use"
    coa = _coa(qa, lot_id)
    assert words in coa and "Status released" in coa
    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert 'id="expired-flag"' in page and words in page


def test_a_conditionally_released_lot_past_its_expiry_is_said_expired_beside_its_conditional_flag(
        app, users, client_as, monkeypatch):
    lot_id = _released(app, monkeypatch, skip=("sterility",), conditional_tests=("sterility",),
                       justification="Sterility incubating, 14 days; patient scheduled")
    when = _expire(app, lot_id)
    coa = _coa(client_as("qa2"), lot_id)
    assert f"EXPIRED on {when}: not for clinical use" in coa and "CONDITIONAL RELEASE: pending Sterility" in coa
