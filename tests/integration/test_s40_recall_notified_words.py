"""A recall's page and report say what was done for a patient whose clinician was told, never an instruction still
to do. Before, the bag's Action said "NOTIFY CLINICIAN: infused into patient ..." for good: after the notice was
recorded, and on a completed recall's final report, although completion is refused until every clinician is told
(recall.notices). Now the row says "Clinician notified <site time> (<UTC>): <who was told, how>; recorded by <who>",
and a closed recall's notify section no longer says "notify their clinician"."""
from __future__ import annotations

import html
import re
from typing import Any

from sqlalchemy import select

from mscbatch.database import utcnow
from mscbatch.lots.models import Bag
from mscbatch.recall.models import RecallNotice
from mscbatch.site import local_and_utc
from tests.conftest import PASSWORD
from tests.integration.test_recall_completion import complete, discard_all_in_stock, held_bags, start
from tests.integration.test_recall_support import scene
from tests.integration.test_s39_recall_notices import local_input, pdf_text

TO_DO = "NOTIFY CLINICIAN"


def bag_row(page: str, din: str) -> str:
    """The Affected lots and bags row of this bag (data-din is the bag's DIN as stored)."""
    at = page.index(f'<tr data-din="{din}"')
    return html.unescape(re.sub(r"\s+", " ", page[at:page.index("</tr>", at)]))


def infused_din(app: Any, bag_id: int) -> str:
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.get(Bag, bag_id).din


def told_at_of(app: Any, recall_id: int) -> Any:
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.scalars(select(RecallNotice.told_at).where(RecallNotice.recall_id == recall_id)).one()


def test_a_notified_patient_and_a_completed_recall_say_what_was_done_not_what_to_do(app, users, client_as):
    s = scene(app)
    qa = client_as("qa")
    recall_id = start(qa, "lot", "#" + str(s.released_lot_id))
    din = infused_din(app, s.infused_bag_id)

    # active, nobody told yet: the instruction, on the page and on paper
    page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    assert TO_DO in bag_row(page, din)
    assert TO_DO in pdf_text(qa, recall_id) and "notify their clinician" in pdf_text(qa, recall_id)

    told_at = utcnow().replace(second=0, microsecond=0)
    recorded = qa.post(f"/recalls/{recall_id}/patients/{s.patient_id}/notice", data={
        "clinician": "Dr Clara Clinician", "how": "phone", "told_at": local_input(told_at)})
    assert recorded.status_code == 302, recorded.get_data(as_text=True)[:3000]
    done = f"Clinician notified {local_and_utc(told_at_of(app, recall_id))}: Dr Clara Clinician told by phone; " \
           "recorded by Qa"

    # told, still active: the row says what was done (site time first, UTC beside, who), no instruction
    row = bag_row(qa.get(f"/recalls/{recall_id}").get_data(as_text=True), din)
    assert done in row and f"patient {s.patient_code}" in row and TO_DO not in row
    paper = pdf_text(qa, recall_id)
    assert done in paper and TO_DO not in paper

    discard_all_in_stock(app, [bag_id for bag_id, _din, _status in held_bags(app, recall_id)])
    finished = complete(qa, recall_id)
    assert finished.status_code == 302, finished.get_data(as_text=True)[:3000]

    # completed: the final report, on the page and on paper, says what was done, never "notify"
    page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    words = html.unescape(re.sub(r"\s+", " ", page))
    assert done in bag_row(page, din)
    assert TO_DO not in page and "notify their clinician" not in words
    assert "their clinicians were told" in words
    paper = pdf_text(qa, recall_id)
    assert "(final report)" in paper and done in paper
    assert TO_DO not in paper and "notify their clinician" not in paper and "their clinicians were told" in paper


def test_a_clinician_who_confirmed_in_the_app_is_named_as_such(app, users, client_as):
    s = scene(app)
    qa = client_as("qa")
    recall_id = start(qa, "lot", "#" + str(s.released_lot_id))
    din = infused_din(app, s.infused_bag_id)
    assert client_as("clinician").post(f"/recalls/{recall_id}/patients/{s.patient_id}/acknowledge").status_code == 302
    done = f"Clinician notified {local_and_utc(told_at_of(app, recall_id))}: Clinician acknowledged it in the app"
    row = bag_row(qa.get(f"/recalls/{recall_id}").get_data(as_text=True), din)
    assert done in row and "recorded by" not in row and TO_DO not in row
    paper = pdf_text(qa, recall_id)
    assert done in paper and TO_DO not in paper


def test_a_recall_ended_as_invalid_gives_no_instruction_for_a_patient_nobody_told(app, users, client_as):
    """Closed, nothing more is done under it: the row says no notice was recorded, not "NOTIFY CLINICIAN"."""
    s = scene(app)
    qa = client_as("qa")
    recall_id = start(qa, "lot", "#" + str(s.released_lot_id))
    din = infused_din(app, s.infused_bag_id)
    assert qa.post(f"/recalls/{recall_id}/end", data={"reason": "Supplier withdrew the notice: wrong lot number",
                                                      "password": PASSWORD}).status_code == 302
    row = bag_row(qa.get(f"/recalls/{recall_id}").get_data(as_text=True), din)
    assert "No notice of the clinician recorded; the recall is ended as found invalid: infused into patient " \
        f"{s.patient_code}" in row and TO_DO not in row
    paper = pdf_text(qa, recall_id)
    assert TO_DO not in paper and "notify their clinician" not in paper
    assert "whether their clinician was told" in paper
