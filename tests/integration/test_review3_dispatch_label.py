"""A bag leaves the unit only wearing its released label (labelling.services.dispatch_label_problem, asked by
custody dispatch): not with the QUARANTINE label printed before release, nor unlabelled; and the bedside check
never tells the right check character of a typed bag number."""
from __future__ import annotations

import html
import io
import re

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from mscbatch.audit.context import use_case
from mscbatch.custody import bedside
from mscbatch.lots.models import Bag, Lot
from mscbatch.patients import prescriptions
from tests.conftest import PASSWORD
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_custody_support import KEY, prescribed_bag, token_of

DISPATCH = {"courier": "Fast Courier", "shipper": "Dry shipper DS-3", "temperature_logger_id": "TL-0042"}


def _prescribed_from_quarantine(app, client_as, labelled: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """A lot labelled (or not) while in quarantine, then released and prescribed: (bag id, its label token)."""
    session = app.extensions["mscbatch.db"].new_session()
    tech, clin = user(session, "technician"), user(session, "clinician")
    lot_id = lot_with_bags(session, tech, donor(session, tech), status="quarantine")[0].lot_id
    session.commit()
    if labelled == "quarantine label":
        pdf = client_as("technician").post(f"/labels/lots/{lot_id}/print", data={"print_format": "lot"}).data
        assert "QUARANTINE" in " ".join((p.extract_text() or "") for p in PdfReader(io.BytesIO(pdf)).pages)
    with use_case(session, user(session, "qa"), "test: QA released the lot"):
        session.get(Lot, lot_id).status = "released"
    session.commit()
    row = patient(session, clin)
    prescriptions.prescribe(session, clin, PASSWORD, row.id)
    bag = session.scalars(select(Bag).where(Bag.lot_id == lot_id, Bag.status == "allocated").order_by(Bag.id)).first()
    bag_id, token = bag.id, token_of(bag)
    session.close()
    return bag_id, token


@pytest.mark.parametrize(("labelled", "words"), [
    ("quarantine label", "its last label was printed in quarantine"),
    ("never labelled", "it was never labelled")])
def test_a_bag_without_its_released_label_does_not_leave_the_unit(app, users, client_as, labelled, words):  # type: ignore[no-untyped-def]
    bag_id, token = _prescribed_from_quarantine(app, client_as, labelled)
    response = client_as("technician").post("/ward/dispatch", data={"bag": token, **DISPATCH})
    said = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 409, said
    assert "cannot leave the unit: Print the bag's released label first" in said and words in said
    session = app.extensions["mscbatch.db"].new_session()
    assert session.get(Bag, bag_id).status == "allocated"  # nothing moved
    session.close()
    # once its released label is printed (a reprint, with its reason), the bag leaves
    client = client_as("technician")
    lot_id = _lot_of(app, bag_id)
    reprint = {"reason": "the lot is released: released label"} if labelled == "quarantine label" else {}
    assert client.post(f"/labels/lots/{lot_id}/print", data={"print_format": "lot", **reprint}).status_code == 200
    assert client.post("/ward/dispatch", data={"bag": token, **DISPATCH}).status_code in (200, 302)
    session = app.extensions["mscbatch.db"].new_session()
    assert session.get(Bag, bag_id).status == "dispatched"
    session.close()


def _lot_of(app, bag_id: int) -> int:  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    try:
        return session.get(Bag, bag_id).lot_id
    finally:
        session.close()


def test_a_typed_bag_number_without_its_check_character_is_not_completed_for_the_nurse(app, users, db_session):  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session, state="received")
    bag = db_session.get(Bag, ward.bag_id)
    result = bedside.bedside_check(db_session, user(db_session, "nurse"), wristband=ward.wristband,
                                   bag_scan=bag.din, label_key=KEY)
    said = " ".join(f.message for f in result.failures)
    assert not result.matches and "Type all 14 characters" in said
    # the check character is not given away ("... N)"), whatever it is: "(DIN)" ends in "N)" too
    assert "should be" not in said and not re.search(rf"\b{bag.check_character}\)", said) and "expected" not in said
