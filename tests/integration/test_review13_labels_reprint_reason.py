"""Review 13 (labels): a reprint's reason is kept whole in the bag's chain of custody, or refused, never cut.

Each bag printed gets a "labelled" custody event carrying the print's reason; the custody record keeps at most 2000
characters (mscbatch.custody.log). The print form took a reason of any length: the print record kept it all while
the custody events kept its first 2000 characters, so the bag's custody timeline showed a truncated reason."""
from __future__ import annotations

from sqlalchemy import func, select

from mscbatch.custody.models import CustodyEvent
from mscbatch.labelling.models import LabelPrint
from tests.integration.test_labelling import make_lot


def _counts(app, bag_id):  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    try:
        prints = session.scalar(select(func.count()).select_from(LabelPrint))
        reasons = list(session.scalars(select(CustodyEvent.reason).where(
            CustodyEvent.bag_id == bag_id, CustodyEvent.kind == "labelled").order_by(CustodyEvent.id)))
        return prints, reasons
    finally:
        session.close()


def test_a_reprint_reason_longer_than_the_custody_record_keeps_is_refused_and_nothing_printed(app, users, client_as):  # type: ignore[no-untyped-def]
    lot_id, bags = make_lot(app, bags=1)
    (bag_id, _typed), = bags
    client = client_as("technician")
    first = client.post(f"/labels/lots/{lot_id}/print", data={"print_format": "lot"})
    assert first.status_code == 200
    assert _counts(app, bag_id) == (1, [""])

    too_long = "label torn in the shipper; " + "x" * 1973 + "!"  # 2001 characters
    assert len(too_long) == 2001
    refused = client.post(f"/labels/lots/{lot_id}/print", data={"print_format": "lot", "reason": too_long})
    assert refused.status_code == 422, refused.status_code
    assert "at most 2000 characters" in refused.get_data(as_text=True)
    assert _counts(app, bag_id) == (1, [""])  # no print, no custody event

    whole = too_long[:-1]  # 2000 characters: kept whole in the bag's custody record
    reprint = client.post(f"/labels/lots/{lot_id}/print", data={"print_format": "lot", "reason": whole})
    assert reprint.status_code == 200
    assert _counts(app, bag_id) == (2, ["", whole])
