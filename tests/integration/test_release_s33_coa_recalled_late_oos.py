"""A certificate of a lot not in use is headed with what it is, whatever else it says (README, Release: "headed NOT
RELEASED / REJECTED / RECALLED / EXPIRED in red for a lot not in use"). A conditionally released lot whose pending
test failed late, then recalled (by a recall of its donor, say) while its late OOS is still open, was headed with the
late OOS flag alone: nothing on it said RECALLED."""
from __future__ import annotations

import io

from pypdf import PdfReader
from sqlalchemy import select

from mscbatch.lots.models import Lot
from mscbatch.recall.services import start_recall
from mscbatch.release.oos import open_oos_of
from tests.conftest import PASSWORD
from tests.integration.test_release_support import sterility_failed_late, user


def _text(pdf: bytes) -> str:
    return " ".join(" ".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf)).pages).split())


def test_a_recalled_lot_with_an_open_late_oos_is_headed_recalled_beside_the_late_oos(
        app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id = sterility_failed_late(app, monkeypatch)
    session = app.extensions["mscbatch.db"].new_session()
    try:
        assert [o.late for o in open_oos_of(session, lot_id)] == [True]
        donor_id = session.scalar(select(Lot.donor_id).where(Lot.id == lot_id))
        start_recall(session, user(session, "qa2"), scope="donor", target_id=donor_id, password=PASSWORD,
                     reason="Late positive HBV NAT on the donor's archive sample")
        session.expire_all()
        assert session.get(Lot, lot_id).status == "recalled"
        assert open_oos_of(session, lot_id)  # the late OOS is still open
    finally:
        session.close()

    text = _text(client_as("qa").get(f"/release/lots/{lot_id}/certificate.pdf").data)
    assert "LATE OOS: Sterility failed after the conditional release" in text  # the spec's name, not the id
    assert "RECALLED: not for clinical use" in text
