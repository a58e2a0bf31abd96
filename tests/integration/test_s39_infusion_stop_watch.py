"""S39 (ward-nurse review): the running infusion page's STOP poll stopped when the session idled out (15 min), and an
infusion lasts about an hour: a bag recalled after minute 15 never showed STOP at the bedside. The page now carries a
watch token (signed, bound to the infusion, good while it runs and 12 h at most) that its script sends to watch.json
once the session has ended: STOP still shows, no session is kept alive, nothing else is told. And an infusion ended
because the system said STOP needs one reason, the STOP, not three."""
from __future__ import annotations

import html
import re
import time
from datetime import timedelta
from typing import Any

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import func, select, update

from mscbatch.audit.models import AuditEvent
from mscbatch.auth.models import AuthSession
from mscbatch.custody import infusions
from mscbatch.custody.infusion_views import _WATCH_SALT, WATCH_HEADER
from mscbatch.custody.models import Infusion
from mscbatch.database import utcnow
from mscbatch.recall import services as recalls
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag

pytestmark = pytest.mark.usefixtures("users")


def _running(app: Any, **kwargs: Any) -> tuple[Any, int]:
    with app.extensions["mscbatch.db"].new_session() as session:
        ward = prescribed_bag(session, **kwargs)
        checked_and_confirmed(session, ward)
        infusion = infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                            bag_scan=ward.token, label_key=KEY)
        return ward, infusion.id


def _recall(app: Any, ward: Any) -> None:
    with app.extensions["mscbatch.db"].new_session() as session:
        recalls.start_recall(session, user(session, "qa"), scope="lot", target_id=ward.lot_id,
                             reason="late positive sterility culture", password=PASSWORD)


def _token(nurse: Any, infusion_id: int) -> str:
    page = nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    found = re.search(r'data-watch-token="([^"]+)"', page)
    assert found, "the running infusion page carries its watch token"
    return html.unescape(found.group(1))


def _watch(app: Any, infusion_id: int, token: str | None) -> Any:
    headers = {WATCH_HEADER: token} if token is not None else {}
    return app.test_client().get(f"/ward/infusions/{infusion_id}/watch.json", headers=headers)  # no session at all


def _audit_count(app: Any) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent))


def test_the_watch_token_shows_stop_without_a_session_and_tells_nothing_more(app, client_as):  # type: ignore[no-untyped-def]
    ward, infusion_id = _running(app)
    token = _token(client_as("nurse"), infusion_id)
    quiet = _watch(app, infusion_id, token)
    assert quiet.status_code == 200 and quiet.get_json() == {"stop_now": False, "reasons": []}
    assert quiet.headers["Cache-Control"] == "no-store"
    _recall(app, ward)
    before = _audit_count(app)
    answer = _watch(app, infusion_id, token)
    assert answer.status_code == 200
    body = answer.get_json()
    # what the page needs to show STOP and offer its one-reason end, nothing else
    assert set(body) == {"stop_now", "reasons", "end_reason"} and body["end_reason"] == infusions.STOPPED_BY_SYSTEM
    assert body["stop_now"] is True and any("RECALLED" in reason for reason in body["reasons"])
    assert _audit_count(app) == before  # passive: nothing audited per poll


def test_the_watch_is_refused_without_a_genuine_token_of_this_running_infusion(app, client_as):  # type: ignore[no-untyped-def]
    ward, infusion_id = _running(app)
    other_ward, other_id = _running(app)
    nurse = client_as("nurse")
    token, other_token = _token(nurse, infusion_id), _token(nurse, other_id)
    _recall(app, ward)
    assert _watch(app, infusion_id, None).status_code == 400
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    foreign = URLSafeTimedSerializer("another-secret", salt=_WATCH_SALT).dumps({"infusion": infusion_id,
                                                                                "started": 0})

    class Yesterday(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 13 * 3600

    expired = URLSafeTimedSerializer(app.secret_key, salt=_WATCH_SALT, signer=Yesterday).dumps(
        {"infusion": infusion_id, "started": int(time.time())})
    for bad in (forged, foreign, expired, other_token, "not-a-token"):
        answer = _watch(app, infusion_id, bad)
        assert answer.status_code == 403, bad
        assert "stop_now" not in answer.get_json() and "reasons" not in answer.get_json()
        assert "RECALLED" not in answer.get_data(as_text=True)
    assert _watch(app, other_id, other_token).status_code == 200  # each token watches its own infusion only


def test_the_watch_ends_with_the_infusion_and_after_twelve_hours(app, client_as):  # type: ignore[no-untyped-def]
    _ward, infusion_id = _running(app)
    nurse = client_as("nurse")
    token = _token(nurse, infusion_id)
    with app.extensions["mscbatch.db"].new_session() as session:  # started 13 h ago: the watch is over
        session.execute(update(Infusion).where(Infusion.id == infusion_id)
                        .values(started_at=utcnow() - timedelta(hours=13)))
        session.commit()
    old = _token(nurse, infusion_id)
    assert _watch(app, infusion_id, old).status_code == 403
    assert _watch(app, infusion_id, token).status_code == 403  # bound to the infusion's start too
    _ward, running = _running(app)
    token = _token(nurse, running)
    assert _watch(app, running, token).status_code == 200
    with app.extensions["mscbatch.db"].new_session() as session:
        infusions.end_infusion(session, user(session, "nurse"), running, volume_ml="25", reason="as prescribed")
    assert _watch(app, running, token).status_code == 403
    assert 'data-watch-token' not in nurse.get(f"/ward/infusions/{running}").get_data(as_text=True)


def test_the_watch_keeps_no_session_alive(app, client_as):  # type: ignore[no-untyped-def]
    _ward, infusion_id = _running(app)
    nurse = client_as("nurse")
    token = _token(nurse, infusion_id)
    idle = app.config["IDLE_TIMEOUT_MINUTES"]
    with app.extensions["mscbatch.db"].new_session() as session:
        session.execute(update(AuthSession).where(AuthSession.ended_at.is_(None))
                        .values(last_seen_at=utcnow() - timedelta(minutes=idle - 2)))
        session.commit()
        before = session.scalars(select(AuthSession.last_seen_at).where(AuthSession.ended_at.is_(None))).all()
    # even sent with the session's cookie, the watch is no activity
    assert nurse.get(f"/ward/infusions/{infusion_id}/watch.json", headers={WATCH_HEADER: token}).status_code == 200
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.scalars(select(AuthSession.last_seen_at).where(AuthSession.ended_at.is_(None))).all() == before
    signed_out = nurse.get(f"/ward/infusions/{infusion_id}/stop.json")
    assert signed_out.status_code == 200  # still inside the idle window: the session poll works as before


def test_an_infusion_stopped_on_stop_ends_with_the_one_preset_reason(app, client_as):  # type: ignore[no-untyped-def]
    ward, infusion_id = _running(app)
    nurse = client_as("nurse")
    page = nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    assert 'id="end-stopped"' not in page  # offered only once the system says STOP
    refused = nurse.post(f"/ward/infusions/{infusion_id}/end", data={"volume_ml": "5", "stopped": "1"})
    assert refused.status_code == 422
    assert "has not said STOP THE INFUSION NOW" in html.unescape(refused.get_data(as_text=True))
    _recall(app, ward)
    page = nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    assert '<p id="end-stopped">' in page and infusions.STOPPED_BY_SYSTEM in html.unescape(page)
    # the STOP's one-reason end stands out; the plain end (which asks for three reasons) is the secondary one
    assert 'class="button big primary">End infusion &mdash; reason:' in page
    assert 'id="end-plain" class="button big secondary">End infusion (give your own reason)' in page
    # 5 of 25 mL, a minute in: less than prescribed, the course below its band, shorter than the protocol's time
    asked = nurse.post(f"/ward/infusions/{infusion_id}/end", data={"volume_ml": "5"})
    assert asked.status_code == 422  # a plain end still asks why
    ended = nurse.post(f"/ward/infusions/{infusion_id}/end", data={"volume_ml": "5", "stopped": "1"})
    assert ended.status_code == 302
    with app.extensions["mscbatch.db"].new_session() as session:
        row = session.get(Infusion, infusion_id)
        assert row.ended_at is not None and row.volume_reason == infusions.STOPPED_BY_SYSTEM
        # audited as the end's reason, after how it ended (S45: the end says its "why" in words)
        said = (f"Infusion #{infusion_id} stopped on the system's STOP THE INFUSION NOW: 5 mL of bag ")
        event = session.scalars(select(AuditEvent).where(AuditEvent.entity_type == "infusion",
                                                         AuditEvent.field == "ended_at")
                                .order_by(AuditEvent.seq.desc())).first()
        assert event is not None and event.reason.startswith(said), event.reason if event else None
        assert event.reason.endswith(f"Why: {infusions.STOPPED_BY_SYSTEM}")
    shown = html.unescape(nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True))
    assert f'<dt>Why</dt><dd><span id="volume-reason" class="free-text">{infusions.STOPPED_BY_SYSTEM}</span>' in shown
    assert 'id="under-prescription"' in shown  # still flagged for the clinician


def test_the_stop_preset_typed_through_the_api_is_refused_while_the_bag_is_fit(app):  # type: ignore[no-untyped-def]
    _ward, infusion_id = _running(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        with pytest.raises(Exception, match="has not said STOP"):
            infusions.end_infusion(session, user(session, "nurse"), infusion_id, volume_ml="5",
                                   reason=infusions.STOPPED_BY_SYSTEM, label_key=KEY)
        session.rollback()
        assert session.get(Infusion, infusion_id).ended_at is None


def test_the_stop_preset_does_not_explain_a_volume_above_the_prescription(app, client_as):  # type: ignore[no-untyped-def]
    """Review of the change: the preset covered every flag, an overdose included; a STOP explains giving less, never
    more. Above the prescription the nurse says why in her own words (422 on reason, nothing recorded)."""
    ward, infusion_id = _running(app, last=True)  # a partial draw: 12.5 of the bag's 25 mL prescribed
    _recall(app, ward)
    nurse = client_as("nurse")
    refused = nurse.post(f"/ward/infusions/{infusion_id}/end", data={"volume_ml": "20", "stopped": "1"})
    words = html.unescape(refused.get_data(as_text=True))
    assert refused.status_code == 422, words[:2000]
    assert "not a volume above the prescription" in words
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Infusion, infusion_id).ended_at is None
    ended = nurse.post(f"/ward/infusions/{infusion_id}/end",
                       data={"volume_ml": "20", "reason": "Line flushed into the patient after the STOP"})
    assert ended.status_code == 302
