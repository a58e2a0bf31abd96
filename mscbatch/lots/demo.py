"""Demo manufacturing for `make run`, entered through the services by the demo technician: a storage tree
(a nitrogen tank with racks and boxes), reagent lots (one expired), one adipose lot from the approved demo
donor carried through P0-P3, harvest and 4 bags stored in a box and sent to quarantine (ready for QA release,
issue 5), one umbilical cord lot still in process from a donor whose eligibility is pending, and one UC-MSC lot
from the approved cord donor carried through P0-P3, harvest and 4 bags of 50 x10^6 viable cells (enough for the
62.5 kg lupus demo patient at 2 x10^6/kg), and a second UC-MSC lot like it from the second approved cord donor,
frozen a day later (its bags expire later, so the lupus patient's prescription keeps the first lot's), whose bags
a newcomer prescribes. The manufactured lots record a reagent lot of every type their product
requires before quarantine (medium, platelet lysate, trypsin, DMSO: config/products.toml `required_reagent_types`),
so a recall of any demo reagent lot finds them. The UC-MSC lots are left in process, cryopreserved and stored: the release
demo (mscbatch.release.demo) sends them to quarantine, so the adipose lot stays the only quarantined lot a bare
seed_lots() makes (tests/integration/test_release_support.py relies on that). Idempotent: a lot is made only
when missing."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.auth.models import User
from mscbatch.core.culture import BagPlan
from mscbatch.donors.demo import (
    CHAIN_CORD_INITIALS,
    PENDING_CORD_INITIALS,
    SECOND_CHAIN_CORD_INITIALS,
    demo_cord_donor,
)
from mscbatch.donors.models import Donor
from mscbatch.lots import bags, reagents, services, steps, storage
from mscbatch.lots.models import Bag, Lot, ReagentLot, StorageLocation
from mscbatch.site import site_config, site_today

M = 10**6
CHAIN_BOX = "Box A2"
CHAIN_BAGS = 4
CHAIN_BAG = BagPlan(volume_ml=Decimal(25), cells_per_ml=2 * M, dmso_percent=Decimal(10))  # 50 x10^6 per bag


def _storage(session: Session, tech: User) -> tuple[int, int]:
    site = storage.create_location(session, tech, kind="site", name="Demo cell therapy unit")
    tank = storage.create_location(session, tech, kind="tank", name="LN2 tank 1", parent_id=site.id,
                                   temperature_max_c=Decimal(-150))
    storage.create_location(session, tech, kind="freezer", name="-80 freezer (not for bags)", parent_id=site.id,
                            temperature_max_c=Decimal(-80))
    first = None
    for rack_name in ("Rack A", "Rack B"):
        rack = storage.create_location(session, tech, kind="rack", name=rack_name, parent_id=tank.id)
        for n in (1, 2):
            box = storage.create_location(session, tech, kind="box", name=f"Box {rack_name[-1]}{n}", parent_id=rack.id,
                                          rows=5, columns=5)
            first = first or box.id
    return first or 0, tank.id


#: the demo reagent lots: key, type, name, supplier, supplier's lot number, expiry in days from today
DEMO_REAGENTS = (
    ("medium", "medium", "alpha-MEM", "DemoBio", "AM-2291", 200),
    ("hpl", "platelet_lysate", "Human platelet lysate", "DemoHeme", "HPL-0457", 90),
    ("trypsin", "trypsin", "TrypLE Select", "DemoBio", "TR-7781", 300),
    # a second lot of the same trypsin: what a technician picks when correcting a reagent use recorded in error
    ("trypsin_new", "trypsin", "TrypLE Select", "DemoBio", "TR-7790", 330),
    ("dmso", "dmso", "DMSO Cryo grade", "DemoChem", "DM-1203", 400),
    ("fbs_expired", "fbs", "Fetal bovine serum", "DemoSerum", "FBS-0099", -10),
)


def _reagents(session: Session, tech: User) -> dict[str, int]:
    today = site_today()
    made = {}
    for key, kind, name, supplier, lot, days in DEMO_REAGENTS:
        made[key] = reagents.register_reagent_lot(session, tech, reagent_type=kind, name=name, supplier=supplier,
                                                  lot_number=lot, expiry_date=today + timedelta(days=days)).id
    return made


def _registered_reagents(session: Session) -> dict[str, int] | None:
    """The demo reagent lots registered by an earlier seeding (None when one of them is missing)."""
    found = {}
    for key, kind, _name, supplier, lot, _days in DEMO_REAGENTS:
        row = session.scalar(select(ReagentLot.id).where(ReagentLot.reagent_type == kind, ReagentLot.supplier == supplier,
                                                         ReagentLot.lot_number == lot).order_by(ReagentLot.id))
        if row is None:
            return None
        found[key] = row
    return found


def _at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour, 0), site_config().tz)


def chain_lot(session: Session, initials: str = CHAIN_CORD_INITIALS) -> Lot | None:
    """The demo UC-MSC lot of an approved cord donor: by default the one dosed to the lupus demo patient;
    SECOND_CHAIN_CORD_INITIALS gives the second one, with bags left to prescribe."""
    donor = demo_cord_donor(session, initials)
    if donor is None:
        return None
    return session.scalar(select(Lot).where(Lot.donor_id == donor.id, Lot.product_id == "UC-MSC").order_by(Lot.id))


def second_chain_lot(session: Session) -> Lot | None:
    return chain_lot(session, SECOND_CHAIN_CORD_INITIALS)


#: the two chain lots: donor initials -> (days before today the cord was collected, delivery room)
CHAINS = {CHAIN_CORD_INITIALS: (26, "Demo maternity, delivery room 1"),
          SECOND_CHAIN_CORD_INITIALS: (25, "Demo maternity, delivery room 3")}


def _chain_lot(session: Session, tech: User, donor: Donor, used: dict[str, int] | None, *,
               chain: tuple[int, str] | None = None, plans: list[BagPlan] | None = None) -> Lot:
    """UC-MSC from an approved cord donor: explant P0, then P1-P3, harvest 230 x10^6 at 94 % viability,
    4 bags of 25 mL at 2 x10^6 viable cells/mL (10 % DMSO) placed in Box A2, left in process. Its record names
    the medium and platelet lysate (isolation), the trypsin (P0) and the DMSO (cryopreservation) lots. `chain`
    (days before today the cord was collected, delivery room) and `plans` (the bags) for a donor not in CHAINS
    (the late-OOS recall demo, mscbatch.recall.demo_notices)."""
    today = site_today()
    days_ago, site = chain or CHAINS[donor.initials]
    start = today - timedelta(days=days_ago)
    lot = services.create_lot(session, tech, services.LotDetails(
        donor_id=donor.id, product_id="UC-MSC", collection_at=_at(start, 7),
        collection_site=site, tissue_amount=Decimal("21.5"), tissue_unit="g"))
    isolation = steps.record_isolation(session, tech, lot.id, performed_on=start,
                                       notes="Wharton's jelly explant culture")
    if used:
        for reagent in ("medium", "hpl"):
            reagents.link_reagent(session, tech, lot.id, used[reagent], used_on=start, step_id=isolation.id)
    day = start
    for number, (seeded, harvested, viability, days) in enumerate(
            [(2, 16, "97.0", 9), (4, 30, "96.0", 5), (5, 38, "95.5", 5), (30, 240, "95.0", 5)]):
        day += timedelta(days=days)
        step = steps.record_passage(session, tech, lot.id, steps.PassageDetails(
            passage_number=number, performed_on=day, seeded_cells=seeded * M, harvested_cells=harvested * M,
            viability_percent=viability, days_in_culture=Decimal(days)))
        if used and number == 0:
            reagents.link_reagent(session, tech, lot.id, used["trypsin"], used_on=day, step_id=step.id)
    # the harvest counts P3's 240 x10^6 cells after washing: never more than that count (steps.record_harvest)
    steps.record_harvest(session, tech, lot.id, harvested_at=_at(day, 10), total_cells=230 * M,
                         viability_percent="94.0")
    if used:
        reagents.link_reagent(session, tech, lot.id, used["dmso"], used_on=day)
    frozen = bags.cryopreserve(session, tech, lot.id, frozen_at=_at(day, 12), bags=plans or [CHAIN_BAG] * CHAIN_BAGS)
    box_id = session.scalar(select(StorageLocation.id).where(StorageLocation.kind == "box",
                                                             StorageLocation.name == CHAIN_BOX).order_by(StorageLocation.id))
    if box_id is not None:
        taken = set(session.scalars(select(Bag.position).where(Bag.box_id == box_id)))
        free = (p for p in range(1, 26) if p not in taken)
        for bag, position in zip(frozen, free, strict=False):
            storage.store_bag(session, tech, bag.id, box_id, position)
    return lot


def _chain_line(lot: Lot, donor: Donor) -> str:
    return (f"  {lot.lot_number}  cord MSC (UC-MSC) from {donor.code}: P0-P3, {CHAIN_BAGS} bags of 50 x10^6 viable "
            f"cells in LN2 tank 1 / Rack A / {CHAIN_BOX}, cryopreserved (sent to QC and release by the release demo)")


def _seed_chain(session: Session, tech: User | None, used: dict[str, int] | None) -> list[str]:
    lines = []
    for initials in CHAINS:
        donor = demo_cord_donor(session, initials)
        if tech is None or donor is None or donor.status != "approved" or chain_lot(session, initials) is not None:
            continue
        lines.append(_chain_line(_chain_lot(session, tech, donor, used), donor))
    return lines


def adipose_lot(session: Session, tech: User, donor: Donor, used: dict[str, int], box_id: int, start: date, *,
                tissue_g: str, counts: list[tuple[int, int, str, int]], harvest_viability: str) -> tuple[Lot, list[Bag]]:
    """An AT-MSC lot made as the unit makes one: isolation, P0-P3 (`counts`: seeded and harvested x10^6, viability,
    days in culture), harvest of 132 x10^6, 4 bags of 30 x10^6 stored in the first free places of `box_id`, every
    required reagent lot linked, sent to quarantine. The first demo lot and the recall demo's lot (recall.demo)."""
    lot = services.create_lot(session, tech, services.LotDetails(
        donor_id=donor.id, product_id="AT-MSC", collection_at=_at(start, 9), collection_site="Demo hospital, theatre 3",
        tissue_amount=Decimal(tissue_g), tissue_unit="g"))
    isolation = steps.record_isolation(session, tech, lot.id, performed_on=start, notes="Collagenase digestion, 1 h 37 C")
    for reagent in ("medium", "hpl"):
        reagents.link_reagent(session, tech, lot.id, used[reagent], used_on=start, step_id=isolation.id)
    day = start
    for number, (seeded, harvested, viability, days) in enumerate(counts):
        day += timedelta(days=days)
        step = steps.record_passage(session, tech, lot.id, steps.PassageDetails(
            passage_number=number, performed_on=day, seeded_cells=seeded * M, harvested_cells=harvested * M,
            viability_percent=viability, days_in_culture=Decimal(days)))
        if number == 0:
            reagents.link_reagent(session, tech, lot.id, used["trypsin"], used_on=day, step_id=step.id)
    # P3 counted 140 x10^6: the washed harvest cannot be more (steps.record_harvest)
    steps.record_harvest(session, tech, lot.id, harvested_at=_at(day, 10), total_cells=132 * M,
                         viability_percent=harvest_viability)
    reagents.link_reagent(session, tech, lot.id, used["dmso"], used_on=day)
    frozen = bags.cryopreserve(session, tech, lot.id, frozen_at=_at(day, 12), bags=[
        BagPlan(volume_ml=Decimal(25), cells_per_ml=1_200_000, dmso_percent=Decimal(10))] * 4)
    taken = set(session.scalars(select(Bag.position).where(Bag.box_id == box_id)))
    for bag, position in zip(frozen, (p for p in range(1, 26) if p not in taken), strict=False):
        storage.store_bag(session, tech, bag.id, box_id, position)
    services.transition_lot(session, tech, lot.id, "quarantine", "Cryopreserved and stored: awaiting QC and release")
    return lot, frozen


def seed_lots(session: Session) -> list[str]:
    existing = session.scalars(select(Lot).order_by(Lot.id)).all()
    tech = session.scalar(select(User).where(User.username == "tech"))
    if existing:
        _seed_chain(session, tech, _registered_reagents(session))
        return [f"  {lot.lot_number}  {lot.product_name}  {lot.status}"
                for lot in session.scalars(select(Lot).order_by(Lot.id))]
    adipose = session.scalar(select(Donor).where(Donor.tissue_source == "adipose_tissue", Donor.status == "approved"))
    cord = demo_cord_donor(session, PENDING_CORD_INITIALS)
    if tech is None or adipose is None:
        return ["  (skipped: the demo technician or the approved adipose donor is missing)"]
    box_id, _tank = _storage(session, tech)
    used = _reagents(session, tech)
    today = site_today()
    start = today - timedelta(days=24)
    lot, _frozen = adipose_lot(session, tech, adipose, used, box_id, start, tissue_g="52.5",
                               counts=[(4, 38, "96.5", 6), (3, 26, "95.0", 5), (3, 27, "94.0", 5), (20, 140, "93.5", 5)],
                               harvest_viability="93.5")
    lines = [f"  {lot.lot_number}  adipose MSC from {adipose.code}: P0-P3, 4 bags in LN2 tank 1 / Rack A / Box A1, "
             "quarantine (ready for QA)"]
    if cord is not None:
        second = services.create_lot(session, tech, services.LotDetails(
            donor_id=cord.id, product_id="UC-MSC", collection_at=_at(today - timedelta(days=8), 7),
            collection_site="Demo maternity, delivery room 2", tissue_amount=Decimal("18"), tissue_unit="g"))
        explant = steps.record_isolation(session, tech, second.id, performed_on=today - timedelta(days=8),
                                         notes="Explant culture")
        for reagent in ("medium", "hpl"):
            reagents.link_reagent(session, tech, second.id, used[reagent], used_on=today - timedelta(days=8),
                                  step_id=explant.id)
        p0 = steps.record_passage(session, tech, second.id, steps.PassageDetails(
            passage_number=0, performed_on=today - timedelta(days=1), seeded_cells=2 * M, harvested_cells=15 * M,
            viability_percent="97.0", days_in_culture=Decimal(7)))
        # in process: each of these reagent uses can still be corrected from the lot page (lots.reagent_corrections)
        reagents.link_reagent(session, tech, second.id, used["trypsin"], used_on=today - timedelta(days=1),
                              step_id=p0.id)
        lines.append(f"  {second.lot_number}  cord MSC from {cord.code}: in process (P0), donor eligibility pending; "
                     "its reagent uses can be corrected (e.g. its P0 trypsin TR-7781 to TR-7790)")
    lines.extend(_seed_chain(session, tech, used))
    lines.append("  Reagent lots: 5 in date, 1 expired (FBS-0099: refused if linked)")
    return lines
