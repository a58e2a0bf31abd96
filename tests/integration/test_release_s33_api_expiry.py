"""The release API tells a client the lot's expiry: a released lot past its expiry keeps the status "released" until
someone marks it expired, and the review page and the certificate say "EXPIRED on ...: not for clinical use"; the
answer a client reads before it allocates, labels or gives a bag (`GET /api/v1/release/bags/<id>`, issue 6) said
`released: true` and nothing else."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, text

from mscbatch.database import utcnow
from mscbatch.lots.models import Bag
from mscbatch.release import release
from mscbatch.release.demo import enter_panel
from tests.conftest import PASSWORD, api_token_for
from tests.integration.test_release_support import seed_quarantine_lot, user


def test_a_released_lot_past_its_expiry_is_said_expired_by_the_bag_and_lot_release_api(
        app, users, monkeypatch):  # type: ignore[no-untyped-def]
    lot_id = seed_quarantine_lot(app, monkeypatch)
    session = app.extensions["mscbatch.db"].new_session()
    try:
        enter_panel(session, user(session, "technician"), lot_id)
        release.release_lot(session, user(session, "qa"), lot_id, PASSWORD)
        bag_id = session.scalar(select(Bag.id).where(Bag.lot_id == lot_id).order_by(Bag.id).limit(1))
        session.commit()
    finally:
        session.close()
    client, token = app.test_client(), api_token_for(app, "nurse")
    headers = {"Authorization": f"Bearer {token}"}

    before = client.get(f"/api/v1/release/bags/{bag_id}", headers=headers).get_json()
    assert before["released"] is True and before["expired"] is False and before["expires_at"]

    session = app.extensions["mscbatch.db"].new_session()
    try:  # time passes: the shelf life runs out (no service moves an expiry)
        expired_at = utcnow() - timedelta(hours=1)
        session.execute(text("UPDATE lot SET expires_at = :t WHERE id = :i"), {"t": expired_at, "i": lot_id})
        session.execute(text("UPDATE bag SET expires_at = :t WHERE lot_id = :i"), {"t": expired_at, "i": lot_id})
        session.commit()
    finally:
        session.close()

    bag = client.get(f"/api/v1/release/bags/{bag_id}", headers=headers)
    assert bag.status_code == 200
    assert bag.get_json()["lot_status"] == "released" and bag.get_json()["expired"] is True
    clinician = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}  # lot verdicts: not the ward's
    lot = client.get(f"/api/v1/release/lots/{lot_id}", headers=clinician).get_json()
    assert lot["release"]["expired"] is True and lot["release"]["expires_at"].startswith(
        expired_at.strftime("%Y-%m-%dT%H:%M"))
    assert client.get("/api/v1/release/bags/999999", headers=headers).status_code == 404
