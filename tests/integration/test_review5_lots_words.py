"""Review 5 (lab QA): words of the lot pages and the recall start. "is in in process", "is now quarantine",
"1 bags", "0 bags on hold ... (bags held)", a tissue amount of 1e309 refused as "must be greater than 0", a cell
count of 1e309 refused naming no field, "9,5" given two messages, and an after-release deviation not said so."""
from __future__ import annotations

from sqlalchemy import select

from mscbatch.lots import steps
from mscbatch.lots.models import ProcessStep
from tests.conftest import PASSWORD
from tests.integration.lot_factories import (
    TODAY,
    approved_adipose_donor,
    at,
    cryopreserved_lot,
    harvested_lot,
    start_lot,
)
from tests.integration.test_deviation_after_release import _released
from tests.integration.test_donors import db_session, user  # noqa: F401 (fixture)


def test_state_words_and_one_bag(app, users, db_session, client_as):  # noqa: F811
    donor_id = approved_adipose_donor(db_session)
    lot_id = harvested_lot(db_session, donor_id)
    db_session.rollback()
    tech = client_as("technician")
    early = tech.post(f"/lots/{lot_id}/transition", data={"transition-target": "expired",
                                                          "transition-reason": "test"})
    html = early.get_data(as_text=True)
    assert early.status_code == 409 and "is in process; it cannot go to expired" in html and "in in " not in html

    one = tech.post(f"/lots/{lot_id}/cryopreservation", follow_redirects=True, data={
        "cryo-frozen_at": f"{TODAY.isoformat()}T09:00", "cryo-bag_count": "1", "cryo-volume_ml": "20",
        "cryo-cells_per_ml": "1", "cryo-dmso_percent": "10"})
    page = one.get_data(as_text=True)
    assert "Cryopreserved into 1 bag; DIN allocated." in page and "in 1 bag<" in page, page

    ready, _bags = cryopreserved_lot(db_session, donor_id, count=2, with_reagents=True, placed=True)
    db_session.rollback()
    moved = tech.post(f"/lots/{ready}/transition", follow_redirects=True,
                      data={"transition-target": "quarantine", "transition-reason": "ready for QC"})
    assert "is now in quarantine." in moved.get_data(as_text=True)


def test_a_recall_of_a_lot_without_bags_says_no_bag_was_held(app, users, db_session, client_as):  # noqa: F811
    lot_id = start_lot(db_session, approved_adipose_donor(db_session))
    from mscbatch.lots.models import Lot
    number = db_session.get(Lot, lot_id).lot_number
    db_session.rollback()
    answer = client_as("qa").post("/recalls/new", follow_redirects=True, data={
        "scope": "lot", "target": number, "reason": "supplier notice", "password": PASSWORD})
    html = answer.get_data(as_text=True)
    assert "no bag to put on hold" in html and "0 bags" not in html and "(bags held)" not in html, html


def test_number_refusals_name_the_field_once(app, users, db_session, client_as):  # noqa: F811
    tech = client_as("technician")
    donor_id = approved_adipose_donor(db_session)
    db_session.rollback()
    huge = tech.post("/lots/new", data={"donor_id": str(donor_id), "product_id": "AT-MSC",
                                        "collection_at": at(TODAY).strftime("%Y-%m-%dT%H:%M"),
                                        "collection_site": "Theatre 3", "tissue_amount": "1" + "0" * 309,
                                        "tissue_unit": "g"})
    html = huge.get_data(as_text=True)
    assert huge.status_code == 422 and "far too much" in html and "greater than 0" not in html

    lot_id = start_lot(db_session, donor_id)
    steps.record_isolation(db_session, user(db_session, "technician"), lot_id, performed_on=TODAY)
    db_session.rollback()
    form = {"passage-passage_number": "0", "passage-performed_on": TODAY.isoformat(), "passage-seeded_cells": "2",
            "passage-harvested_cells": "16", "passage-viability_percent": "95", "passage-days_in_culture": ""}
    many = tech.post(f"/lots/{lot_id}/passages", data={**form, "passage-harvested_cells": "1" + "0" * 309})
    assert many.status_code == 422 and "Cells harvested: far too many" in many.get_data(as_text=True)
    exponent = tech.post(f"/lots/{lot_id}/passages", data={**form, "passage-harvested_cells": "1e309"})
    assert exponent.status_code == 422 and "Cells harvested: &#39;1e309&#39; is not" in exponent.get_data(as_text=True)
    comma = tech.post(f"/lots/{lot_id}/passages", data={**form, "passage-seeded_cells": "9,5"})
    html = comma.get_data(as_text=True)
    assert comma.status_code == 422 and "Cells seeded: &#39;9,5&#39; is not a number" in html, html
    assert "with a point, not a comma" in html
    assert "Not a valid decimal value" not in html and "Must be positive" not in html
    assert db_session.scalar(select(ProcessStep.id).where(ProcessStep.passage_number == 0)) is None


def test_the_lot_page_says_a_deviation_was_recorded_after_release(app, users, monkeypatch, client_as):
    lot_id, step_id = _released(app, monkeypatch)
    tech = client_as("technician")
    tech.post(f"/lots/{lot_id}/deviations", data={"deviation-step_id": step_id, "deviation-severity": "minor",
                                                  "deviation-description": "LN2 level alarm 5 min"})
    html = tech.get(f"/lots/{lot_id}").get_data(as_text=True)
    late = html[html.index("LN2 level alarm") - 300:html.index("LN2 level alarm")]
    early = html[html.index("Incubator door alarm") - 300:html.index("Incubator door alarm")]
    assert "recorded after release" in late and "recorded after release" not in early
