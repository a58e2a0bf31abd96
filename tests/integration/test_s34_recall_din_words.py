"""The recall pages, refusals, flash and PDFs name a bag as its label does, with the check character K the nurse and
QA read against the bag in hand ("X9999 26 000008 J", core.identifiers.din_shown), never the bare stored DIN
("X999926000008"): the refusal to complete a recall, the discard refusals and flash, the discard field's label, the
bag trace's title, and the DIN column of the recall report and trace PDFs."""
from __future__ import annotations

import io
from types import SimpleNamespace

from pypdf import PdfReader
from sqlalchemy import select

from mscbatch.core.identifiers import din_shown
from mscbatch.lots.models import Bag
from mscbatch.recall.models import BagHold
from mscbatch.recall.services import outstanding_words
from tests.integration.test_recall_completion import start
from tests.integration.test_recall_support import scene


def _pdf_words(response) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    return " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(response.data)).pages)


def test_the_refusal_to_complete_names_each_bag_with_its_check_character() -> None:
    bag = SimpleNamespace(din="X999926000008", check_character="J", status="stored")
    assert outstanding_words([bag]) == "1 bag is still to be dealt with: bag X9999 26 000008 J (in stock)"  # type: ignore[list-item]


def test_the_recall_page_label_title_and_pdfs_name_bags_as_their_labels(app, users, client_as):  # type: ignore[no-untyped-def]
    s = scene(app)
    qa = client_as("qa")
    recall_id = start(qa, "donor", s.donor_code)
    with app.extensions["mscbatch.db"].new_session() as session:
        bags = list(session.scalars(select(Bag).join(BagHold, BagHold.bag_id == Bag.id)
                                    .where(BagHold.recall_id == recall_id).order_by(Bag.din)))
        shown = {bag.id: din_shown(bag) for bag in bags}
        in_stock = next(bag.id for bag in bags if bag.status == "stored")
        typed = {bag.id: bag.din + bag.check_character for bag in bags}
    page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    assert f"Reason for discarding bag {shown[in_stock]}</label>" in page
    assert f"<title>Bag {shown[in_stock]}" in qa.get(f"/trace/bags/{in_stock}").get_data(as_text=True)
    report = _pdf_words(qa.get(f"/recalls/{recall_id}/report.pdf"))
    trace = _pdf_words(qa.get(f"/trace/donors/{s.donor_id}.pdf"))
    for bag_id, words in shown.items():
        assert words in report and words in trace, words
        assert typed[bag_id] not in report and typed[bag_id] not in trace
    done = qa.post(f"/recalls/{recall_id}/bags/{in_stock}/discard", data={"reason": "Recalled: destroyed"})
    assert done.status_code == 302
    after = qa.get(done.headers["Location"]).get_data(as_text=True)
    assert f"Bag {shown[in_stock]} recorded as DISCARDED under recall R-{recall_id}" in after
