"""Review 14 of recalls: refusals at the start of a recall and on the recall's page say what is wrong where it is.

1. A recall typed as '#<id>' of no such row (or '#0') is refused next to the target field (422), as a number typed
   wrong; before, an unknown id was a 404 above the form and '#0' said "Choose the donor to recall".
2. The recall's page discards a held bag in the cell therapy unit only: a held bag on the ward was recorded as
   discarded at "Cell therapy unit" by a POST to it (its custody record then said it was destroyed where it was
   not); it is discarded on the ward page, where it is."""
from __future__ import annotations

from sqlalchemy import func, select

from mscbatch.core.identifiers import parse_din
from mscbatch.custody.models import CustodyEvent
from mscbatch.lots.models import Bag
from mscbatch.recall.models import BagHold, Recall
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_recall_support import scene, set_status


def test_a_recall_of_no_such_number_is_refused_next_to_the_target_field(app, users, client_as):
    scene(app)
    qa = client_as("qa")
    for scope, target, words in (("donor", "#999999", "No donor #999999."), ("lot", "#999999", "No lot #999999."),
                                 ("reagent_lot", "#999999", "No reagent lot #999999."), ("lot", "#0", "No lot #0."),
                                 ("donor", "#00", "No donor #00.")):
        response = qa.post("/recalls/new", data={"scope": scope, "target": target, "password": PASSWORD,
                                                 "reason": "Supplier notice: lot contaminated"})
        page = response.get_data(as_text=True)
        assert response.status_code == 422, (scope, target, response.status_code)
        assert words in page and 'aria-invalid="true"' in page[page.index('name="target"') - 600:
                                                                page.index('name="target"') + 200], (scope, target)
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.scalar(select(func.count()).select_from(Recall)) == 0


def _recall_donor(qa, donor_code: str) -> int:  # type: ignore[no-untyped-def]
    """QA recalls the donor through the form; the new recall's id."""
    started = qa.post("/recalls/new", data={"scope": "donor", "target": donor_code, "password": PASSWORD,
                                            "reason": "Late positive HBV NAT on the archived sample"})
    assert started.status_code == 302, started.get_data(as_text=True)[:2000]
    return int(started.headers["Location"].rsplit("/", 1)[-1])


def test_the_recall_page_does_not_record_a_bag_on_the_ward_as_discarded_in_the_unit(app, users, client_as):
    s = scene(app)
    qa = client_as("qa")
    recall_id = _recall_donor(qa, s.donor_code)
    with app.extensions["mscbatch.db"].new_session() as session:
        held = session.scalars(select(BagHold.bag_id).where(BagHold.recall_id == recall_id)).all()
        on_ward = next(b for b in held if session.get(Bag, b).status == "stored")
        din = session.get(Bag, on_ward).din
        set_status(session, user(session, "technician"), on_ward, "received")  # dispatched, received on the ward
        session.commit()

    for status in ("received", "thawed", "dispatched"):
        with app.extensions["mscbatch.db"].new_session() as session:
            set_status(session, user(session, "technician"), on_ward, status)
            session.commit()
        refused = qa.post(f"/recalls/{recall_id}/bags/{on_ward}/discard", data={"reason": "Recalled: destroyed"})
        text = refused.get_data(as_text=True)
        assert refused.status_code == 409, (status, refused.status_code)
        assert f"Bag {parse_din(din).display} is not in the unit" in text and "from the ward page" in text, status
        with app.extensions["mscbatch.db"].new_session() as session:
            assert session.get(Bag, on_ward).status == status
            assert session.scalars(select(CustodyEvent).where(CustodyEvent.bag_id == on_ward,
                                                              CustodyEvent.kind == "discarded")).first() is None


def test_a_held_bag_returned_while_still_reserved_is_sent_to_the_returns_assessment(app, users, client_as):
    """3. A held bag back from the ward, its course still reserving it: the recall's page sent QA round in a circle
    ("the prescriber cancels the course, then QA discards it": the recall's page never discards a returned bag, and
    cancelling the course leaves it returned); it says what settles it, QA's assessment of the return."""
    s = scene(app)
    qa = client_as("qa")
    recall_id = _recall_donor(qa, s.donor_code)
    with app.extensions["mscbatch.db"].new_session() as session:
        held = session.scalars(select(BagHold.bag_id).where(BagHold.recall_id == recall_id)).all()
        returned = next(b for b in held if session.get(Bag, b).status == "allocated")
        din = session.get(Bag, returned).din
        set_status(session, user(session, "technician"), returned, "returned")  # back from the ward, still reserved
        session.commit()
    page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    row = page[page.index(f'data-din="{din}"'):]
    row = row[:row.index("</tr>")]
    assert "returned from the ward" in row and "QA discards it (Returned bags)" in row, row
    assert f"still reserved for patient {s.patient_code}" in row and "then QA discards it" not in row, row
    assert "Discard (recalled)" not in row
