"""FHIR R5 export: each bag as a BiologicallyDerivedProduct that fhir.resources validates, the DIN and the
product code in the documented elements, and a collection Bundle per lot."""
from __future__ import annotations

import pytest
from fhir.resources.biologicallyderivedproduct import BiologicallyDerivedProduct
from fhir.resources.bundle import Bundle

from mscbatch.interop.fhir import DIN_SYSTEM, FHIR_JSON, PDC_SYSTEM
from tests.conftest import api_token_for


@pytest.fixture
def frozen(app, users):  # type: ignore[no-untyped-def]
    from mscbatch.lots.models import Lot
    from tests.integration.lot_factories import approved_adipose_donor, cryopreserved_lot

    session = app.extensions["mscbatch.db"].new_session()
    try:
        lot_id, bags = cryopreserved_lot(session, approved_adipose_donor(session), count=2)
        lot = session.get(Lot, lot_id)
        return {"lot_id": lot_id, "lot_number": lot.lot_number, "collection_at": lot.collection_at,
                "bags": [{"id": b.id, "din": b.din, "product_code": b.product_code, "division": b.division,
                          "expires_at": b.expires_at} for b in bags]}
    finally:
        session.close()


@pytest.fixture
def api(app, users):  # type: ignore[no-untyped-def]
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}
    return lambda url: client.get(url, headers=headers)


def test_a_bag_is_a_valid_r5_biologically_derived_product_with_din_and_product_code(api, frozen):
    bag = frozen["bags"][0]
    response = api(f"/api/v1/fhir/BiologicallyDerivedProduct/{bag['id']}")
    assert response.status_code == 200 and response.mimetype == FHIR_JSON
    data = response.get_json()
    resource = BiologicallyDerivedProduct.model_validate(data)  # R5: productStatus, division, ... exist
    assert resource.get_resource_type() == "BiologicallyDerivedProduct"
    assert data["identifier"][0] == {"use": "official", "system": DIN_SYSTEM, "value": bag["din"]}
    assert data["productCode"]["coding"][0] == {"system": PDC_SYSTEM, "code": bag["product_code"][:5],
                                                "display": "Adipose tissue MSC"}
    assert data["productCode"]["text"] == bag["product_code"]
    assert data["productCategory"]["code"] == "cells"
    assert data["division"] == bag["division"] == "A0"
    assert data["productStatus"]["code"] == "unavailable"  # in quarantine / not released
    assert data["expirationDate"][:10] == bag["expires_at"].date().isoformat()
    assert data["storageTempRequirements"]["high"]["code"] == "Cel"
    assert float(data["storageTempRequirements"]["high"]["value"]) <= -135
    assert data["parent"][0]["identifier"]["value"] == frozen["lot_number"]
    assert data["biologicalSourceEvent"]["value"] == frozen["lot_number"]
    assert data["collection"]["collectedDateTime"][:10] == frozen["collection_at"].date().isoformat()
    source = data["collection"]["source"]
    assert set(source) == {"type", "identifier"} and source["identifier"]["value"].startswith("D-")
    properties = {p["type"]["text"]: p for p in data["property"]}
    assert properties["isbt128-check-character"]["valueString"]
    assert properties["volume"]["valueQuantity"]["unit"] == "mL"


def test_a_released_bag_is_available(app, api, frozen):
    from sqlalchemy import update

    from mscbatch.lots.models import Lot

    with app.app_context():  # the release itself (signatures, results) has its own tests
        db = app.extensions["mscbatch.db"]
        with db.new_session() as session, session.begin():
            session.execute(update(Lot).where(Lot.id == frozen["lot_id"]).values(status="released"),
                            execution_options={"synchronize_session": False})
    bag_url = f"/api/v1/fhir/BiologicallyDerivedProduct/{frozen['bags'][1]['id']}"
    # frozen but never placed in a box: not in stock yet (lots.queries.available_bags)
    assert api(bag_url).get_json()["productStatus"]["code"] == "unavailable"
    from mscbatch.lots import storage
    from tests.integration.lot_factories import box, user

    with app.app_context():
        session = app.extensions["mscbatch.db"].new_session()
        try:
            storage.store_bag(session, user(session, "technician"), frozen["bags"][1]["id"], box(session), 1)
        finally:
            session.close()
    data = api(bag_url).get_json()
    assert data["productStatus"]["code"] == "available"


def test_a_lot_bundle_holds_every_bag_and_validates(api, frozen):
    response = api(f"/api/v1/fhir/Bundle?lot={frozen['lot_id']}")
    assert response.status_code == 200 and response.mimetype == FHIR_JSON
    bundle = Bundle.model_validate(response.get_json())
    assert bundle.type == "collection" and bundle.identifier.value == frozen["lot_number"]
    dins = []
    for entry in bundle.entry:
        product = BiologicallyDerivedProduct.model_validate(entry.resource.model_dump(mode="json"))
        assert entry.fullUrl.endswith(f"/api/v1/fhir/BiologicallyDerivedProduct/{product.id}")
        dins.append(product.identifier[0].value)
    assert dins == [b["din"] for b in frozen["bags"]]


def test_unknown_ids_are_problem_404s_and_the_lot_parameter_is_required(api, frozen):
    for url in ("/api/v1/fhir/BiologicallyDerivedProduct/999999", "/api/v1/fhir/Bundle?lot=999999"):
        response = api(url)
        assert response.status_code == 404 and response.mimetype == "application/problem+json"
    assert api("/api/v1/fhir/Bundle").status_code == 422


def test_fhir_needs_a_token(app, frozen):
    assert app.test_client().get(f"/api/v1/fhir/Bundle?lot={frozen['lot_id']}").status_code == 401


# ---- infusions as BiologicallyDerivedProductDispense, and the Bundle per patient ---------------------------

@pytest.fixture
def infused(app, users, db_session):  # type: ignore[no-untyped-def]
    """A bag infused (started, then ended with 24.5 mL) into an enrolled patient, and a second patient's bag
    still infusing."""
    from mscbatch.custody import infusions
    from mscbatch.custody.models import Infusion
    from mscbatch.lots.models import Bag
    from mscbatch.patients.models import Patient
    from tests.integration.patient_factories import user
    from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag

    nurse = user(db_session, "nurse")
    ward = prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    ended = infusions.start_infusion(db_session, nurse, ward.bag_id, wristband=ward.wristband, bag_scan=ward.token, label_key=KEY)
    infusions.end_infusion(db_session, nurse, ended.id, volume_ml="24.5")
    other = prescribed_bag(db_session)
    checked_and_confirmed(db_session, other)
    running = infusions.start_infusion(db_session, nurse, other.bag_id, wristband=other.wristband, bag_scan=other.token, label_key=KEY)
    patient = db_session.get(Patient, ward.patient_id)
    made = {"ended": ended.id, "running": running.id, "bag_id": ward.bag_id, "patient_id": ward.patient_id,
            "patient_code": patient.code, "initials": patient.initials,
            "din": db_session.get(Bag, ward.bag_id).din,
            "started_at": db_session.get(Infusion, ended.id).started_at}
    db_session.rollback()  # end the read transaction: SQLite would otherwise keep the requests waiting
    return made


def test_an_infusion_is_a_valid_r5_dispense_with_the_trial_code_only(api, infused):
    from fhir.resources.biologicallyderivedproductdispense import BiologicallyDerivedProductDispense

    response = api(f"/api/v1/fhir/BiologicallyDerivedProductDispense/{infused['ended']}")
    assert response.status_code == 200 and response.mimetype == FHIR_JSON
    data = response.get_json()
    BiologicallyDerivedProductDispense.model_validate(data)
    assert data["status"] == "issued"  # R5 has no "completed": an ended infusion is the product handed over
    assert data["product"]["reference"] == f"BiologicallyDerivedProduct/{infused['bag_id']}"
    assert data["product"]["identifier"] == {"system": DIN_SYSTEM, "value": infused["din"]}
    assert set(data["patient"]) == {"type", "identifier"}
    assert data["patient"]["identifier"]["value"] == infused["patient_code"]
    assert infused["initials"] not in str(data["patient"])
    assert data["whenHandedOver"][:19] == infused["started_at"].isoformat()[:19]
    assert data["quantity"]["value"] == 24.5 and data["quantity"]["code"] == "mL"
    functions = [p["function"]["text"] for p in data["performer"]]
    assert functions == ["first-checker", "second-checker", "administering"]
    assert [p["actor"]["identifier"]["value"] for p in data["performer"]] == ["nurse", "nurse2", "nurse"]
    running = api(f"/api/v1/fhir/BiologicallyDerivedProductDispense/{infused['running']}").get_json()
    assert running["status"] == "in-progress" and "quantity" not in running


def test_a_patient_bundle_holds_each_dispense_and_its_bag(api, infused):
    response = api(f"/api/v1/fhir/Bundle?patient={infused['patient_id']}")
    assert response.status_code == 200
    bundle = Bundle.model_validate(response.get_json())
    assert bundle.identifier.value == infused["patient_code"]
    kinds = [(entry.resource.get_resource_type(), entry.resource.id) for entry in bundle.entry]
    assert kinds == [("BiologicallyDerivedProductDispense", str(infused["ended"])),
                     ("BiologicallyDerivedProduct", str(infused["bag_id"]))]
    assert bundle.entry[1].fullUrl.endswith(f"/api/v1/fhir/BiologicallyDerivedProduct/{infused['bag_id']}")


def test_dispenses_are_for_patient_readers_only(app, infused):
    client = app.test_client()
    for role, status in (("technician", 403), ("admin", 403), ("qa", 200), ("clinician", 200)):
        headers = {"Authorization": f"Bearer {api_token_for(app, role)}"}
        assert client.get(f"/api/v1/fhir/BiologicallyDerivedProductDispense/{infused['ended']}",
                          headers=headers).status_code == status, role
        assert client.get(f"/api/v1/fhir/Bundle?patient={infused['patient_id']}",
                          headers=headers).status_code == status, role


def test_unknown_infusion_and_patient_are_404s_and_lot_with_patient_is_422(api, infused):
    assert api("/api/v1/fhir/BiologicallyDerivedProductDispense/999999").status_code == 404
    assert api("/api/v1/fhir/Bundle?patient=999999").status_code == 404
    assert api(f"/api/v1/fhir/Bundle?patient={infused['patient_id']}&lot=1").status_code == 422
