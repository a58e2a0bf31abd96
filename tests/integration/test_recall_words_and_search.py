"""A recall in the words users see elsewhere, and a reagent recall found however the supplier's notice writes the lot.

1. The recall's page and its report PDF named a patient's protocol by its internal id ("protocol-sle-uc") where the
   patients list and the donor pages say "SLE-UC".
2. A reagent recall typed "fbs 0099" was refused ("No reagent lot ... capitals and spaces do not count") while
   "fbs-0099" found FBS-0099: a supplier's notice writes "FBS 0099", "FBS/0099", "FBS.0099" or "fbs0099" for the
   same lot. Capitals, spaces and punctuation are folded on both sides (lots.queries.recall_key), in the search for
   the target and in every row of the supplier lot (same_supplier_lot); a number differing in a digit is refused.
Both databases (the fold is a SQL expression).
"""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from mscbatch.audit.context import use_case
from mscbatch.lots.models import Bag, ReagentLot, ReagentUse
from mscbatch.patients.queries import protocols
from mscbatch.recall.models import BagHold, Recall
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.patient_factories import SLE, donor, lot_with_bags, user
from tests.integration.test_recall_completion import start
from tests.integration.test_recall_support import scene
from tests.integration.test_s35_recall_qa_walk import pdf_words, refusals_of, session_of, words_of

REASON = "Supplier notice: serum lot contaminated with mycoplasma"


# ---- 1. the protocol as users see it --------------------------------------------------------------------------------

def test_recall_page_and_report_name_the_protocol_by_its_short_name(app, users, client_as):
    the_scene = scene(app)
    short_name = protocols()[SLE].short_name
    assert short_name == "SLE-UC" and SLE == "protocol-sle-uc"  # the two differ, or this test proves nothing
    qa = client_as("qa")
    recall_id = start(qa, "donor", the_scene.donor_code)

    page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    row = re.search(r'<tr class="notify-row" data-patient="' + re.escape(the_scene.patient_code) + r'">(.*?)</tr>',
                    page, re.S)
    assert row, "the patient who received a bag is on the notify list"
    assert re.search(r'<td data-label="Protocol">\s*SLE-UC\s*</td>', row.group(1))
    assert SLE not in page

    report = pdf_words(qa.get(f"/recalls/{recall_id}/report.pdf"))
    assert the_scene.patient_code in report and "SLE-UC" in report
    assert SLE not in report and "protocol-sle" not in report.replace(" ", "")


# ---- 2. a reagent lot however the notice writes it ------------------------------------------------------------------

def register(app: Any, *rows: tuple[str, str]) -> list[tuple[int, int]]:
    """Reagent lots (supplier, lot number) of FBS, each used by a cell lot of its own with bags in stock:
    [(reagent lot id, cell lot id)]."""
    session = session_of(app)
    try:
        tech = user(session, "technician")
        made = []
        for supplier, number in rows:
            cell_lot = lot_with_bags(session, tech, donor(session, tech), bags=2)[0].lot_id
            with use_case(session, tech):
                serum = ReagentLot(reagent_type="fbs", name="Fetal bovine serum", supplier=supplier, lot_number=number,
                                   expiry_date=site_today() + timedelta(days=200), registered_by_id=tech.id)
                session.add(serum)
                session.flush()
                session.add(ReagentUse(lot_id=cell_lot, reagent_lot_id=serum.id, stage="expansion",
                                       used_on=site_today() - timedelta(days=10), recorded_by_id=tech.id))
            made.append((serum.id, cell_lot))
        return made
    finally:
        session.close()


def held_lots(app: Any, recall_id: int) -> set[int]:
    with session_of(app) as session:
        return set(session.scalars(select(Bag.lot_id).join(BagHold, BagHold.bag_id == Bag.id)
                                   .where(BagHold.recall_id == recall_id)))


@pytest.mark.parametrize("typed", ["fbs 0099", "FBS/0099", "fbs0099", "FBS.0099", "FBS_0099", " FBS \u2013 0099 ",
                                   "FBS, 0099", "#FBS:0099", "FBS-0099", "(FBS*0099)", "FBS\\0099"])
def test_a_reagent_recall_finds_the_lot_however_the_notice_writes_it(app, users, client_as, typed):
    [(serum_id, cell_lot)] = register(app, ("DemoSerum", "FBS-0099"))
    qa = client_as("qa")
    recall_id = start(qa, "reagent_lot", typed)
    with session_of(app) as session:
        recall = session.get(Recall, recall_id)
        assert (recall.scope, recall.reagent_lot_id) == ("reagent_lot", serum_id)
    assert held_lots(app, recall_id) == {cell_lot}
    assert "Fetal bovine serum FBS-0099 (DemoSerum)" in words_of(qa.get(f"/recalls/{recall_id}").get_data(as_text=True))


@pytest.mark.parametrize("typed", ["FBS 0098", "fbs/00990", "FBS-099", "FBX 0099"])
def test_a_number_that_differs_in_a_letter_or_digit_is_still_refused(app, users, client_as, typed):
    register(app, ("DemoSerum", "FBS-0099"))
    qa = client_as("qa")
    refused = qa.post("/recalls/new", data={"scope": "reagent_lot", "target": typed, "password": PASSWORD,
                                            "reason": REASON})
    assert refused.status_code == 422
    text = refusals_of(refused.get_data(as_text=True))
    assert f"No reagent lot '{typed.strip()}'." in text
    assert "only letters and digits count: capitals, spaces and marks such as - / . are left out" in text
    assert "capitals and spaces do not count" not in text
    with session_of(app) as session:
        assert session.scalars(select(Recall)).first() is None


def test_a_supplier_lot_registered_under_two_spellings_is_recalled_under_both(app, users, client_as):
    """Registration tells "FBS-0099" from "fbs/0099" (identity_key folds capitals and spaces only); the recall
    folds punctuation too, so one recall covers both rows, holds the bags of the cell lots that used either, lists
    both rows on its page and report, and a second recall under the other spelling is refused."""
    (first, first_lot), (second, second_lot) = register(app, ("DemoSerum", "FBS-0099"), ("Demo Serum", "fbs/0099"))
    qa = client_as("qa")
    recall_id = start(qa, "reagent_lot", "FBS 0099")
    assert held_lots(app, recall_id) == {first_lot, second_lot}

    page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    listed = page[page.index('id="reagent-rows-list"'):]
    listed = listed[:listed.index("</ul>")]
    assert f'data-reagent-lot="{first}"' in listed and f'data-reagent-lot="{second}"' in listed
    assert "This recall covers the 2 reagent lots registered for this supplier lot" in words_of(page)
    report = pdf_words(qa.get(f"/recalls/{recall_id}/report.pdf"))
    assert "This recall covers the 2 reagent lots registered for this supplier lot" in report
    assert f"#{first} Fetal bovine serum, DemoSerum lot FBS-0099" in report
    assert f"#{second} Fetal bovine serum, Demo Serum lot fbs/0099" in report

    again = qa.post("/recalls/new", data={"scope": "reagent_lot", "target": f"#{second}", "password": PASSWORD,
                                          "reason": REASON})
    assert again.status_code in (409, 422)
    with session_of(app) as session:
        assert [r.id for r in session.scalars(select(Recall))] == [recall_id]


def test_several_suppliers_lots_with_one_folded_number_are_named_for_the_person_to_choose(app, users, client_as):
    (ours, _lot), (theirs, _other) = register(app, ("DemoSerum", "FBS-0099"), ("Other Sera", "FBS/0099"))
    qa = client_as("qa")
    refused = qa.post("/recalls/new", data={"scope": "reagent_lot", "target": "fbs 0099", "password": PASSWORD,
                                            "reason": REASON})
    assert refused.status_code == 422
    text = refusals_of(refused.get_data(as_text=True))
    assert "Several reagent lots are numbered 'fbs 0099'" in text
    assert f"#{ours} Fetal bovine serum, DemoSerum lot FBS-0099" in text
    assert f"#{theirs} Fetal bovine serum, Other Sera lot FBS/0099" in text
    assert start(qa, "reagent_lot", f"#{theirs}")
