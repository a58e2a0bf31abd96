"""Session 39, a lab technician's review of the lot record (through the web pages, and the API where the service is
the same):

1. a passage at 0 % viability is refused as a harvest at 0 % is (steps.checked_viability, one rule);
2. the reagent drop-downs mark an expired reagent lot ("EXPIRED <date>") and one under a recall in force ("UNDER
   RECALL R-n"); a new use of a recalled lot is refused whatever its date, so it is not offered (disabled), an expired
   one stays offered (a use dated on or before its expiry is recorded), and a correction offers both (the lot really
   used is recorded, with a warning);
3. the Store form marks and disables the boxes too warm for the lot's product (storage.too_warm, the rule store_bag
   refuses them by), the suitable ones first;
4. a collection, harvest or freezing time typed in the autumn hour that comes twice is refused naming both readings,
   and accepted with the zone's abbreviation after it;
5. a number of bags typed 2.5 says the rule in words, as a box's rows and columns do.
"""
from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from mscbatch.donors import decisions
from mscbatch.donors.models import APPROVED
from mscbatch.lots import reagents
from mscbatch.lots.models import Lot, ProcessStep
from mscbatch.recall import services as recalls
from tests.conftest import PASSWORD, api_token_for
from tests.integration.lot_factories import (
    TODAY,
    M,
    approved_adipose_donor,
    box,
    cryopreserved_lot,
    harvested_lot,
    passages,
    start_lot,
)
from tests.integration.test_donors import db_session, screened_donor, user  # noqa: F401 (fixture)


def _error(text: str, field_id: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(rf'<p class="error" id="{re.escape(field_id)}-error">([^<]*)</p>', text)]


def _options(text: str, select_id: str) -> dict[str, str]:
    """{option text: the option's tag} of a select on the page."""
    found = re.search(rf'<select[^>]*id="{re.escape(select_id)}"[^>]*>(.*?)</select>', text, re.S)
    assert found, select_id
    return {html.unescape(label).strip(): tag for tag, label in re.findall(r"(<option[^>]*>)([^<]*)</option>",
                                                                           found.group(1))}


# ---- 1. a passage at 0 % viability --------------------------------------------------------------------------------

def _lot_with_p0(session: Any) -> int:
    lot_id = start_lot(session, approved_adipose_donor(session))
    passages(session, lot_id, [(2 * M, 16 * M)])
    session.commit()
    return lot_id


def _passage_count(session: Any, lot_id: int) -> int:
    count = len(list(session.scalars(select(ProcessStep).where(ProcessStep.lot_id == lot_id,
                                                               ProcessStep.kind == "passage"))))
    session.rollback()
    return count


def test_a_passage_at_0_percent_viability_is_refused_on_the_page_and_the_api(app, users, db_session,  # noqa: F811
                                                                              client_as):
    lot_id = _lot_with_p0(db_session)
    day = TODAY - timedelta(days=10)
    tech = client_as("technician")
    refused = tech.post(f"/lots/{lot_id}/passages", data={
        "passage-passage_number": "1", "passage-performed_on": day.isoformat(), "passage-seeded_cells": "14",
        "passage-harvested_cells": "110", "passage-viability_percent": "0", "passage-days_in_culture": "4"})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422
    [said] = _error(text, "passage-viability_percent")
    assert said.startswith("Viability: 0 % means no living cell"), said
    token = api_token_for(app, "technician")
    answer = app.test_client().post(f"/api/v1/lots/{lot_id}/passages", headers={"Authorization": f"Bearer {token}"},
                                    json={"passage_number": 1, "performed_on": day.isoformat(),
                                          "seeded_cells": 14 * M, "harvested_cells": 110 * M,
                                          "viability_percent": "0.00", "days_in_culture": "4"})
    assert answer.status_code == 422, answer.get_json()
    assert "0 % means no living cell" in str(answer.get_json())
    assert _passage_count(db_session, lot_id) == 1
    accepted = tech.post(f"/lots/{lot_id}/passages", data={
        "passage-passage_number": "1", "passage-performed_on": day.isoformat(), "passage-seeded_cells": "14",
        "passage-harvested_cells": "110", "passage-viability_percent": "0.5", "passage-days_in_culture": "4"})
    assert accepted.status_code == 302
    assert _passage_count(db_session, lot_id) == 2


# ---- 2. expired and recalled reagent lots in the drop-downs -------------------------------------------------------

def _reagent(session: Any, number: str, expiry: date, reagent_type: str = "fbs", name: str = "FBS") -> int:
    return reagents.register_reagent_lot(session, user(session, "technician"), reagent_type=reagent_type, name=name,
                                         supplier="Acme", lot_number=number, expiry_date=expiry).id


def test_the_reagent_drop_downs_mark_expired_and_recalled_lots_as_the_services_judge_them(
        app, users, db_session, client_as):  # noqa: F811
    lot_id = _lot_with_p0(db_session)
    p0 = db_session.scalar(select(ProcessStep.id).where(ProcessStep.lot_id == lot_id, ProcessStep.passage_number == 0))
    expired_on = TODAY - timedelta(days=3)
    expired = _reagent(db_session, "FBS-0099", expired_on)
    recalled = _reagent(db_session, "TRX-1", TODAY + timedelta(days=300), "trypsin", "TrypLE")
    good = _reagent(db_session, "FBS-0100", TODAY + timedelta(days=300))
    db_session.commit()
    recall = recalls.start_recall(db_session, user(db_session, "qa"), scope="reagent_lot", target_id=recalled,
                                  reason="Supplier notice: endotoxin", password=PASSWORD)
    db_session.commit()
    tech = client_as("technician")
    options = _options(tech.get(f"/lots/{lot_id}").get_data(as_text=True), "reagent-reagent_lot_id")
    [expired_label] = [label for label in options if "FBS-0099" in label]
    assert f"(EXPIRED {expired_on})" in expired_label and "disabled" not in options[expired_label]
    [recalled_label] = [label for label in options if "TRX-1" in label]
    assert f"UNDER RECALL R-{recall.recall_id}" in recalled_label and "disabled" in options[recalled_label]
    [good_label] = [label for label in options if "FBS-0100" in label]
    assert "EXPIRED" not in good_label and "RECALL" not in good_label and "disabled" not in options[good_label]
    # the register says it too (s39 re-walk: /reagents listed the recalled lot as an ordinary in-date one)
    register = tech.get("/reagents").get_data(as_text=True)
    rows = register.split("<tr")
    [row] = [r for r in rows if "<td>TRX-1</td>" in r]
    assert f"UNDER RECALL R-{recall.recall_id}: not to be used" in row
    assert "recalls/" not in row  # a technician may not open the recall: the words, not a link
    assert f"UNDER RECALL R-{recall.recall_id}" in client_as("qa").get("/reagents").get_data(as_text=True)
    [good_row] = [r for r in rows if "<td>FBS-0100</td>" in r]
    assert "UNDER RECALL" not in good_row

    # the marks agree with the rules: the expired lot is recorded for a use on or before its expiry...
    used = tech.post(f"/lots/{lot_id}/reagents", data={"reagent-reagent_lot_id": expired, "reagent-step_id": p0,
                                                       "reagent-used_on": (TODAY - timedelta(days=17)).isoformat()})
    assert used.status_code == 302, re.findall(r'class="error"[^>]*>([^<]*)', used.get_data(as_text=True))
    # ...and the recalled one is refused whatever the date
    refused = tech.post(f"/lots/{lot_id}/reagents", data={"reagent-reagent_lot_id": recalled, "reagent-step_id": p0,
                                                          "reagent-used_on": (TODAY - timedelta(days=17)).isoformat()})
    assert refused.status_code == 409

    # a correction of the FBS use offers the lots of its type, marked, none disabled (the lot really used is recorded)
    page = tech.get(f"/lots/{lot_id}").get_data(as_text=True)
    [use_select] = re.findall(r'id="(reagentfix\d+-reagent_lot_id)"', page)
    fix = _options(page, use_select)
    assert any("FBS-0099" in label and f"(EXPIRED {expired_on})" in label for label in fix)
    assert not any("TRX-1" in label for label in fix) and not any("disabled" in tag for tag in fix.values())
    assert good in [int(v) for v in re.findall(r'value="(\d+)"', " ".join(fix.values()))]


def test_a_correction_offers_a_recalled_lot_of_its_type_marked_and_selectable(app, users, db_session,  # noqa: F811
                                                                               client_as):
    lot_id = _lot_with_p0(db_session)
    p0 = db_session.scalar(select(ProcessStep.id).where(ProcessStep.lot_id == lot_id, ProcessStep.passage_number == 0))
    first = _reagent(db_session, "TRX-0", TODAY + timedelta(days=300), "trypsin", "TrypLE")
    recalled = _reagent(db_session, "TRX-1", TODAY + timedelta(days=300), "trypsin", "TrypLE")
    reagents.link_reagent(db_session, user(db_session, "technician"), lot_id, first,
                          used_on=TODAY - timedelta(days=16), step_id=p0)
    db_session.commit()
    recall = recalls.start_recall(db_session, user(db_session, "qa"), scope="reagent_lot", target_id=recalled,
                                  reason="Supplier notice: endotoxin", password=PASSWORD)
    db_session.commit()
    page = client_as("technician").get(f"/lots/{lot_id}").get_data(as_text=True)
    [use_select] = re.findall(r'id="(reagentfix\d+-reagent_lot_id)"', page)
    fix = _options(page, use_select)
    [label] = [label for label in fix if "TRX-1" in label]
    assert label.endswith(f"UNDER RECALL R-{recall.recall_id}") and "disabled" not in fix[label]


# ---- 3. the Store form and boxes too warm ------------------------------------------------------------------------

def test_the_store_form_marks_and_disables_the_boxes_too_warm_for_the_product(app, users, db_session,  # noqa: F811
                                                                              client_as):
    lot_id, _bags = cryopreserved_lot(db_session, approved_adipose_donor(db_session), count=1)
    warm, cold = box(db_session, temperature=-80), box(db_session, temperature=-150)
    db_session.commit()
    page = client_as("technician").get(f"/lots/{lot_id}").get_data(as_text=True)
    options = _options(page, "store-box_id")
    tags = list(options.values())
    assert f'value="{cold}"' in tags[0] and "disabled" not in tags[0]
    [warm_label] = [label for label, tag in options.items() if f'value="{warm}"' in tag]
    assert "disabled" in options[warm_label]
    assert re.search(r": at -80\.0 °C, too warm for Adipose tissue MSC \(needs <= -1[35]\d(\.\d)? °C\)$", warm_label), warm_label


# ---- 4. an autumn time that comes twice --------------------------------------------------------------------------

def _autumn_change() -> date:
    """The latest last Sunday of October (Paris: 02:00-03:00 happens twice) before TODAY."""
    for year in (TODAY.year, TODAY.year - 1):
        day = date(year, 10, 31)
        day -= timedelta(days=(day.weekday() + 1) % 7)
        if day < TODAY - timedelta(days=1):
            return day
    raise AssertionError("unreachable")


def _new_lot(client: Any, donor_id: int, collection_at: str) -> Any:
    return client.post("/lots/new", data={"donor_id": donor_id, "product_id": "AT-MSC", "collection_at": collection_at,
                                          "collection_site": "Theatre 3", "tissue_amount": "50", "tissue_unit": "g",
                                          "same_collection_as_existing": "y"})


def test_a_collection_time_that_happens_twice_is_refused_naming_both_readings(app, users, db_session,  # noqa: F811
                                                                              client_as):
    day = _autumn_change()
    donor_id = screened_donor(db_session, "adipose_at_don", planned_collection_date=day,
                              sample=day + timedelta(days=1), consent_date=day - timedelta(days=10))
    decisions.decide(db_session, user(db_session, "qa"), donor_id, APPROVED, PASSWORD)
    db_session.commit()
    tech = client_as("technician")
    refused = _new_lot(tech, donor_id, f"{day}T02:30")  # Paris: 02:30 CEST, then an hour later 02:30 CET
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422
    [said] = _error(text, "collection_at")
    assert said == (f"Collection time: 02:30 happens twice on {day} in Europe/Paris (the clocks went back): type "
                    f"02:30 CEST for the first, before the change (00:30 UTC), or 02:30 CET for the second, an hour "
                    f"later (01:30 UTC), with the zone after the time, as in {day}T02:30 CET."), said
    # shown again as text, so that the zone can be typed after the time
    assert re.search(r'<input[^>]*id="collection_at"[^>]*type="text"|<input[^>]*type="text"[^>]*id="collection_at"',
                     text)
    assert db_session.scalar(select(Lot.id).where(Lot.donor_id == donor_id)) is None
    db_session.rollback()
    for typed, utc in ((f"{day}T02:30 CET", datetime(day.year, day.month, day.day, 1, 30)),
                       (f"{day}T02:30 cest", datetime(day.year, day.month, day.day, 0, 30))):
        answer = _new_lot(tech, donor_id, typed)
        assert answer.status_code == 302, _error(answer.get_data(as_text=True), "collection_at")
        lot = db_session.scalars(select(Lot).where(Lot.donor_id == donor_id).order_by(Lot.id.desc())).first()
        assert lot.collection_at.astimezone(UTC).replace(tzinfo=None) == utc, typed
        db_session.rollback()
    # a zone the site does not use then, or a time the spring skipped, is still refused
    for typed in (f"{day}T02:30 UTC", "2026-03-29T02:30 CET", "2026-03-29T02:30 CEST", "2025-07-01T10:00 CET"):
        answer = _new_lot(tech, donor_id, typed)
        assert answer.status_code == 422, typed
        [said] = _error(answer.get_data(as_text=True), "collection_at")
        assert "is not a time of the site's zone" in said, said


def test_the_harvest_and_freezing_times_refuse_the_hour_that_happens_twice(app, users, db_session,  # noqa: F811
                                                                           client_as):
    lot_id = harvested_lot(db_session, approved_adipose_donor(db_session))
    db_session.commit()
    tech = client_as("technician")
    frozen = tech.post(f"/lots/{lot_id}/cryopreservation", data={
        "cryo-frozen_at": "2025-10-26T02:10", "cryo-bag_count": "2", "cryo-volume_ml": "20", "cryo-cells_per_ml": "1",
        "cryo-dmso_percent": "10"})
    assert frozen.status_code == 422
    [said] = _error(frozen.get_data(as_text=True), "cryo-frozen_at")
    assert "Freezing time: 02:10 happens twice on 2025-10-26" in said and "02:10 CEST" in said and "02:10 CET" in said
    fixed = tech.post(f"/lots/{lot_id}/harvest/correction", data={
        "harvestfix-harvested_at": "2025-10-26T02:45", "harvestfix-total_cells": "100",
        "harvestfix-viability_percent": "90", "harvestfix-reason": "time typed wrong"})
    assert fixed.status_code == 422
    assert any("happens twice" in said for said in _error(fixed.get_data(as_text=True), "harvestfix-harvested_at"))


# ---- 5. a number of bags that is not a whole number --------------------------------------------------------------

def test_a_number_of_bags_not_a_whole_number_says_the_rule(app, users, db_session, client_as):  # noqa: F811
    lot_id = harvested_lot(db_session, approved_adipose_donor(db_session))
    db_session.commit()
    tech = client_as("technician")
    for typed in ("2.5", "four", "27", "0"):
        refused = tech.post(f"/lots/{lot_id}/cryopreservation", data={
            "cryo-frozen_at": f"{TODAY}T09:00", "cryo-bag_count": typed, "cryo-volume_ml": "20",
            "cryo-cells_per_ml": "1", "cryo-dmso_percent": "10"})
        text = refused.get_data(as_text=True)
        assert refused.status_code == 422, typed
        assert _error(text, "cryo-bag_count") == ["Number of bags: a whole number from 1 to 26."], typed
        assert "Not a valid integer value" not in text
