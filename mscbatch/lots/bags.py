"""Cryopreservation of a harvest into bags, each with its ISBT 128-compatible identifiers (DOMAIN.md 4 and 7).

- The split is checked by the core (plan_cryopreservation): the bags cannot hold more cells than the
  harvest (on the viable basis by default, as doses are counted in viable cells).
- Each bag is one division of the lot (division_code: "00" for a single bag, A0, B0... for bag 1, 2... of N)
  and gets its own DIN from the site FIN (config/site.toml), the 2-digit year of freezing (site time zone) and
  the next sequence of the (FIN, year) counter (din_allocation: unique, never reused, safe concurrently).
- Expiry = freezing (or collection, per product) + the product's shelf life, stored in UTC and shown in the
  site's zone with UTC beneath.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.core.bounds import FIRST_DAY, plausible_instant
from mscbatch.core.culture import BagPlan, CultureError, expiry_at, format_cells, plan_cryopreservation
from mscbatch.core.identifiers import MAX_DIVISIONS, division_code
from mscbatch.database import utcnow
from mscbatch.errors import Conflict, ValidationFailed
from mscbatch.lots.din_allocation import allocate_dins
from mscbatch.lots.models import Bag
from mscbatch.lots.problems import Problems
from mscbatch.lots.queries import bags_of, product_of
from mscbatch.lots.reagents import uses_outside_their_window
from mscbatch.lots.services import (
    at_most_decimals,
    lock_lot,
    recorded_reagent_types,
    require_in_process,
    require_technician,
)
from mscbatch.recall.queries import hold_for_recalls
from mscbatch.site import site_config


def check_bag_plan(bag: BagPlan, number: int) -> BagPlan:
    """One bag's volume, DMSO and cells per mL within cryopreservation's rules (a correction of a bag's content,
    lots.corrections.correct_bag_content, applies them again); returned at the scale its columns keep."""
    problems = Problems()  # every problem of the bag at once
    volume = problems.check(lambda: _volume(bag.volume_ml, number))
    dmso = problems.check(lambda: _dmso(bag.dmso_percent, number))
    if isinstance(bag.cells_per_ml, bool) or not isinstance(bag.cells_per_ml, int) or bag.cells_per_ml <= 0:
        problems.add(ValidationFailed(f"Bag {number}: give the cells per mL.", field="cells_per_ml"))
    problems.raise_any()
    assert volume is not None and dmso is not None
    return BagPlan(volume_ml=volume, cells_per_ml=int(bag.cells_per_ml), dmso_percent=dmso)


def _volume(volume_ml: Any, number: int) -> Decimal:
    if not isinstance(volume_ml, Decimal) or not Decimal("0.1") <= volume_ml <= Decimal(1000):
        raise ValidationFailed(f"Bag {number}: volume between 0.1 and 1000 mL.", field="volume_ml")
    # kept as typed or refused: the columns hold 2 decimals, and the bag's cells are volume x cells per mL
    return at_most_decimals(volume_ml, 2, "volume_ml", f"Bag {number}: volume", "20.55 mL")


def _dmso(dmso_percent: Any, number: int) -> Decimal:
    if not isinstance(dmso_percent, Decimal) or not Decimal(0) <= dmso_percent <= Decimal(20):
        raise ValidationFailed(f"Bag {number}: DMSO between 0 and 20 %.", field="dmso_percent")
    return at_most_decimals(dmso_percent, 2, "dmso_percent", f"Bag {number}: DMSO", "7.5 %")


def _check_plans(bags: Sequence[BagPlan]) -> None:
    if not 1 <= len(bags) <= MAX_DIVISIONS:
        raise ValidationFailed(f"A lot is frozen into 1 to {MAX_DIVISIONS} bags (divisions A0-Z0).", field="bag_count")
    for number, bag in enumerate(bags, start=1):
        check_bag_plan(bag, number)


def freezes_with_dmso(product: Any) -> bool:
    """The product's bags are frozen with DMSO: config/products.toml lists "dmso" among the reagent lots its record
    must name (required_reagent_types), the one place the product configuration names its cryoprotectant."""
    return any(requirement == ("dmso",) for requirement in product.required_reagent_types)


#: the product's rules check_bag_content applies, by the field each is said on
BAG_CONTENT_RULES = frozenset({"cells_per_ml", "dmso_percent"})


def check_bag_content(session: Session, lot: Any, bags: Sequence[BagPlan], *, numbers: Sequence[int] | None = None,
                      judged: Collection[str] = BAG_CONTENT_RULES, problems: Problems | None = None) -> None:
    """The bags against the lot's product and record, every problem at once:
    - cells per mL within the product's range (config/products.toml cryopreservation.cells_per_ml, a site value):
      400 x10^6 viable cells per mL is no cell suspension, it is a count typed wrong, and the dose is read from it;
    - DMSO above 0 % when the product is frozen with DMSO (freezes_with_dmso) or a DMSO lot is recorded on the lot
      (a recall of that DMSO lot would reach bags said to hold none);
    - for a product frozen with DMSO, DMSO within its range (config/products.toml cryopreservation.dmso_percent, a
      site value): 0.1 typed for 10 % counts a dose's DMSO per kg 100 times too low (core.dosing.dmso_grams).
    A correction of one bag's content (lots.corrections) names the bag by its number (`numbers`), judges only the
    rules of the values it changed (`judged`) and gathers the refusals with its own (`problems`: then nothing is
    raised here)."""
    product = product_of(lot)
    span = product.culture_limits.bag_cells_per_ml
    dmso_span = product.bag_dmso_percent
    dmso_lot = "dmso" in recorded_reagent_types(session, lot.id)
    found = Problems() if problems is None else problems
    for number, bag in zip(numbers or range(1, len(bags) + 1), bags, strict=True):
        if "cells_per_ml" in judged and span is not None and not span[0] <= bag.cells_per_ml <= span[1]:
            found.add(ValidationFailed(
                f"Bag {number}: viable cells per mL {format_cells(bag.cells_per_ml)} is outside "
                f"{format_cells(span[0])} to {format_cells(span[1])} per mL, the range for {product.name} "
                f"({product.id}) bags (the site's cryopreservation.cells_per_ml). Check the count for a typing error "
                "(a factor of 10 or 1000); the doses are calculated from it.", field="cells_per_ml"))
        if "dmso_percent" in judged and not bag.dmso_percent and (dmso_lot or freezes_with_dmso(product)):
            why = (f"a DMSO lot is recorded for lot {lot.lot_number}" if dmso_lot
                   else f"{product.name} ({product.id}) is frozen with DMSO")
            found.add(ValidationFailed(
                f"Bag {number}: DMSO 0 %, but {why}: give the DMSO % the bag was frozen with (e.g. 10 %). A bag "
                "holding DMSO is traced to its DMSO lot, and the DMSO per kg of a dose is counted from it.",
                field="dmso_percent"))
        elif "dmso_percent" in judged and dmso_span is not None and freezes_with_dmso(product) \
                and not dmso_span[0] <= bag.dmso_percent <= dmso_span[1]:
            found.add(ValidationFailed(_dmso_outside(bag.dmso_percent, dmso_span, number, product),
                                       field="dmso_percent"))
    if problems is None:
        found.raise_any()


def _percent(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _dmso_outside(dmso: Decimal, span: tuple[Decimal, Decimal], number: int, product: Any) -> str:
    """A bag's DMSO % outside the product's range, in words; a value at or below 1 reads as a fraction typed for a
    percentage (0.1 for 10 %), the slip that made a dose's DMSO per kg 100 times too low."""
    outside = (f"Bag {number}: DMSO {_percent(dmso)} % is outside {_percent(span[0])} to {_percent(span[1])} %, the "
               f"range for {product.name} ({product.id}) bags (the site's cryopreservation.dmso_percent)")
    if dmso <= 1:
        meant = dmso * 100 if span[0] <= dmso * 100 <= span[1] else span[1]
        return (f"{outside}: it looks typed as a fraction. Type the percentage, {_percent(meant)} for "
                f"{_percent(meant)} %; the DMSO per kg of a dose is counted from it.")
    return f"{outside}. Check the DMSO % the bag was frozen with; the DMSO per kg of a dose is counted from it."


def check_freezing(frozen_at: datetime | None, bags: Sequence[BagPlan]) -> None:
    """The freezing as typed (its time, the bags), every problem at once; nothing is read from the database."""
    problems = Problems()
    problems.check(lambda: _check_frozen_at(frozen_at))
    problems.check(lambda: _check_plans(bags))
    problems.raise_any()


def _check_frozen_at(frozen_at: datetime | None) -> None:
    if frozen_at is None or frozen_at.tzinfo is None:
        raise ValidationFailed("Give the date and time of freezing.", field="frozen_at")
    if frozen_at > utcnow():
        raise ValidationFailed("The freezing time cannot be in the future.", field="frozen_at")
    if not plausible_instant(frozen_at):
        raise ValidationFailed(f"The freezing time cannot be before {FIRST_DAY}.", field="frozen_at")


def cryopreserve(session: Session, actor: Any, lot_id: int, *, frozen_at: datetime | None, bags: Sequence[BagPlan],
                 basis: str = "viable") -> list[Bag]:
    """Freeze the harvest into N bags; allocate a DIN and a product code (division) to each."""
    require_technician(actor)
    check_freezing(frozen_at, bags)
    site = site_config()
    with use_case(session, actor, f"cryopreserved into {len(bags)} bag{'' if len(bags) == 1 else 's'}"):
        lot = lock_lot(session, lot_id)  # two freezings at once: the second sees the first's bags and is refused
        require_in_process(lot, "the cryopreservation")
        if lot.harvested_at is None or lot.harvest_total_cells is None or lot.harvest_viable_cells is None:
            raise Conflict(f"Record the harvest of lot {lot.lot_number} before cryopreserving it.")
        if bags_of(session, lot.id):
            raise Conflict(f"Lot {lot.lot_number} is already cryopreserved.")
        if frozen_at < lot.harvested_at:
            raise ValidationFailed("Freezing cannot be before the harvest.", field="frozen_at")
        check_bag_content(session, lot, bags)
        try:
            plan = plan_cryopreservation(lot.harvest_total_cells, lot.harvest_viable_cells, bags, basis=basis)
        except CultureError as error:
            raise ValidationFailed(f"Refused: {error}.", field="cells_per_ml") from None
        product = product_of(lot)
        start = frozen_at if product.shelf_life_from == "freeze" else lot.collection_at
        expires = expiry_at(start.astimezone(site.tz), product.shelf_life)
        dins = allocate_dins(session, site.fin, frozen_at.astimezone(site.tz).year, len(bags))
        rows = []
        for number, (bag, din, cells) in enumerate(zip(bags, dins, plan.bag_cells, strict=True), start=1):
            division = division_code(number, len(bags))
            rows.append(Bag(lot_id=lot.id, bag_number=number, bag_count=len(bags), division=division, din=din.text,
                            din_fin=din.fin, din_year=din.year, din_sequence=din.sequence,
                            check_character=din.check_character, product_code=product.product_code(division).text,
                            volume_ml=bag.volume_ml, cells_per_ml=int(bag.cells_per_ml), total_cells=int(cells),
                            dmso_percent=bag.dmso_percent, expires_at=expires, status="stored"))
        session.add_all(rows)
        lot.frozen_at, lot.cell_basis, lot.expires_at = frozen_at, basis, expires
        # the freezing ends the days its reagents can have been used (reagents._use_window): a DMSO recorded for a
        # later day cannot have gone into these bags, and a recall of it would reach them wrongly
        late = uses_outside_their_window(session, lot, {None})
        if late:
            raise Conflict("Freezing refused: " + "; ".join(late) + ". Check the freezing date; if it is right, "
                           "correct the reagent's date of use on the lot page first. Nothing was saved.",
                           field="frozen_at")
        hold_for_recalls(session, lot, rows)  # a recall of its donor or reagents started before the freeze
    return rows
