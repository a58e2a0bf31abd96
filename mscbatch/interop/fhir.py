"""FHIR R5 export: each bag as a BiologicallyDerivedProduct, and a collection Bundle of a lot's bags.

Built as plain dictionaries and validated with the fhir.resources models (R5 is that package's default FHIR
version), so an element that R5 does not have, or a wrong type, fails here rather than at the hospital.

Where the bag's data goes (the mapping hospitals read):
- identifier[0]: the ISBT 128 DIN (13 characters, without the check character K) in the system
  http://hl7.org/fhir/NamingSystem/iccbba-din, the NamingSystem the FHIR specification's own ISBT 128
  examples use for ICCBBA DINs. The check character K is the property "isbt128-check-character".
- productCode: coding with the ISBT 128 Product Description Code ("S" + the 4-character PDC) in the system
  https://www.isbt128.org/uri/productdescriptioncode (the URI HL7 terminology registers for ISBT 128 PDCs);
  productCode.text is the whole 8-character ISBT 128 product code (PDC, collection type, division).
- productCategory: "cells" (http://hl7.org/fhir/product-category).
- division: the ISBT 128 division code of the bag ("00" undivided, "A0".."Z0").
- productStatus: available (usable now: its lot released, the bag placed in storage, reserved for a patient, sent
  or on the ward, not expired; core.states.effective_bag_status) or unavailable
  (http://hl7.org/fhir/biologicallyderived-product-status); the detailed state is the property "status".
  A bag the bedside check and the label verification page refuse whatever the patient (on hold by a recall, its
  donor not approved by QA yet, judged ineligible or reopened by new information, a test failed after a conditional
  release, expired, thawed longer ago than its product's post-thaw limit) is unavailable, with the reasons in
  the property "not-usable" (no patient in them).
- expirationDate: the bag's expiry (UTC).
- storageTempRequirements: at most the stricter of the site and product limits, in Cel (UCUM).
- biologicalSourceEvent and parent: the lot the bag was frozen from (one lot = one donor's collection):
  an identifier in the system urn:mscbatch:<FIN>:lot-number (a logical reference; the lot itself is not
  exported as a resource).
- collection: when the tissue was collected, and the donor by pseudonymised donor code only.

Each infusion is a BiologicallyDerivedProductDispense:
- product: a reference to the bag's BiologicallyDerivedProduct (and its DIN as identifier).
- patient: the pseudonymised trial code only (identifier in urn:mscbatch:<FIN>:patient-code); no name, no
  initials, no date of birth.
- status: in-progress while the infusion runs; once it has ended, "issued". R5's required value set
  (biologicallyderivedproductdispense-status: preparation, in-progress, allocated, issued, unfulfilled,
  returned, entered-in-error, unknown) has no "completed", so an ended infusion is the product handed over.
- performer: the two people of the bedside check ("first-checker", "second-checker"), the nurse who started it
  ("administering", who may be neither) and, if someone else, who ended it ("ended-by"), by user name in
  urn:mscbatch:<FIN>:user.
- whenHandedOver: the infusion start (UTC); quantity: the volume infused in mL (UCUM), once ended.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from fhir.resources.biologicallyderivedproduct import BiologicallyDerivedProduct
from fhir.resources.biologicallyderivedproductdispense import BiologicallyDerivedProductDispense
from fhir.resources.bundle import Bundle
from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.auth.models import User
from mscbatch.core.site_config import effective_storage_limit_c
from mscbatch.core.states import effective_bag_status
from mscbatch.custody.checks import past_post_thaw_limit, thawed_at
from mscbatch.custody.models import Infusion, TwoPersonCheck
from mscbatch.database import utcnow
from mscbatch.donors.models import Donor
from mscbatch.errors import NotFound
from mscbatch.labelling.services import donor_not_cleared
from mscbatch.lots.models import Bag, Lot
from mscbatch.lots.queries import bag_status, get_bag, get_lot, product_catalogue
from mscbatch.patients.models import Patient
from mscbatch.patients.queries import get_patient
from mscbatch.recall.queries import held_bag_ids
from mscbatch.release.queries import has_late_oos
from mscbatch.site import site_config

FHIR_JSON = "application/fhir+json"
DIN_SYSTEM = "http://hl7.org/fhir/NamingSystem/iccbba-din"
PDC_SYSTEM = "https://www.isbt128.org/uri/productdescriptioncode"
CATEGORY_SYSTEM = "http://hl7.org/fhir/product-category"
STATUS_SYSTEM = "http://hl7.org/fhir/biologicallyderived-product-status"
UCUM = "http://unitsofmeasure.org"


def local_system(kind: str) -> str:
    """Identifier systems of this facility, scoped by its ISBT 128 FIN."""
    return f"urn:mscbatch:{site_config().fin}:{kind}"


def _property(code: str, **value: Any) -> dict[str, Any]:
    return {"type": {"coding": [{"system": local_system("property"), "code": code}], "text": code}, **value}


def _quantity(value: Decimal | int, unit: str, code: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


def _storage_limit_c(lot: Lot) -> Decimal:
    site = site_config()
    try:
        return effective_storage_limit_c(site, product_catalogue().get(lot.product_id))
    except KeyError:  # a product no longer in products.toml: the site limit still applies
        return site.storage_temperature_max_c


def lot_stops(session: Session, lot: Lot) -> tuple[str, ...]:
    """What makes every bag of the lot unusable now beyond the lot's state (the bedside check's hard stops that do
    not depend on the patient, as the label verification page says them): a late OOS, the donor not approved yet,
    ineligible or reopened."""
    stops = []
    if session.scalar(select(has_late_oos(lot.id))):
        stops.append("a test of the lot failed after its conditional release (late OOS)")
    donor = donor_not_cleared(session, lot.donor_id)  # the label page's words: not approved yet, or reopened
    if donor is not None:
        stops.append(donor)
    return tuple(stops)


def post_thaw_words(bag: Bag, lot: Lot, thawed: datetime | None, now: datetime) -> str | None:
    """Why a thawed bag may no longer be given (custody.checks.past_post_thaw_limit, the bedside's "post_thaw"
    STOP), or None. `thawed`: its last thaw (custody.checks.thawed_at)."""
    try:
        limit = past_post_thaw_limit(bag, lot, thawed, now)
    except NotFound:  # a product no longer in products.toml: its limit is unknown, so is the bag's fitness
        return "thawed, and its product's post-thaw limit is no longer configured" if bag.status == "thawed" else None
    if limit:
        return f"too long since thawing: it had to be given within {int(limit.total_seconds() // 60)} minutes"
    return None


def last_thaw(session: Session, bag_id: int) -> datetime | None:
    return session.scalar(select(thawed_at(bag_id)))


def product_resource(bag: Bag, lot: Lot, donor_code: str, *, on_hold: bool = False,
                     stops: tuple[str, ...] = (), thawed: datetime | None = None) -> dict[str, Any]:
    """The bag as a FHIR R5 BiologicallyDerivedProduct (a JSON-ready dict, validated). `on_hold`: the bag has an
    active recall hold; `stops`: lot_stops; `thawed`: its last thaw (last_thaw). Without them a held bag, one of a
    reopened donor or a late-failed lot, or a thawed bag past its post-thaw limit, was exported "available" to the
    hospital while the bedside check refuses it."""
    effective = bag_status(bag, lot)
    if on_hold:
        effective = effective_bag_status(lot.status, bag.status, on_hold=True, placed=bag.box_id is not None)
    reasons = ([] if effective.usable else [effective.reason]) + list(stops)
    now = utcnow()
    if bag.expires_at <= now:
        reasons.append("the bag has expired")
    post_thaw = post_thaw_words(bag, lot, thawed, now)
    if post_thaw:
        reasons.append(post_thaw)
    lot_identifier = {"system": local_system("lot-number"), "value": lot.lot_number}
    data: dict[str, Any] = {
        "resourceType": "BiologicallyDerivedProduct",
        "id": str(bag.id),
        "productCategory": {"system": CATEGORY_SYSTEM, "code": "cells", "display": "Cells"},
        "productCode": {"coding": [{"system": PDC_SYSTEM, "code": bag.product_code[:5],
                                    "display": lot.product_name}], "text": bag.product_code},
        "parent": [{"type": "BiologicallyDerivedProduct", "identifier": lot_identifier,
                    "display": f"Lot {lot.lot_number}"}],
        "identifier": [{"use": "official", "system": DIN_SYSTEM, "value": bag.din}],
        "biologicalSourceEvent": lot_identifier,
        "processingFacility": [{"display": site_config().facility_name}],
        "division": bag.division,
        "productStatus": {"system": STATUS_SYSTEM, "code": "unavailable" if reasons else "available"},
        "expirationDate": bag.expires_at.isoformat(),
        "collection": {"source": {"type": "Patient", "identifier": {"system": local_system("donor-code"),
                                                                   "value": donor_code}},
                       "collectedDateTime": lot.collection_at.isoformat()},
        "storageTempRequirements": {"high": _quantity(_storage_limit_c(lot), "°C", "Cel")},
        "property": [
            _property("isbt128-check-character", valueString=bag.check_character),
            _property("status", valueString=effective.status),
            _property("bag", valueString=f"{bag.bag_number} of {bag.bag_count}"),
            _property("volume", valueQuantity=_quantity(bag.volume_ml, "mL", "mL")),
            _property("total-cells", valueQuantity=_quantity(bag.total_cells, "cells", "{cells}")),
            _property("cells-per-ml", valueQuantity=_quantity(bag.cells_per_ml, "cells/mL", "{cells}/mL")),
            _property("dmso", valueQuantity=_quantity(bag.dmso_percent, "%", "%")),
        ],
    }
    if reasons:
        data["property"].append(_property("not-usable", valueString="; ".join(reasons)))
    return BiologicallyDerivedProduct.model_validate(data).model_dump(mode="json", exclude_none=True)


def _donor_code(session: Session, lot: Lot) -> str:
    return session.scalar(select(Donor.code).where(Donor.id == lot.donor_id)) or ""


def bag_product(session: Session, bag_id: int) -> dict[str, Any]:
    bag = get_bag(session, bag_id)
    lot = get_lot(session, bag.lot_id)
    return product_resource(bag, lot, _donor_code(session, lot), on_hold=bool(held_bag_ids(session, [bag.id])),
                            stops=lot_stops(session, lot), thawed=last_thaw(session, bag.id))


def lot_bundle(session: Session, lot_id: int, base_url: str) -> dict[str, Any]:
    """A collection Bundle of every bag of the lot (empty for a lot not yet frozen)."""
    lot = get_lot(session, lot_id)
    donor_code = _donor_code(session, lot)
    bags = list(session.scalars(select(Bag).where(Bag.lot_id == lot.id).order_by(Bag.bag_number)))
    held, stops = held_bag_ids(session, [bag.id for bag in bags]), lot_stops(session, lot)
    entries = [{"fullUrl": f"{base_url}/BiologicallyDerivedProduct/{bag.id}",
                "resource": product_resource(bag, lot, donor_code, on_hold=bag.id in held, stops=stops,
                                             thawed=last_thaw(session, bag.id) if bag.status == "thawed" else None)}
               for bag in bags]
    data = {"resourceType": "Bundle", "type": "collection", "timestamp": utcnow().isoformat(),
            "identifier": {"system": local_system("lot-number"), "value": lot.lot_number},
            "entry": entries}
    return Bundle.model_validate(data).model_dump(mode="json", exclude_none=True)


DISPENSE_RUNNING, DISPENSE_ENDED = "in-progress", "issued"


def _performer(function: str, user: User | None) -> dict[str, Any]:
    actor: dict[str, Any] = {"type": "Practitioner", "display": user.full_name if user else "?"}
    if user is not None:
        actor["identifier"] = {"system": local_system("user"), "value": user.username}
    return {"function": {"coding": [{"system": local_system("performer-function"), "code": function}],
                         "text": function}, "actor": actor}


def dispense_resource(session: Session, infusion: Infusion) -> dict[str, Any]:
    """The infusion as a FHIR R5 BiologicallyDerivedProductDispense (a JSON-ready dict, validated)."""
    bag = get_bag(session, infusion.bag_id)
    patient = session.get(Patient, infusion.patient_id)
    if patient is None:  # pragma: no cover - a foreign key
        raise NotFound(f"No patient for infusion {infusion.id}.")
    check = session.get(TwoPersonCheck, infusion.check_id)  # the first checker is on the check, not the infusion
    performers = [_performer("first-checker", session.get(User, check.checked_by_id) if check else None),
                  _performer("second-checker", session.get(User, infusion.second_person_id)),
                  _performer("administering", session.get(User, infusion.started_by_id))]
    if infusion.ended_by_id and infusion.ended_by_id not in (infusion.started_by_id, infusion.second_person_id):
        performers.append(_performer("ended-by", session.get(User, infusion.ended_by_id)))
    data: dict[str, Any] = {
        "resourceType": "BiologicallyDerivedProductDispense",
        "id": str(infusion.id),
        "identifier": [{"system": local_system("infusion"), "value": str(infusion.id)}],
        "status": DISPENSE_ENDED if infusion.ended_at is not None else DISPENSE_RUNNING,
        "product": {"reference": f"BiologicallyDerivedProduct/{bag.id}", "type": "BiologicallyDerivedProduct",
                    "identifier": {"system": DIN_SYSTEM, "value": bag.din}},
        "patient": {"type": "Patient", "identifier": {"system": local_system("patient-code"), "value": patient.code}},
        "performer": performers,
        "whenHandedOver": infusion.started_at.isoformat(),
    }
    if infusion.volume_infused_ml is not None:
        data["quantity"] = _quantity(infusion.volume_infused_ml, "mL", "mL")
    return BiologicallyDerivedProductDispense.model_validate(data).model_dump(mode="json", exclude_none=True)


def infusion_dispense(session: Session, infusion_id: int) -> dict[str, Any]:
    infusion = session.get(Infusion, infusion_id)
    if infusion is None:
        raise NotFound(f"No infusion with id {infusion_id}.")
    return dispense_resource(session, infusion)


def patient_bundle(session: Session, patient_id: int, base_url: str) -> dict[str, Any]:
    """A collection Bundle of the patient's infusions (dispenses), each with the bag it used, so that every
    product reference resolves inside the Bundle. The patient appears by trial code only."""
    patient = get_patient(session, patient_id)
    infusions = session.scalars(select(Infusion).where(Infusion.patient_id == patient.id)
                                .order_by(Infusion.started_at, Infusion.id))
    entries: list[dict[str, Any]] = []
    for infusion in infusions:
        entries.append({"fullUrl": f"{base_url}/BiologicallyDerivedProductDispense/{infusion.id}",
                        "resource": dispense_resource(session, infusion)})
        entries.append({"fullUrl": f"{base_url}/BiologicallyDerivedProduct/{infusion.bag_id}",
                        "resource": bag_product(session, infusion.bag_id)})
    data = {"resourceType": "Bundle", "type": "collection", "timestamp": utcnow().isoformat(),
            "identifier": {"system": local_system("patient-code"), "value": patient.code},
            "entry": entries}
    return Bundle.model_validate(data).model_dump(mode="json", exclude_none=True)
