"""The endotoxin a dose carries when a bag of it has no endotoxin result (its lot has none): the load is unknown,
but the bags that have one carry at least their sum. The signature judged that sum against K x weight x time
(core.dosing.calculate_dose); the dose page and the dose sheet show it, and a newer, lower weight judges it again
(queries.weight_since), rather than reading "no result" as "nothing to check"."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from mscbatch.core.dosing import endotoxin_words
from mscbatch.core.identifiers import IdentifierError, check_character, din_words


def _shown(din: str) -> str:
    """A draw's DIN as its label shows it, K included. A draw (and a prescription's stored calculation) keeps the
    DIN alone; K is its MOD 37-2 check character, the very one printed boxed on the bag (identifiers.make_din)."""
    try:
        k = check_character(din)
    except IdentifierError:  # never a DIN this unit allocates: said as stored
        return din
    return din_words(din, k)


def known_part(draws: Iterable[Any]) -> tuple[Decimal, list[str]]:
    """The endotoxin (EU) of the draws with a result, and the DINs of the draws without one (as the label shows them, K included). `draws`: the
    calculation's BagDraw rows, or their stored form (a prescription's calculation: dicts, decimals as text)."""
    known, missing = Decimal(0), []
    for draw in draws:
        din, eu = (draw["din"], draw.get("endotoxin_eu")) if isinstance(draw, Mapping) else (draw.din, draw.endotoxin_eu)
        if eu is None:
            missing.append(_shown(din))
        else:
            known += Decimal(eu)
    return known, missing


def unknown_load_words(draws: Iterable[Any], limit_eu: Decimal) -> str:
    """What the dose page and sheet say of a load left unknown: which bags have no result and, when some do, the
    endotoxin those carry at least (written with the limit's decimals, rounded up, as every load is)."""
    rows = list(draws)
    known, missing = known_part(rows)
    if len(missing) == len(rows):
        return "no result on the bags"
    bags = f"bag {missing[0]}" if len(missing) == 1 else "bags " + ", ".join(missing)
    others = len(rows) - len(missing)
    return (f"no result for {bags}: at least {endotoxin_words(known, limit_eu)} EU from the "
            f"{'other bag' if others == 1 else f'{others} other bags'}")


def known_load_problem(calculation: Mapping[str, Any], weight_kg: Decimal) -> str | None:
    """A signed dose whose load is unknown (a bag without a result) at a newer weight: the limit falls with the
    weight, and the bags with a result may now carry more than it. core.dosing.dose_at_new_weight judges only a
    load known in full; None when the load is known (judged there) or still within the new limit."""
    if calculation.get("endotoxin_eu") is not None:
        return None
    known, missing = known_part(calculation.get("draws") or ())
    limit = Decimal(calculation["endotoxin_limit_eu"]) * weight_kg / Decimal(calculation["weight_kg"])
    if not missing or known <= limit:
        return None
    without = f"bag {missing[0]}" if len(missing) == 1 else "bags " + ", ".join(missing)
    return (f"endotoxin would be at least {known.normalize():f} EU ({without} without an endotoxin result not "
            f"counted), above the limit of {limit.quantize(Decimal('0.01'))} EU for this weight")
