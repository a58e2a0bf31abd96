"""Factories for lot tests: donors (approved / pending / ineligible) through the donor services, storage, and
lots carried through the manufacturing record by the lot services. Dates are relative to today."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from mscbatch.core.culture import BagPlan
from mscbatch.donors import decisions
from mscbatch.donors.models import APPROVED
from mscbatch.lots import bags, reagents, services, steps, storage
from mscbatch.lots.models import ProcessStep, ReagentLot
from mscbatch.site import site_config, site_today
from tests.conftest import PASSWORD
from tests.integration.test_donors import screened_donor, user

M = 10**6
# Yesterday, not today: the factories stamp fixed hours (harvest 08:00, freezing 09:00), which would lie in
# the future for a run before 09:00 site time (and the site's date can be a day ahead of the machine's).
TODAY = site_today() - timedelta(days=1)


def at(day: date, hour: int = 9) -> datetime:
    return datetime.combine(day, time(hour), site_config().tz)


#: the day start_lot collects by default; the factories' donors are screened for that donation (a sample counts
#: only within its window of the day the tissue is really collected)
COLLECTION_DAYS_AGO = 20


def approved_adipose_donor(session: Any, days_ago: int = COLLECTION_DAYS_AGO) -> int:
    collected = TODAY - timedelta(days=days_ago)
    donor_id = screened_donor(session, "adipose_at_don", planned_collection_date=collected,
                              sample=collected + timedelta(days=1))
    decisions.decide(session, user(session, "qa"), donor_id, APPROVED, PASSWORD)
    return donor_id


def pending_cord_donor(session: Any) -> int:
    return screened_donor(session, "cord_eu", skip=("anti_hiv_1_2",))


def ineligible_adipose_donor(session: Any) -> int:
    return screened_donor(session, "adipose_at_don", results={"anti_hiv_1_2": "positive"})


def start_lot(session: Any, donor_id: int, product_id: str = "AT-MSC", days_ago: int = COLLECTION_DAYS_AGO) -> int:
    return services.create_lot(session, user(session, "technician"), services.LotDetails(
        donor_id=donor_id, product_id=product_id, collection_at=at(TODAY - timedelta(days=days_ago)),
        collection_site="Theatre 3", tissue_amount="50", tissue_unit="g",
        # tests start several lots from one donor's collection: deliberately, as lots.services now asks to be told
        same_collection_as_existing=True)).id


def passages(session: Any, lot_id: int, counts: list[tuple[int, int]], start_days_ago: int = 20) -> None:
    tech = user(session, "technician")
    day = TODAY - timedelta(days=start_days_ago)
    steps.record_isolation(session, tech, lot_id, performed_on=day)
    for number, (seeded, harvested) in enumerate(counts):
        day = min(TODAY, day + timedelta(days=4))
        steps.record_passage(session, tech, lot_id, steps.PassageDetails(
            passage_number=number, performed_on=day, seeded_cells=seeded, harvested_cells=harvested,
            viability_percent="95", days_in_culture="4"))


def harvested_lot(session: Any, donor_id: int, total: int = 100 * M, viability: str = "90") -> int:
    lot_id = start_lot(session, donor_id)
    passages(session, lot_id, [(2 * M, 16 * M), (14 * M, 110 * M)])  # harvest 100 x10^6 of the 110 counted
    steps.record_harvest(session, user(session, "technician"), lot_id, harvested_at=at(TODAY, 8),
                         total_cells=total, viability_percent=viability)
    return lot_id


#: the factories' reagent lots (type, name, supplier, supplier's lot number), registered once per database
FACTORY_REAGENTS = (("medium", "alpha-MEM", "FactoryBio", "F-MED-1"),
                    ("platelet_lysate", "Human platelet lysate", "FactoryHeme", "F-HPL-1"),
                    ("trypsin", "TrypLE Select", "FactoryBio", "F-TRY-1"),
                    ("dmso", "DMSO Cryo grade", "FactoryChem", "F-DMSO-1"))


def factory_reagent(session: Any, reagent_type: str) -> int:
    """The factories' reagent lot of a type (registered through the service on first use)."""
    _kind, name, supplier, number = next(r for r in FACTORY_REAGENTS if r[0] == reagent_type)
    found = session.scalar(select(ReagentLot.id).where(ReagentLot.supplier == supplier,
                                                       ReagentLot.lot_number == number))
    if found is not None:
        return int(found)
    return reagents.register_reagent_lot(session, user(session, "technician"), reagent_type=reagent_type, name=name,
                                         supplier=supplier, lot_number=number,
                                         expiry_date=TODAY + timedelta(days=365)).id


def record_required_reagents(session: Any, lot_id: int) -> None:
    """Link the reagent lots every product requires before quarantine (config/products.toml
    `required_reagent_types`): medium and platelet lysate at the isolation, trypsin at P0, DMSO at the harvest and
    cryopreservation stage (the lot must be harvested)."""
    tech = user(session, "technician")
    isolation = session.scalar(select(ProcessStep).where(ProcessStep.lot_id == lot_id, ProcessStep.kind == "isolation"))
    p0 = session.scalar(select(ProcessStep).where(ProcessStep.lot_id == lot_id, ProcessStep.passage_number == 0))
    for kind in ("medium", "platelet_lysate"):
        reagents.link_reagent(session, tech, lot_id, factory_reagent(session, kind), used_on=isolation.performed_on,
                              step_id=isolation.id)
    reagents.link_reagent(session, tech, lot_id, factory_reagent(session, "trypsin"), used_on=p0.performed_on,
                          step_id=p0.id)
    reagents.link_reagent(session, tech, lot_id, factory_reagent(session, "dmso"), used_on=TODAY)


def cryopreserved_lot(session: Any, donor_id: int, count: int = 4, *,
                      with_reagents: bool = False, placed: bool = False) -> tuple[int, list[Any]]:
    """A harvested lot frozen into `count` bags; with with_reagents=True its record also names the reagent lots the
    product requires, and with placed=True its bags are placed in a box of their own (place_bags), so it can go to
    quarantine (lots.reagent_rules, lots.services.unplaced_bags_words)."""
    lot_id = harvested_lot(session, donor_id)
    if with_reagents:
        record_required_reagents(session, lot_id)
    plan = BagPlan(volume_ml=Decimal(20), cells_per_ml=M, dmso_percent=Decimal(10))
    made = bags.cryopreserve(session, user(session, "technician"), lot_id, frozen_at=at(TODAY, 9), bags=[plan] * count)
    if placed:
        place_bags(session, [bag.id for bag in made])
    return lot_id, made


def place_bags(session: Any, bag_ids: list[int]) -> int:
    """Place the bags in the positions 1, 2 ... of a box of their own (a lot goes to quarantine only once every bag
    has a storage position: lots.services.apply_lot_transition); returns the box's id."""
    tech = user(session, "technician")
    name = f"Placement {len(bag_ids)} {bag_ids[0]}"
    site = storage.create_location(session, tech, kind="site", name=name)
    tank = storage.create_location(session, tech, kind="tank", name=f"Tank {name}", parent_id=site.id,
                                   temperature_max_c=Decimal(-150))
    rack = storage.create_location(session, tech, kind="rack", name=f"Rack {name}", parent_id=tank.id)
    size = max(2, int(len(bag_ids) ** 0.5) + 1)
    box_id = storage.create_location(session, tech, kind="box", name=f"Box {name}", parent_id=rack.id, rows=size,
                                     columns=size).id
    for position, bag_id in enumerate(bag_ids, start=1):
        storage.store_bag(session, tech, bag_id, box_id, position)
    return int(box_id)


def box(session: Any, temperature: int = -150, rows: int = 3, columns: int = 3) -> int:
    tech = user(session, "technician")
    site = storage.create_location(session, tech, kind="site", name=f"Unit {temperature}")
    tank = storage.create_location(session, tech, kind="tank", name="Tank", parent_id=site.id,
                                   temperature_max_c=Decimal(temperature))
    rack = storage.create_location(session, tech, kind="rack", name="Rack", parent_id=tank.id)
    return storage.create_location(session, tech, kind="box", name="Box 1", parent_id=rack.id, rows=rows,
                                   columns=columns).id
