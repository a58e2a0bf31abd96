"""Set-up for the custody and bedside tests: a released lot's bag prescribed (signed) to an enrolled patient,
dispatched, received on the ward and thawed, through the services; and the signed label token of a bag."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from mscbatch.core.label_token import make_token
from mscbatch.custody import bedside, handover
from mscbatch.lots.models import Bag
from mscbatch.patients import prescriptions
from tests.conftest import PASSWORD, TEST_CONFIG
from tests.integration.patient_factories import donor, lot_with_bags, patient, user

KEY = TEST_CONFIG["LABEL_KEY"]


def token_of(bag: Bag) -> str:
    return make_token(bag.din + bag.check_character, KEY)


@dataclass
class Ward:
    bag_id: int
    other_bag_ids: list[int]
    patient_id: int
    wristband: str
    token: str
    lot_id: int
    donor_id: int


def prescribed_bag(session: Any, *, state: str = "thawed", product: str = "UC-MSC", code: str = "",
                   donor_row: Any = None, last: bool = False, volume_ml: str = "25") -> Ward:
    """A bag of a released lot, allocated to a new enrolled patient by a signed prescription, then carried
    to `state` (allocated, dispatched, received or thawed). The lot's donor is a new approved one, or
    `donor_row` (one screened and approved by QA, when a test needs the donor's real decisions). The bag carried
    is the first allocated, or with `last` the last one: 62.5 kg at 2 x10^6/kg from three 50 x10^6 bags of 25 mL
    draws 12.5 mL of it (a partial dose)."""
    tech, clin, nurse = user(session, "technician"), user(session, "clinician"), user(session, "nurse")
    made = lot_with_bags(session, tech, donor_row or donor(session, tech), product=product, volume_ml=volume_ml)
    lot_id, donor_id = made[0].lot_id, None
    row = patient(session, clin, code=code)
    prescriptions.prescribe(session, clin, PASSWORD, row.id)
    allocated = list(session.scalars(select(Bag).where(Bag.lot_id == lot_id, Bag.status == "allocated")
                                     .order_by(Bag.id)))
    bag = allocated[-1] if last else allocated[0]
    from mscbatch.lots.models import Lot

    donor_id = session.get(Lot, lot_id).donor_id
    if state in ("dispatched", "received", "thawed"):
        handover.dispatch(session, tech, bag.id, courier="Fast Courier", shipper="Dry shipper DS-3",
                          temperature_logger_id="TL-0042", location="Cell therapy unit")
    if state in ("received", "thawed"):
        handover.receive(session, nurse, bag.id, location="Ward 3", scan=token_of(bag))
    if state == "thawed":
        handover.thaw(session, nurse, bag.id, location="Ward 3", scan=token_of(bag))
    return Ward(bag.id, [b.id for b in allocated if b.id != bag.id], row.id, row.wristband_id, token_of(bag), lot_id, donor_id)


def ward_bag(app: Any, **kwargs: Any) -> Ward:
    """prescribed_bag(**kwargs) written in a session of its own, closed before the test's client requests (the
    db_session fixture would hold SQLite's write lock)."""
    with app.extensions["mscbatch.db"].new_session() as session:
        return prescribed_bag(session, **kwargs)


def check(session: Any, ward: Ward, *, wristband: str | None = None, token: str | None = None,
          as_user: str = "nurse") -> Any:
    return bedside.bedside_check(session, user(session, as_user), wristband=ward.wristband if wristband is None
                                 else wristband, bag_scan=ward.token if token is None else token, label_key=KEY)


def checked_and_confirmed(session: Any, ward: Ward) -> int:
    result = check(session, ward)
    assert result.matches, result.failures
    bedside.confirm_second_person(session, user(session, "nurse"), result.check_id, username="nurse2",
                                  password=PASSWORD, checker_password=PASSWORD, label_key=KEY)
    return result.check_id
