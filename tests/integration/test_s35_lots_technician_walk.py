"""Session 35, the technician's walk through the demo (lots, storage, donors):

1. a collection dated before the donor's consent (or birth) is a date typed wrong: refused on the collection date,
   naming the rule, not as "Donor ... is ineligible on its screening";
2. the lot form's donor select says why a donor is pending review (reopened by a late positive result), and leaves
   out a donor under recall (no lot can be made from it);
3. a reagent recorded "at harvest and cryopreservation" before the harvest is refused on "Used at", and "Used at"
   starts at the lot's latest step until the lot is harvested;
4. a box named "Box 1" is "Box 1", never "Box Box 1" or "box Box 1";
5. a bag of a lot in process shows the badge "lot in process" (its stored status unchanged);
6. a date of birth over 120 years ago and a planned collection more than a year ahead are refused, saying the rule.
"""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.donors import services as donor_services
from mscbatch.donors.models import Donor
from mscbatch.donors.validation import details_problems
from mscbatch.errors import Conflict
from mscbatch.lots import storage
from mscbatch.lots.models import Bag, Lot, ProcessStep
from mscbatch.recall import services as recalls
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.lot_factories import (
    TODAY,
    M,
    approved_adipose_donor,
    box,
    cryopreserved_lot,
    passages,
    start_lot,
)
from tests.integration.test_donors import db_session, details, user  # noqa: F401 (fixture)


def _new_lot(client: Any, donor_id: int, collected: str) -> Any:
    return client.post("/lots/new", data={"donor_id": donor_id, "product_id": "AT-MSC", "collection_at": collected,
                                          "collection_site": "Theatre 3", "tissue_amount": "50",
                                          "tissue_unit": "g"})


def _error(text: str, field_id: str) -> str:
    found = re.search(rf'id="{re.escape(field_id)}-error">([^<]*)<', text)
    return found.group(1) if found else ""


def _lots(session: Any) -> int:
    count = session.scalar(select(func.count()).select_from(Lot))
    session.rollback()
    return int(count or 0)


# ---- 1. a collection before the donor's consent or birth --------------------------------------------------------

def test_a_collection_before_the_consent_is_refused_on_the_collection_date(
        app, users, db_session, client_as):  # noqa: F811
    donor_id = approved_adipose_donor(db_session)
    donor = db_session.get(Donor, donor_id)
    consent, born = donor.consent_date, donor.date_of_birth
    db_session.rollback()
    tech = client_as("technician")
    before = consent - timedelta(days=5)
    refused = _new_lot(tech, donor_id, f"{before}T09:00")
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert _error(text, "collection_at").startswith(
        f"Collection date: {before} is before the donor&#39;s signed consent ({consent})"), text
    assert "is ineligible on its screening" not in text and "No lot can be made" not in text
    # the reviewer's 1901-01-01: before the donor was born, said so
    refused = _new_lot(tech, donor_id, "1901-01-01T09:00")
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert _error(text, "collection_at").startswith(
        f"Collection date: 1901-01-01 is before the donor&#39;s date of birth ({born})"), text
    assert "is ineligible on its screening" not in text
    assert _lots(db_session) == 0
    # a day after the consent still starts the lot
    assert _new_lot(tech, donor_id, f"{TODAY - timedelta(days=20)}T09:00").status_code == 302
    assert _lots(db_session) == 1


# ---- 2. the donor select -----------------------------------------------------------------------------------------

def _donor_option(text: str, donor_id: int) -> str:
    found = re.search(rf'<option value="{donor_id}"[^>]*>([^<]*)</option>', text)
    return found.group(1) if found else ""


def test_the_donor_select_says_reopened_by_a_late_positive_and_leaves_out_a_recalled_donor(
        app, users, db_session, client_as):  # noqa: F811
    donor_id = approved_adipose_donor(db_session)
    code = db_session.get(Donor, donor_id).code
    donor_services.record_result(db_session, user(db_session, "technician"), donor_id, marker="anti_hcv",
                                 result="positive", sample_date=site_today(), lab_reference="LATE-1")
    db_session.commit()
    assert db_session.get(Donor, donor_id).status == "pending_review"
    db_session.rollback()
    tech = client_as("technician")
    # its screening now says ineligible (s40): a lot may not be started from it, so it is not offered
    text = tech.get("/lots/new").get_data(as_text=True)
    assert _donor_option(text, donor_id) == "" and code not in text
    recalls.start_recall(db_session, user(db_session, "qa"), scope="donor", target_id=donor_id,
                         reason="Late positive anti-HCV", password=PASSWORD)
    db_session.commit()
    text = tech.get("/lots/new").get_data(as_text=True)
    assert _donor_option(text, donor_id) == "" and code not in text


# ---- 3. reagent use before the harvest ---------------------------------------------------------------------------

def test_a_reagent_at_harvest_before_the_harvest_is_refused_on_used_at(
        app, users, db_session, client_as):  # noqa: F811
    from tests.integration.lot_factories import factory_reagent

    lot_id = start_lot(db_session, approved_adipose_donor(db_session))
    passages(db_session, lot_id, [(2 * M, 16 * M)])
    p0 = db_session.scalar(select(ProcessStep.id).where(ProcessStep.lot_id == lot_id, ProcessStep.kind == "passage"))
    medium = factory_reagent(db_session, "medium")
    db_session.commit()
    tech = client_as("technician")
    page = tech.get(f"/lots/{lot_id}").get_data(as_text=True)
    assert re.search(rf'<option selected value="{p0}">P0</option>|<option value="{p0}" selected>', page), \
        re.search(r'<select[^>]*reagent-step_id.*?</select>', page, re.S).group(0)
    refused = tech.post(f"/lots/{lot_id}/reagents", data={"reagent-reagent_lot_id": medium, "reagent-step_id": 0,
                                                          "reagent-used_on": site_today().isoformat()})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert _error(text, "reagent-step_id").startswith("Used at: lot "), text
    assert "is not harvested yet" in _error(text, "reagent-step_id")
    assert _error(text, "reagent-used_on") == ""


# ---- 4. "Box Box" ------------------------------------------------------------------------------------------------

def test_a_box_named_box_is_not_called_box_box(app, users, db_session, client_as):  # noqa: F811
    lot_id, made = cryopreserved_lot(db_session, approved_adipose_donor(db_session), count=2)
    first, second = made[0].id, made[1].id  # read now: an expired object read later locks SQLite
    box_id = box(db_session)
    tech_user = user(db_session, "technician")
    storage.store_bag(db_session, tech_user, first, box_id, 1)
    db_session.commit()
    with pytest.raises(Conflict) as taken:
        storage.store_bag(db_session, tech_user, second, box_id, 1)
    db_session.rollback()
    assert str(taken.value).startswith("Position A1 of Box 1 is occupied"), taken.value
    with pytest.raises(Conflict) as again:
        storage.store_bag(db_session, tech_user, first, box_id, 1, reason="check")
    db_session.rollback()
    assert "is already in Box 1, position A1" in str(again.value), again.value
    tech = client_as("technician")
    page = tech.get(f"/storage/{box_id}").get_data(as_text=True)
    assert "<title>Box 1" in page and "Box Box" not in page
    tree = tech.get("/storage").get_data(as_text=True)
    assert '<span class="kind">Box</span>' not in tree and ">Box 1</a>" in tree
    refused = tech.post(f"/lots/{lot_id}/store", data={"store-bag_id": second, "store-box_id": box_id,
                                                       "store-position": "Z9"})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "is not a position of Box 1 (rows A-" in text
    assert "box Box" not in text and "Box Box" not in text
    refused = tech.post(f"/lots/{lot_id}/store", data={"store-bag_id": second, "store-box_id": box_id,
                                                       "store-position": "A1"})
    text = refused.get_data(as_text=True)
    assert "Position A1 of Box 1 is occupied" in text and "box Box" not in text


# ---- 5. the badge of a bag of a lot in process --------------------------------------------------------------------

def test_a_bag_of_a_lot_in_process_reads_lot_in_process(app, users, db_session, client_as):  # noqa: F811
    lot_id, made = cryopreserved_lot(db_session, approved_adipose_donor(db_session), count=1)
    bag_id = made[0].id
    db_session.commit()
    page = client_as("technician").get(f"/lots/{lot_id}").get_data(as_text=True)
    cell = re.search(r'<tr data-bag="1">.*?</tr>', page, re.S).group(0)
    assert '<span class="status status-in_process">lot in process</span>' in cell, cell
    assert ">quarantine<" not in cell
    assert db_session.get(Bag, bag_id).status == "stored"  # the stored status is unchanged
    db_session.rollback()


# ---- 6. the donor's dates ----------------------------------------------------------------------------------------

def test_a_date_of_birth_over_120_years_ago_says_the_rule(app):
    problems = details_problems(details("adipose_at_don", date_of_birth=site_today().replace(year=1800, day=1)))
    message = " ".join(problems["date_of_birth"])
    assert "would make the donor over 120 years old" in message and "real date in the past" not in message
    cord = details_problems(details("cord_eu", date_of_birth=site_today().replace(year=1800, day=1)))
    assert "would make the mother over 120 years old" in " ".join(cord["date_of_birth"])
    future = details_problems(details("adipose_at_don", date_of_birth=site_today() + timedelta(days=1)))
    assert "is in the future" in " ".join(future["date_of_birth"])
    assert "date_of_birth" not in details_problems(details("adipose_at_don"))


def test_a_planned_collection_more_than_a_year_ahead_is_refused(app):
    far = details_problems(details("adipose_at_don", planned_collection_date=site_today().replace(year=2099)))
    message = " ".join(far["planned_collection_date"])
    assert message.startswith("Planned collection date: 2099-") and "more than a year ahead" in message
    within = details("adipose_at_don", planned_collection_date=site_today() + timedelta(days=300))
    assert "planned_collection_date" not in details_problems(within)


def test_the_donor_page_shows_the_120_years_rule(app, users, client_as):
    page = client_as("technician").post("/donors/new", data={
        "rule_set_id": "adipose_at_don", "donor_type": "unrelated", "date_of_birth": "1800-01-01",
        "planned_collection_date": "2099-01-01"}).get_data(as_text=True)
    assert "over 120 years old" in page and "more than a year ahead" in page
