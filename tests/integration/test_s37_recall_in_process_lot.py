"""A lot in process when a recall reaching it starts (S37 QA/inspector review, items 1 and 2).

Before: the recall's page and its PDF listed only lots with bags, so a lot still in culture that used the recalled
reagent lot appeared nowhere but in the start message, whose "(bags held)" was said of it though it had no bag; and
its own page said nothing, so work went on unaware. Now the page and the PDF list it (no bags yet: its bags will be
held when made; no release while the recall is in force), the lot's page shows the recall in force, and the start
message says per lot what is true of its bags.
"""
from __future__ import annotations

import re
import subprocess
import tempfile
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from mscbatch.core.culture import BagPlan
from mscbatch.lots import bags, reagents
from mscbatch.lots.models import Lot
from mscbatch.recall.models import Recall
from tests.conftest import PASSWORD
from tests.integration.lot_factories import TODAY, M, approved_adipose_donor, at, harvested_lot
from tests.integration.test_donors import db_session, user  # noqa: F401 (fixture)

PLAN = BagPlan(volume_ml=Decimal(20), cells_per_ml=M, dmso_percent=Decimal(10))
NO_BAGS_YET = ("In process, no bags yet: its bags will be held when made; it cannot be released while the recall is "
               "in force")


def _pdf_text(content: bytes) -> str:
    with tempfile.NamedTemporaryFile(suffix=".pdf") as handle:
        handle.write(content)
        handle.flush()
        text = subprocess.run(["pdftotext", "-layout", handle.name, "-"], capture_output=True, text=True,
                              check=True).stdout
    return re.sub(r"\s+", " ", text)


def _scene(session) -> tuple[int, int, str, str]:  # type: ignore[no-untyped-def]
    """A reagent lot used by two lots: one frozen (3 bags), one still in culture (no bag)."""
    tech = user(session, "technician")
    trypsin = reagents.register_reagent_lot(session, tech, reagent_type="trypsin", name="TrypLE", supplier="Acme",
                                            lot_number="T-81", expiry_date=TODAY + timedelta(days=90)).id
    frozen = harvested_lot(session, approved_adipose_donor(session))
    reagents.link_reagent(session, tech, frozen, trypsin, used_on=TODAY)
    bags.cryopreserve(session, tech, frozen, frozen_at=at(TODAY, 9), bags=[PLAN] * 3)
    in_culture = harvested_lot(session, approved_adipose_donor(session))
    reagents.link_reagent(session, tech, in_culture, trypsin, used_on=TODAY)
    numbers = (session.get(Lot, frozen).lot_number, session.get(Lot, in_culture).lot_number)
    session.commit()
    return frozen, in_culture, *numbers


def test_a_lot_in_process_is_listed_on_the_recall_its_pdf_and_its_own_page(app, users, db_session, client_as):  # noqa: F811
    frozen, in_culture, frozen_number, culture_number = _scene(db_session)
    assert db_session.get(Lot, in_culture).status == "in_process"
    db_session.rollback()
    qa = client_as("qa")
    response = qa.post("/recalls/new", data={"scope": "reagent_lot", "target": "T-81", "password": PASSWORD,
                                             "reason": "Supplier notice: endotoxin above limit in lot T-81"})
    assert response.status_code == 302, response.get_data(as_text=True)
    recall_id = db_session.scalar(select(Recall.id).order_by(Recall.id.desc()).limit(1))
    db_session.rollback()

    # the start message: per lot, what is true of its bags (not "(bags held)" after a lot that has none)
    page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    flashed = re.sub(r"\s+", " ", page)
    assert f"{culture_number} stays in process (no bags yet: they will be held when made" in flashed, flashed
    assert "(bags held)" not in flashed

    # the recall's page lists the lot in process, with what the recall does to it
    row = re.search(rf'<tr class="bagless-lot" data-lot="{culture_number}">(.*?)</tr>', page, re.S)
    assert row is not None, page
    assert NO_BAGS_YET in re.sub(r"\s+", " ", row.group(1))
    assert page.count(f'data-lot="{frozen_number}"') == 0  # the frozen lot is listed by its bags
    assert page.count("<tr data-din=") == 3

    # and so does its PDF
    pdf = _pdf_text(qa.get(f"/recalls/{recall_id}/report.pdf").data)
    assert culture_number in pdf and NO_BAGS_YET.replace(" ", "") in pdf.replace(" ", ""), pdf

    # the lot's own page says the recall in force covers it, for the technician doing the work too
    lot_page = re.sub(r"\s+", " ", client_as("technician").get(f"/lots/{in_culture}").get_data(as_text=True))
    assert 'id="recall-notice"' in lot_page, lot_page
    assert f"Covered by recall R-{recall_id}, in force:" in lot_page
    assert "no bags yet: its bags will be held when made; it cannot be released while the recall is in force" \
        in lot_page
    assert "Supplier notice: endotoxin above limit in lot T-81" in lot_page
    frozen_page = re.sub(r"\s+", " ", qa.get(f"/lots/{frozen}").get_data(as_text=True))
    assert f'href="/recalls/{recall_id}">R-{recall_id}</a>, in force:' in frozen_page
    assert "its bags not yet given are on hold; it cannot be released while the recall is in force" in frozen_page


def test_a_lot_under_no_recall_shows_no_notice(app, users, db_session, client_as):  # noqa: F811
    lot_id = harvested_lot(db_session, approved_adipose_donor(db_session))
    db_session.commit()
    assert 'id="recall-notice"' not in client_as("qa").get(f"/lots/{lot_id}").get_data(as_text=True)


def test_the_start_message_counts_the_held_bags_of_each_lot_kept(app, users, db_session, client_as):  # noqa: F811
    _frozen, _in_culture, frozen_number, culture_number = _scene(db_session)
    db_session.rollback()
    response = client_as("qa").post("/recalls/new", data={
        "scope": "reagent_lot", "target": "T-81", "password": PASSWORD,
        "reason": "Supplier notice: endotoxin above limit in lot T-81"}, follow_redirects=True)
    page = re.sub(r"\s+", " ", response.get_data(as_text=True))
    assert ": 3 bags on hold; " in page, page
    assert (f"{frozen_number} stays in process (3 bags held; it cannot be released while the recall is in force); "
            f"{culture_number} stays in process (no bags yet: they will be held when made; it cannot be released "
            "while the recall is in force).") in page, page
