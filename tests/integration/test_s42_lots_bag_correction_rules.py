"""A correction of a bag's content is held to the product's rules its cryopreservation applies (lots.bags.
check_bag_content): viable cells per mL inside the product's cryopreservation.cells_per_ml range (AT-MSC: 0.5 to
50 x10^6/mL, config/products.toml), and no 0 % DMSO for a product frozen with DMSO or a lot with a DMSO lot
recorded. A technician could "correct" a bag to 400 x10^6 cells per mL or to 0 % DMSO. Through the lot page, on
SQLite and PostgreSQL: every problem at once, each on its field, naming the bag; nothing written."""
from __future__ import annotations

import html
import re
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.errors import ValidationFailed
from mscbatch.lots.corrections import correct_bag_content
from mscbatch.lots.models import Bag, Lot
from tests.integration.lot_factories import M, approved_adipose_donor, cryopreserved_lot, user
from tests.integration.test_donors import db_session  # noqa: F401 (fixture)

REASON = "cells per mL copied from the wrong line of the counting sheet"
RANGE = ("is outside 0.5 x10^6 to 50 x10^6 per mL, the range for Adipose tissue MSC (AT-MSC) bags (the site's "
         "cryopreservation.cells_per_ml). Check the count for a typing error (a factor of 10 or 1000); the doses are "
         "calculated from it.")


def _text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def _errors(text: str, field_id: str) -> list[str]:
    return re.findall(rf'id="{re.escape(field_id)}-error">([^<]*)<', text)


def _fix(bag_id: int, volume: str = "20", cells: str = "1", dmso: str = "10") -> dict[str, str]:
    return {"bagfix-bag_id": str(bag_id), "bagfix-volume_ml": volume, "bagfix-cells_per_ml": cells,
            "bagfix-dmso_percent": dmso, "bagfix-reason": REASON}


def _state(session: Any, lot_id: int) -> tuple[list[tuple[Any, ...]], int]:
    session.expire_all()
    bags = [(b.volume_ml, b.cells_per_ml, b.total_cells, b.dmso_percent)
            for b in session.scalars(select(Bag).where(Bag.lot_id == lot_id).order_by(Bag.bag_number))]
    events = int(session.scalar(select(func.count()).select_from(AuditEvent)))
    session.rollback()
    return bags, events


def _frozen(session: Any) -> tuple[int, list[int]]:
    """4 bags of 20 mL x 1 x10^6/mL at 10 % DMSO, the lot's DMSO lot recorded (AT-MSC is frozen with DMSO too)."""
    lot_id, made = cryopreserved_lot(session, approved_adipose_donor(session), 4, with_reagents=True)
    ids = [b.id for b in made]
    session.commit()
    return lot_id, ids


def test_a_bag_corrected_to_400_million_cells_per_ml_is_refused_on_its_field(app, users, db_session,  # noqa: F811
                                                                             client_as):
    lot_id, bag_ids = _frozen(db_session)
    tech = client_as("technician")  # signed in first: the sign-in is audited
    before = _state(db_session, lot_id)
    refused = tech.post(f"/lots/{lot_id}/bags/correction", data=_fix(bag_ids[1], cells="400"))
    text = _text(refused)
    assert refused.status_code == 422, text
    assert _errors(text, "bagfix-cells_per_ml") == [f"Bag 2: viable cells per mL 400 x10^6 {RANGE}"], text
    assert _errors(text, "bagfix-dmso_percent") == [] and _errors(text, "bagfix-volume_ml") == []
    assert _state(db_session, lot_id) == before
    # below the range too (a factor 1000 the other way)
    low = tech.post(f"/lots/{lot_id}/bags/correction", data=_fix(bag_ids[1], cells="0.004"))
    assert low.status_code == 422
    assert _errors(_text(low), "bagfix-cells_per_ml") == [f"Bag 2: viable cells per mL 0.004 x10^6 {RANGE}"]
    assert _state(db_session, lot_id) == before


def test_a_bag_corrected_to_0_percent_dmso_is_refused_on_its_field(app, users, db_session, client_as):  # noqa: F811
    lot_id, bag_ids = _frozen(db_session)
    lot_number = db_session.get(Lot, lot_id).lot_number
    db_session.rollback()
    tech = client_as("technician")
    before = _state(db_session, lot_id)
    refused = tech.post(f"/lots/{lot_id}/bags/correction", data=_fix(bag_ids[2], dmso="0"))
    text = _text(refused)
    assert refused.status_code == 422, text
    assert _errors(text, "bagfix-dmso_percent") == [
        f"Bag 3: DMSO 0 %, but a DMSO lot is recorded for lot {lot_number}: give the DMSO % the bag was frozen with "
        "(e.g. 10 %). A bag holding DMSO is traced to its DMSO lot, and the DMSO per kg of a dose is counted from "
        "it."], text
    assert _state(db_session, lot_id) == before


def test_every_problem_of_a_bag_correction_is_said_at_once(app, users, db_session, client_as):  # noqa: F811
    lot_id, bag_ids = _frozen(db_session)
    tech = client_as("technician")
    before = _state(db_session, lot_id)
    refused = tech.post(f"/lots/{lot_id}/bags/correction", data=_fix(bag_ids[0], volume="5000", cells="400", dmso="0"))
    text = _text(refused)
    assert refused.status_code == 422, text
    assert _errors(text, "bagfix-volume_ml") == ["Bag 1: volume between 0.1 and 1000 mL."], text
    assert _errors(text, "bagfix-cells_per_ml") == [f"Bag 1: viable cells per mL 400 x10^6 {RANGE}"], text
    assert len(_errors(text, "bagfix-dmso_percent")) == 1 and "Bag 1: DMSO 0 %" in text
    assert _state(db_session, lot_id) == before

    # the service alone (the API's and any caller's path) says them together too, each on its field
    try:
        correct_bag_content(db_session, user(db_session, "technician"), lot_id, bag_ids[0], volume_ml=Decimal(5000),
                            cells_per_ml=400 * M, dmso_percent=Decimal(0), reason=REASON)
    except ValidationFailed as error:
        assert set(error.errors) == {"volume_ml", "cells_per_ml", "dmso_percent"}, error.errors
    else:
        raise AssertionError("the correction was accepted")
    assert _state(db_session, lot_id) == before


def test_a_valid_correction_inside_the_range_is_still_made(app, users, db_session, client_as):  # noqa: F811
    lot_id, bag_ids = _frozen(db_session)
    done = client_as("technician").post(f"/lots/{lot_id}/bags/correction", data=_fix(bag_ids[0], cells="0.5",
                                                                                       dmso="7.5"))
    assert done.status_code == 302, _text(done)
    bags, _events = _state(db_session, lot_id)
    assert bags[0] == (Decimal("20.00"), 500_000, 10 * M, Decimal("7.50"))


def test_a_value_kept_as_recorded_is_not_judged_again(app, users, db_session, client_as):  # noqa: F811
    """A bag frozen before the product's range existed (written here directly, as an older version stored it) stays
    correctable for its volume; its cells per mL, kept as recorded, is not refused."""
    lot_id, bag_ids = _frozen(db_session)
    with use_case(db_session, user(db_session, "technician"), "frozen before the cells per mL range"):
        bag = db_session.get(Bag, bag_ids[0])
        bag.volume_ml, bag.cells_per_ml, bag.total_cells = Decimal("0.3"), 60 * M, 18 * M
    done = client_as("technician").post(f"/lots/{lot_id}/bags/correction",
                                        data=_fix(bag_ids[0], volume="0.25", cells="60"))
    assert done.status_code == 302, _text(done)
    bags, _events = _state(db_session, lot_id)
    assert bags[0] == (Decimal("0.25"), 60 * M, 15 * M, Decimal("10.00"))
    # changing it to another value outside the range is judged
    refused = client_as("technician").post(f"/lots/{lot_id}/bags/correction",
                                           data=_fix(bag_ids[0], volume="0.25", cells="70"))
    assert refused.status_code == 422
    assert _errors(_text(refused), "bagfix-cells_per_ml") == [f"Bag 1: viable cells per mL 70 x10^6 {RANGE}"]
