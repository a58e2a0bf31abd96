"""An OOS opened under an earlier specification version, whose result meets the version now in force, is concluded
"not out of specification under the version in force (spec vN)" (s41).

Before: its only ways out were an invalidation (which needs an assignable laboratory cause and a retest: there was
no laboratory error) or a confirmation (which rejects the lot for a result that passes). Now QA signs that
conclusion, naming the version, only when the result as entered meets that version's limit; the result stays the
lot's (not invalidated), the audit trail says why, and the lot may then be released.
"""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mscbatch.audit.models import AuditEvent
from mscbatch.lots.models import Lot
from mscbatch.release import oos as oos_service
from mscbatch.release import specs
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import OosInvestigation, ReleaseResult
from mscbatch.signatures.services import signatures_of, verify
from tests.conftest import PASSWORD
from tests.integration.test_release_support import seed_quarantine_lot, user
from tests.integration.test_review4_release_specs import CD105
from tests.integration.test_s37_release_seen import seen

INVESTIGATION = "CD105 93 % was below 95 % of version 1; version 2 (90 %) now applies to this lot."
BUTTON = "Not out of specification under msc_default v2 (sign)"


def _cd105_oos(app: Any, monkeypatch: Any) -> tuple[int, int]:
    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id, {"cd105": ("93", "%")})  # below ISCT 95 %
        oos_id = session.scalar(select(OosInvestigation.id).where(OosInvestigation.lot_id == lot_id))
    assert oos_id is not None
    return lot_id, oos_id


def _version_2(spec_dir: Path) -> None:
    text = (spec_dir / "msc_default_v1.toml").read_text()
    assert CD105 in text
    (spec_dir / "msc_default_v2.toml").write_text(
        text.replace('version = "1"', 'version = "2"', 1).replace(CD105, CD105.replace("min = 95", "min = 90")))
    specs.all_specs.cache_clear()


def _post(client: Any, lot_id: int, oos_id: int) -> Any:
    return client.post(f"/release/oos/{oos_id}", data={"action": "not_oos", "oos-investigation": INVESTIGATION,
                                                       "oos-password": PASSWORD, **seen(client, lot_id)})


def test_qa_concludes_not_oos_under_the_revised_version(app, users, monkeypatch, client_as, spec_dir):  # type: ignore[no-untyped-def]
    lot_id, oos_id = _cd105_oos(app, monkeypatch)
    _version_2(spec_dir)
    qa = client_as("qa")
    page = html.unescape(qa.get(f"/release/lots/{lot_id}").get_data(as_text=True))
    assert BUTTON in page
    answer = _post(qa, lot_id, oos_id)
    assert answer.status_code == 302, html.unescape(answer.get_data(as_text=True))[:3000]
    told = html.unescape(re.sub(r"<[^>]+>", " ", qa.get(answer.headers["Location"]).get_data(as_text=True)))
    meaning = "Not out of specification under the version in force (msc_default v2)"
    assert f"Conclusion: {meaning}" in " ".join(told.split())
    with app.extensions["mscbatch.db"].new_session() as session:
        closed = session.get(OosInvestigation, oos_id)
        assert (closed.status, closed.conclusion) == (oos_service.NOT_OOS, oos_service.NOT_OOS)
        assert session.get(ReleaseResult, closed.result_id).invalidated_at is None  # no laboratory error
        (signature,) = signatures_of(session, closed)
        assert signature.meaning == meaning and verify(session, signature, closed)
        (event,) = session.scalars(select(AuditEvent).where(
            AuditEvent.entity_type == "release_oos", AuditEvent.entity_id == str(oos_id),
            AuditEvent.field == "status")).all()
        assert (event.old_value, event.new_value) == ("open", "not_oos")
        assert "not out of specification under msc_default v2" in (event.reason or "")
        assert session.get(Lot, lot_id).status == "quarantine"
    released = qa.post(f"/release/lots/{lot_id}/release", data={"action": "release", "release-password": PASSWORD,
                                                                **seen(qa, lot_id)})
    assert released.status_code == 302, html.unescape(released.get_data(as_text=True))[:3000]
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Lot, lot_id).status == "released"


def test_not_oos_is_refused_while_the_result_fails_the_version_in_force(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id, oos_id = _cd105_oos(app, monkeypatch)
    qa = client_as("qa")
    assert "Not out of specification under" not in qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    refused = _post(qa, lot_id, oos_id)
    assert refused.status_code == 409
    words = html.unescape(refused.get_data(as_text=True))
    assert "does not meet CD105" in words and "msc_default v1" in words and "Nothing was signed." in words
    with app.extensions["mscbatch.db"].new_session() as session:
        still = session.get(OosInvestigation, oos_id)
        assert (still.status, still.conclusion) == ("open", None)
        assert signatures_of(session, still) == []
