"""The trace form's input, and the trace PDFs' words (S37 QA/inspector review, items 3 and 4).

Before: kind=Lot (another case) found nothing (404), kind=bogus traced a donor silently, a 50,000-character code was
echoed whole into the page, a lot number mistyped got no hint of how the unit writes it (the recall form gives one);
the trace PDFs printed the status codes ("in_process") where the pages say "in process".
"""
from __future__ import annotations

import re
import subprocess
import tempfile
from datetime import timedelta
from decimal import Decimal

from mscbatch.core.culture import BagPlan
from mscbatch.lots import bags, reagents
from mscbatch.lots.models import Lot
from tests.integration.lot_factories import TODAY, M, approved_adipose_donor, at, harvested_lot
from tests.integration.test_donors import db_session, user  # noqa: F401 (fixture)

PLAN = BagPlan(volume_ml=Decimal(20), cells_per_ml=M, dmso_percent=Decimal(10))


def _pdf_text(content: bytes) -> str:
    with tempfile.NamedTemporaryFile(suffix=".pdf") as handle:
        handle.write(content)
        handle.flush()
        return subprocess.run(["pdftotext", "-layout", handle.name, "-"], capture_output=True, text=True,
                              check=True).stdout


def test_the_kind_is_read_in_any_case_and_a_kind_not_offered_is_refused(app, users, db_session, client_as):  # noqa: F811
    lot_id = harvested_lot(db_session, approved_adipose_donor(db_session))
    number = db_session.get(Lot, lot_id).lot_number
    db_session.commit()
    qa = client_as("qa")
    for kind in ("Lot", "LOT", " lot "):
        response = qa.get("/trace", query_string={"kind": kind, "code": number.lower()})
        assert response.status_code == 302 and response.headers["Location"].endswith(f"/trace/lots/{lot_id}"), kind

    response = qa.get("/trace", query_string={"kind": "bogus", "code": "D-2026-0001"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Start from (kind): one of donor, lot, patient, not &#39;bogus&#39;." in page, page


def test_a_code_over_the_limit_is_refused_without_being_echoed_whole(app, users, client_as):
    code = "X" * 50_000
    response = client_as("qa").get("/trace", query_string={"kind": "lot", "code": code})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Code or number (code): at most 64 characters (this one has 50000)." in page
    assert "X" * 65 not in page and len(page) < 20_000


def test_a_lot_number_not_written_as_the_unit_writes_it_gets_the_recall_forms_hint(app, users, client_as):
    response = client_as("qa").get("/trace", query_string={"kind": "lot", "code": "MSC 2026 0003"})
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "Nothing found for lot number &#39;MSC 2026 0003&#39;. Lot numbers are written like MSC-" in page, page
    # a donor code not found: no lot-number hint
    page = client_as("qa").get("/trace", query_string={"kind": "donor", "code": "D-9999-9999"}).get_data(as_text=True)
    assert "Nothing found for donor code &#39;D-9999-9999&#39;." in page and "Lot numbers" not in page


def test_the_trace_pdfs_say_statuses_as_the_pages_do(app, users, db_session, client_as):  # noqa: F811
    tech = user(db_session, "technician")
    trypsin = reagents.register_reagent_lot(db_session, tech, reagent_type="trypsin", name="TrypLE", supplier="Acme",
                                            lot_number="T-82", expiry_date=TODAY + timedelta(days=90)).id
    frozen = harvested_lot(db_session, approved_adipose_donor(db_session))
    reagents.link_reagent(db_session, tech, frozen, trypsin, used_on=TODAY)
    bags.cryopreserve(db_session, tech, frozen, frozen_at=at(TODAY, 9), bags=[PLAN] * 2)
    in_culture = harvested_lot(db_session, approved_adipose_donor(db_session))
    reagents.link_reagent(db_session, tech, in_culture, trypsin, used_on=TODAY)
    db_session.commit()
    qa = client_as("qa")
    for url in (f"/trace/reagents/{trypsin}.pdf", f"/trace/lots/{frozen}.pdf", f"/trace/lots/{in_culture}.pdf"):
        response = qa.get(url)
        assert response.status_code == 200
        text = _pdf_text(response.data)
        assert "in process" in text and not re.search(r"\w_\w", text.replace("trace-", "")), (url, text)
