"""Lots through the services and the pages (issue 4; DOMAIN.md sections 4 and 7), on SQLite and PostgreSQL.

Each test is named after the rule it shows; factories in lot_factories.py build donors and lots through the
same services the pages use."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from mscbatch.audit.context import use_case
from mscbatch.core.identifiers import parse_din
from mscbatch.errors import Conflict, PermissionDenied
from mscbatch.lots import reagents, services, steps
from mscbatch.lots.models import Bag, Lot, ProcessStep, ReagentUse
from tests.integration.lot_factories import (
    TODAY,
    M,
    approved_adipose_donor,
    at,
    cryopreserved_lot,
    harvested_lot,
    ineligible_adipose_donor,
    passages,
    pending_cord_donor,
    start_lot,
)
from tests.integration.test_donors import db_session, user  # noqa: F401 (fixture)


def count(session, model) -> int:  # type: ignore[no-untyped-def]
    value = session.scalar(select(func.count()).select_from(model))
    session.rollback()
    return int(value or 0)


def test_an_approved_donor_gives_a_lot_whose_page_shows_the_record(app, users, db_session, client_as):  # noqa: F811
    donor_id = approved_adipose_donor(db_session)
    lot_id, bags = cryopreserved_lot(db_session, donor_id)
    lot = db_session.get(Lot, lot_id)
    assert lot.lot_number == f"MSC-{lot.collection_at.astimezone(at(TODAY).tzinfo).year}-0001"
    assert lot.donor_gate == "approved" and lot.status == "in_process"
    assert lot.harvest_viable_cells == 90 * M and sum(b.total_cells for b in bags) == 80 * M
    db_session.rollback()
    page = client_as("nurse").get(f"/lots/{lot_id}").get_data(as_text=True)
    assert lot.lot_number in page and "bag 2 of 4" in page and 'class="k-box"' in page
    assert "Donor eligibility pending" not in page and "<svg" in page and "Plot data" in page


def test_allocated_dins_carry_the_site_fin_and_a_valid_check_character(app, users, db_session):  # noqa: F811
    lot_id, bags = cryopreserved_lot(db_session, approved_adipose_donor(db_session))
    sequences = [b.din_sequence for b in bags]
    assert sequences == list(range(sequences[0], sequences[0] + 4))
    for bag in bags:
        din = parse_din(bag.din + bag.check_character)  # the core recomputes K (ISO 7064 MOD 37-2)
        assert din.fin == "X9999" and din.year == TODAY.year % 100
        assert bag.product_code == f"SX003V{bag.division}"
    assert [b.division for b in bags] == ["A0", "B0", "C0", "D0"]


@pytest.mark.parametrize(("din", "k"), [("G123417654321", "A"), ("G123498654321", "H"), ("A999921123456", "3"),
                                        ("A999818123456", "N"), ("A999820123456", "E"), ("W000009123456", "G")])
def test_the_parse_page_accepts_the_six_published_din_vectors(client_as, din, k):
    response = client_as("nurse").get("/identifiers", query_string={"text": din + k})
    assert response.status_code == 200
    assert "A valid DIN; its check character K matches." in response.get_data(as_text=True)


def test_a_one_character_typo_in_a_typed_din_is_caught_with_the_reason(app, client_as):
    client = client_as("technician")
    response = client.get("/identifiers", query_string={"text": "G123417654331A"})  # 2 -> 3 in the sequence
    assert response.status_code == 422
    said = response.get_data(as_text=True)
    assert "the check character A does not match DIN G123417654331" in said
    # the right K for the mistyped DIN (6) is never told: typed in, it would name another bag
    from mscbatch.core.identifiers import parse_din
    assert parse_din("G123417654331").check_character == "6"
    assert "expected" not in said and "should be" not in said and "6." not in said and "6)" not in said
    response = client.get("/identifiers", query_string={"text": "G12341765432lA"})  # letter l for digit 1
    assert "character 13" in response.get_data(as_text=True) and "must be a digit" in response.get_data(as_text=True)


def test_a_lot_cannot_be_created_from_an_ineligible_donor(app, users, db_session, client_as):  # noqa: F811
    donor_id = ineligible_adipose_donor(db_session)
    db_session.rollback()
    response = client_as("technician").post("/lots/new", data={
        "donor_id": donor_id, "product_id": "AT-MSC", "collection_at": (TODAY - timedelta(days=3)).isoformat() + "T09:00",
        "collection_site": "Theatre 3", "tissue_amount": "40", "tissue_unit": "g"})
    assert response.status_code == 409
    assert "is ineligible on its screening" in response.get_data(as_text=True)
    assert count(db_session, Lot) == 0


def test_a_pending_donor_gives_a_flagged_lot_that_cannot_be_released(app, users, db_session, client_as):  # noqa: F811
    donor_id = pending_cord_donor(db_session)
    db_session.rollback()
    response = client_as("technician").post("/lots/new", data={
        "donor_id": donor_id, "product_id": "UC-MSC", "collection_at": (TODAY - timedelta(days=1)).isoformat() + "T09:00",
        "collection_site": "Maternity", "tissue_amount": "15", "tissue_unit": "g"})
    assert response.status_code == 302
    lot = db_session.scalar(select(Lot))
    assert lot.donor_gate == "pending" and lot.eligibility_pending
    lot_id = lot.id
    db_session.rollback()  # SQLite: never keep a transaction open while the test client writes
    page = client_as("qa").get(f"/lots/{lot_id}").get_data(as_text=True)
    assert "Donor eligibility pending: release impossible until approved." in page
    qa = user(db_session, "qa")
    with pytest.raises(Conflict, match="release impossible until QA approves"), use_case(db_session, qa, "release"):
        lot = db_session.get(Lot, lot_id)
        lot.status = "quarantine"  # as if cryopreserved: the release check itself is what is shown here
        services.apply_lot_transition(db_session, qa, lot, "released")  # as the release signing (issue 5) will
    assert db_session.get(Lot, lot_id).status == "in_process"
    db_session.rollback()


def test_population_doublings_match_hand_computed_values(app, users, db_session):  # noqa: F811
    lot_id = start_lot(db_session, approved_adipose_donor(db_session))
    passages(db_session, lot_id, [(1 * M, 8 * M), (2 * M, 10 * M), (3 * M, 4_500_000)])
    rows = db_session.scalars(select(ProcessStep).where(ProcessStep.kind == "passage")
                              .order_by(ProcessStep.passage_number)).all()
    # log2(8) = 3; log2(5) = 2.321928...; log2(1.5) = 0.584963...
    assert [r.population_doublings for r in rows] == [Decimal("3.00"), Decimal("2.32"), Decimal("0.58")]
    # cumulative sums the unrounded values: 3 + 2.321928 = 5.32; + 0.584963 = 5.906891 -> 5.91
    assert [r.cumulative_pd for r in rows] == [Decimal("3.00"), Decimal("5.32"), Decimal("5.91")]


def test_a_passage_beyond_the_pd_limit_is_refused_and_near_it_warns(app, users, db_session, client_as):  # noqa: F811
    lot_id = start_lot(db_session, approved_adipose_donor(db_session))
    # 26 doublings take 16 days at the fastest (15 h each, config/products.toml culture.min_doubling_time)
    steps.record_isolation(db_session, user(db_session, "technician"), lot_id, performed_on=TODAY - timedelta(days=17))
    db_session.rollback()
    client = client_as("technician")
    form = {"passage-passage_number": "0", "passage-performed_on": TODAY.isoformat(), "passage-seeded_cells": "0.001",
            "passage-harvested_cells": str(round(2**26 / 1000, 2)), "passage-viability_percent": "95"}
    response = client.post(f"/lots/{lot_id}/passages", data=form)  # PD 26 > AT-MSC limit 25
    assert response.status_code == 409
    assert "cumulative population doublings 26.00 exceed the product limit 25.0" in response.get_data(as_text=True)
    form["passage-harvested_cells"] = str(round(2**21 / 1000, 2))  # PD 21: at or past the warning level 20
    response = client.post(f"/lots/{lot_id}/passages", data=form, follow_redirects=True)
    assert "Warning: cumulative population doublings 21.00 are at or past the warning level" in response.get_data(as_text=True)


def test_bags_cannot_hold_more_cells_than_the_harvest(app, users, db_session, client_as):  # noqa: F811
    lot_id = harvested_lot(db_session, approved_adipose_donor(db_session), total=100 * M, viability="90")
    db_session.rollback()
    form = {"cryo-frozen_at": TODAY.isoformat() + "T10:00", "cryo-bag_count": "4", "cryo-volume_ml": "25",
            "cryo-cells_per_ml": "1", "cryo-dmso_percent": "10"}  # 4 x 25 mL x 1e6 = 100e6 > 90e6 viable
    response = client_as("technician").post(f"/lots/{lot_id}/cryopreservation", data=form)
    assert response.status_code == 422
    assert "would hold 100 x10^6 viable cells but the harvest has only 90 x10^6" in response.get_data(as_text=True)
    assert count(db_session, Bag) == 0
    form["cryo-cells_per_ml"] = "0.9"
    assert client_as("technician").post(f"/lots/{lot_id}/cryopreservation", data=form).status_code == 302
    assert count(db_session, Bag) == 4


def test_an_expired_reagent_is_refused_and_a_reagent_lot_lists_the_lots_that_used_it(app, users, db_session,  # noqa: F811
                                                                                     client_as):
    lot_id = harvested_lot(db_session, approved_adipose_donor(db_session))  # a harvest-stage use: from its day
    tech = user(db_session, "technician")
    expired = reagents.register_reagent_lot(db_session, tech, reagent_type="fbs", name="FBS", supplier="Acme",
                                            lot_number="F-1", expiry_date=TODAY - timedelta(days=2)).id
    good = reagents.register_reagent_lot(db_session, tech, reagent_type="medium", name="alpha-MEM", supplier="Acme",
                                         lot_number="M-1", expiry_date=TODAY + timedelta(days=30)).id
    db_session.rollback()
    client = client_as("technician")
    response = client.post(f"/lots/{lot_id}/reagents", data={"reagent-reagent_lot_id": expired, "reagent-step_id": 0,
                                                             "reagent-used_on": TODAY.isoformat()})
    assert response.status_code == 409
    assert f"expired on {TODAY - timedelta(days=2)}, before its use on {TODAY}" in response.get_data(as_text=True)
    response = client.post(f"/lots/{lot_id}/reagents", data={"reagent-reagent_lot_id": good, "reagent-step_id": 0,
                                                             "reagent-used_on": TODAY.isoformat()})
    assert response.status_code == 302
    lot_number = db_session.get(Lot, lot_id).lot_number
    db_session.rollback()
    assert lot_number in client_as("nurse").get(f"/reagents/{good}").get_data(as_text=True)
    assert lot_number not in client_as("nurse").get(f"/reagents/{expired}").get_data(as_text=True)


def test_the_state_machine_refuses_out_of_order_and_unsigned_moves(app, users, db_session):  # noqa: F811
    tech, qa = user(db_session, "technician"), user(db_session, "qa")
    lot_id = start_lot(db_session, approved_adipose_donor(db_session))
    with pytest.raises(Conflict, match="is not cryopreserved yet"):
        services.transition_lot(db_session, tech, lot_id, "quarantine", "done")
    with pytest.raises(Conflict, match="needs QA's electronic signature"):
        services.transition_lot(db_session, qa, lot_id, "released", "release")
    lot = db_session.get(Lot, lot_id)
    with pytest.raises(Conflict, match="is in process; it cannot go to released"):
        services.apply_lot_transition(db_session, qa, lot, "released")
    with pytest.raises(PermissionDenied, match="Only technician may send to quarantine"):
        services.apply_lot_transition(db_session, qa, lot, "quarantine")
    db_session.rollback()
    with pytest.raises(Conflict, match="is in process: a passage can no longer|can no longer be recorded"):
        lot_id2, _bags = cryopreserved_lot(db_session, approved_adipose_donor(db_session), with_reagents=True,
                                           placed=True)
        services.transition_lot(db_session, tech, lot_id2, "quarantine", "cryopreserved")
        steps.record_passage(db_session, tech, lot_id2, steps.PassageDetails(2, TODAY, M, 2 * M, "90"))
    assert db_session.get(Lot, lot_id2).status == "quarantine"
    db_session.rollback()


def test_the_reagent_use_form_starts_with_no_reagent_lot_chosen(app, users, db_session, client_as):  # noqa: F811
    """Session 44 review: the form's first registered reagent lot (a DMSO lot) was pre-selected, so a technician who
    did not look recorded it. Nothing is chosen until the technician chooses; sent so, it is refused naming it."""
    lot_id = harvested_lot(db_session, approved_adipose_donor(db_session))
    reagents.register_reagent_lot(db_session, user(db_session, "technician"), reagent_type="dmso", name="DMSO",
                                  supplier="Acme", lot_number="D-1", expiry_date=TODAY + timedelta(days=30))
    db_session.commit()
    client = client_as("technician")
    page = client.get(f"/lots/{lot_id}").get_data(as_text=True)
    select = page.split('name="reagent-reagent_lot_id"')[1].split("</select>")[0]
    first = select.split("<option")[1]
    assert 'value="0"' in first and "Choose the reagent lot" in first and "selected" not in select, select[:500]
    refused = client.post(f"/lots/{lot_id}/reagents", data={"reagent-reagent_lot_id": "0", "reagent-step_id": 0,
                                                            "reagent-used_on": TODAY.isoformat()})
    assert refused.status_code == 422 and "Choose the reagent lot." in refused.get_data(as_text=True)
    assert count(db_session, ReagentUse) == 0
