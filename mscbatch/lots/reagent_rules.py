"""Which reagent lots a cell lot's manufacturing record must name (DOMAIN.md section 4): pure rules, no database.

The record holds the reagent lots used (medium, platelet lysate or FBS, trypsin, DMSO) because recalls happen by
reagent lot too: a lot whose record names no platelet lysate is invisible to the recall of a platelet-lysate lot.
Each product lists its required types in config/products.toml (`required_reagent_types`, parsed and checked by
core.site_config when the file loads); an entry "platelet_lysate or fbs" is satisfied by either type. Bags frozen
with DMSO (above 0 %) always need a DMSO lot, whatever the product lists.

missing_reagent_types is the one rule: the lot's move to quarantine (lots.services.apply_lot_transition) calls
it, and the lot page shows its answer before the technician tries. The release gate does not ask again: a lot
quarantined by an earlier version could never gain its reagent lots (they are linked only while it is in process).
"""
from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mscbatch.core.site_config import Product

REAGENT_TYPES = {"medium": "Culture medium", "platelet_lysate": "Platelet lysate", "fbs": "Fetal bovine serum",
                 "trypsin": "Trypsin / dissociation reagent", "dmso": "DMSO (cryoprotectant)", "other": "Other"}
"""The reagent types a reagent lot is registered under (the key is stored on reagent_lot.reagent_type)."""

REQUIRABLE_TYPES = tuple(kind for kind in REAGENT_TYPES if kind != "other")
"""The types config/products.toml may require ("other" names no particular reagent)."""

ALTERNATIVE = " or "
"""How a products.toml entry names types of which any one will do: "platelet_lysate or fbs"."""

SHORT_NAMES = {"medium": "culture medium", "platelet_lysate": "platelet lysate", "fbs": "FBS", "trypsin": "trypsin",
               "dmso": "DMSO"}
"""Plain words for a missing type, as a message names it ("no trypsin, no platelet lysate or FBS recorded")."""

Requirement = tuple[str, ...]
"""One required entry: the reagent types of which any one satisfies it, e.g. ("platelet_lysate", "fbs")."""


def requirement_words(requirement: Requirement) -> str:
    """"platelet lysate or FBS" for ("platelet_lysate", "fbs")."""
    return ALTERNATIVE.join(SHORT_NAMES.get(kind, kind.replace("_", " ")) for kind in requirement)


def parse_requirement(text: str) -> Requirement:
    """"platelet_lysate or fbs" -> ("platelet_lysate", "fbs"). Unknown names are the caller's to refuse
    (core.site_config checks them against REQUIRABLE_TYPES when the file loads)."""
    return tuple(part.strip() for part in text.split(ALTERNATIVE))


def has_dmso(bag: Any) -> bool:
    """A bag (or a BagPlan) frozen with DMSO above 0 %."""
    return Decimal(str(getattr(bag, "dmso_percent", 0) or 0)) > 0


def missing_reagent_types(product: Product, recorded_types: Iterable[str], bags: Iterable[Any]) -> list[str]:
    """The required reagent types a lot's record does not name yet, in plain words and in the order of the
    product's `required_reagent_types` ("trypsin", "platelet lysate or FBS", "DMSO"); empty when nothing is missing.

    - product: the lot's product (core.site_config.Product, e.g. lots.queries.product_of(lot));
    - recorded_types: the reagent_type of every reagent lot linked to the lot (ReagentLot.reagent_type);
    - bags: the lot's bags (anything with `dmso_percent`): DMSO above 0 % in any bag requires a DMSO lot even if
      the product does not list "dmso".
    """
    recorded = set(recorded_types)
    requirements: list[Requirement] = list(product.required_reagent_types)
    if any(has_dmso(bag) for bag in bags) and not any("dmso" in requirement for requirement in requirements):
        requirements.append(("dmso",))
    return [requirement_words(requirement) for requirement in requirements if not recorded.intersection(requirement)]


def missing_reagents_words(lot_number: str, missing: list[str], before: str = "quarantine") -> str:
    """The refusal a user reads: "Lot MSC-2026-0003: record the lot's reagent lots before quarantine: no trypsin,
    no platelet lysate or FBS recorded. ..." (`before`: what the lot is refused)."""
    listed = ", ".join(f"no {words}" for words in missing)
    return (f"Lot {lot_number}: record the lot's reagent lots before {before}: {listed} recorded. The manufacturing "
            "record names every reagent lot used (a recall of a reagent lot finds the cell lots through it): link "
            "each one in the lot's \"Reagent lots used\" section.")
