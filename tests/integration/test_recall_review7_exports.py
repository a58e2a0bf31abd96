"""Review 7, exports, on both databases: the FHIR BiologicallyDerivedProduct of a bag the bedside check refuses
whatever the patient (its donor reopened by new information, expired, on hold) is "unavailable", as the label
verification page says DO NOT USE, not "available"; the evidence bundle masks a wristband scanned in another case
or spacing than the one registered (the bedside reads it so), not only its registered spelling."""
from __future__ import annotations

import io
import zipfile
from datetime import timedelta

from mscbatch.audit.context import use_case
from mscbatch.custody import infusions
from mscbatch.database import utcnow
from mscbatch.donors import decisions
from mscbatch.donors.models import Donor
from mscbatch.lots.models import Bag
from mscbatch.recall.models import BagHold, Recall
from tests.conftest import PASSWORD, api_token_for
from tests.integration.lot_factories import approved_adipose_donor
from tests.integration.patient_factories import donor, lot_with_bags, user
from tests.integration.test_custody_support import KEY, check, prescribed_bag


def fhir(app, url: str):  # type: ignore[no-untyped-def]
    token = api_token_for(app, "nurse")
    return app.test_client().get(url, headers={"Authorization": f"Bearer {token}"}).get_json()


def product_status(app, bag_id: int) -> str:  # type: ignore[no-untyped-def]
    return fhir(app, f"/api/v1/fhir/BiologicallyDerivedProduct/{bag_id}")["productStatus"]["code"]


def hold(session, qa, bag) -> None:  # type: ignore[no-untyped-def]
    """An active hold on a bag of a released lot, written directly: every page and export must read the hold
    itself, whatever the lot's state says."""
    with use_case(session, qa, "test set-up: an active hold on a bag of a released lot"):
        recall = Recall(scope="lot", lot_id=bag.lot_id, reason="test", status="active", started_by_id=qa.id)
        session.add(recall)
        session.flush()
        session.add(BagHold(recall_id=recall.id, bag_id=bag.id, bag_status_at_hold="stored"))
    session.commit()


def test_a_bag_of_a_donor_reopened_by_new_information_is_not_exported_available(app, users):
    session = app.extensions["mscbatch.db"].new_session()
    donor_id = approved_adipose_donor(session)
    bags = lot_with_bags(session, user(session, "technician"), session.get(Donor, donor_id), bags=2)
    session.commit()
    bag_id, lot_id = bags[0].id, bags[0].lot_id
    session.close()
    assert product_status(app, bag_id) == "available"
    session = app.extensions["mscbatch.db"].new_session()
    decisions.reopen_screening(session, user(session, "qa"), donor_id, "Donor reports hepatitis B in a relative")
    session.close()
    data = fhir(app, f"/api/v1/fhir/BiologicallyDerivedProduct/{bag_id}")
    assert data["productStatus"]["code"] == "unavailable"
    reasons = {p["type"]["text"]: p.get("valueString") for p in data["property"]}["not-usable"]
    assert "reopened the donor" in reasons
    bundle = fhir(app, f"/api/v1/fhir/Bundle?lot={lot_id}")
    assert {e["resource"]["productStatus"]["code"] for e in bundle["entry"]} == {"unavailable"}


def test_an_expired_or_held_bag_of_a_released_lot_is_not_exported_available(app, users):
    session = app.extensions["mscbatch.db"].new_session()
    tech, qa = user(session, "technician"), user(session, "qa")
    expired, held, fine = lot_with_bags(session, tech, donor(session, tech), bags=3)
    with use_case(session, tech, "test set-up: a bag past its expiry, the lot not yet marked expired"):
        session.get(Bag, expired.id).expires_at = utcnow() - timedelta(hours=1)
    # written directly: a released lot's bag under a hold (the FHIR export must read the hold itself, as the label
    # verification page and the bedside check do, whatever the lot's state says)
    hold(session, qa, held)
    ids = expired.id, held.id, fine.id
    session.close()
    assert [product_status(app, bag_id) for bag_id in ids] == ["unavailable", "unavailable", "available"]
    data = fhir(app, f"/api/v1/fhir/BiologicallyDerivedProduct/{ids[1]}")
    assert {p["type"]["text"]: p.get("valueString") for p in data["property"]}["status"] == "on_hold"


def test_the_evidence_bundle_masks_a_wristband_scanned_in_lower_case_and_spaced(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    ward = prescribed_bag(session, state="thawed")
    typed = ward.wristband.lower().replace("-", " - ", 1)  # "wb - sle-uc-001": the bedside reads it as the band
    result = check(session, ward, wristband=typed)
    assert result.matches, result.failures
    from mscbatch.custody import bedside

    bedside.confirm_second_person(session, user(session, "nurse"), result.check_id, username="nurse2",
                                  password=PASSWORD, checker_password=PASSWORD, label_key=KEY)
    infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband.lower(),
                             bag_scan=ward.token, label_key=KEY)
    session.close()
    response = client_as("qa").get(f"/bags/{ward.bag_id}/evidence.zip")
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        text = " ".join(archive.read(name).decode("utf-8", "replace") for name in archive.namelist()
                        if name.endswith(".json"))
    for spelling in (ward.wristband, ward.wristband.lower(), typed):
        assert spelling not in text, spelling
    assert "[redacted]" in text


def test_the_bags_csv_says_unusable_what_the_fhir_export_says_unavailable(app, users, client_as):
    import csv

    session = app.extensions["mscbatch.db"].new_session()
    donor_id = approved_adipose_donor(session)
    tech = user(session, "technician")
    reopened = lot_with_bags(session, tech, session.get(Donor, donor_id), bags=1)[0]
    expired, fine = lot_with_bags(session, tech, donor(session, tech), bags=2)
    with use_case(session, tech, "test set-up: a bag past its expiry, the lot not yet marked expired"):
        session.get(Bag, expired.id).expires_at = utcnow() - timedelta(hours=1)
    session.commit()
    dins = {reopened.din: reopened.id, expired.din: expired.id, fine.din: fine.id}
    decisions.reopen_screening(session, user(session, "qa"), donor_id, "Donor reports hepatitis B in a relative")
    session.close()
    rows = csv.DictReader(io.StringIO(client_as("technician").get("/exports/bags.csv").get_data(as_text=True)))
    usable = {row["din"]: row["usable"] for row in rows if row["din"] in dins}
    assert usable == {reopened.din: "false", expired.din: "false", fine.din: "true"}
    for din, bag_id in dins.items():
        assert (usable[din] == "true") == (product_status(app, bag_id) == "available")


def test_the_lot_page_says_on_hold_for_a_held_bag_of_a_released_lot(app, users, client_as):
    """The lot page's bag table read the lot's and the bag's own states only: a bag under an active hold was shown
    "stored", usable, while the exports, the label check and the bedside say it is on hold."""
    session = app.extensions["mscbatch.db"].new_session()
    tech, qa = user(session, "technician"), user(session, "qa")
    held, fine = lot_with_bags(session, tech, donor(session, tech), bags=2)
    hold(session, qa, held)
    lot_id, held_din, fine_din = held.lot_id, held.din, fine.din
    session.close()
    page = client_as("technician").get(f"/lots/{lot_id}").get_data(as_text=True)
    rows = {din: page.split(din, 1)[1].split("</tr>", 1)[0] for din in (held_din, fine_din)}
    assert "the bag is on hold" in rows[held_din]
    assert "the bag is on hold" not in rows[fine_din]
