"""A bag's DMSO % is held to its product's range (config/products.toml cryopreservation.dmso_percent, 5 to 10 % for
the shipped products, a site value): DMSO typed 0.1 (a fraction meant as 10 %) was frozen as "DMSO 0.10 %", and
the dose's DMSO per kg, counted from it, came out about 100 times too low. The freezing (web form and API) and a
correction of a bag's content (web form and the service every caller goes through) refuse a DMSO % outside the
range: 422 on the field dmso_percent, naming the bag and the range, and for a value at or below 1 saying it looks
typed as a fraction. Nothing is written by a refusal. SQLite and PostgreSQL."""
from __future__ import annotations

import html
import re
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.core.culture import BagPlan
from mscbatch.errors import ValidationFailed
from mscbatch.lots import bags
from mscbatch.lots.corrections import correct_bag_content
from mscbatch.lots.models import Bag
from tests.conftest import api_token_for
from tests.integration.lot_factories import (
    TODAY,
    M,
    approved_adipose_donor,
    at,
    cryopreserved_lot,
    harvested_lot,
    record_required_reagents,
    user,
)
from tests.integration.test_donors import db_session  # noqa: F401 (fixture)

RANGE = "is outside 5 to 10 %, the range for Adipose tissue MSC (AT-MSC) bags (the site's cryopreservation.dmso_percent)"
FRACTION = "it looks typed as a fraction. Type the percentage, 10 for 10 %"
REASON = "DMSO typed as a fraction on the freezing sheet"


def _text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def _errors(text: str, field_id: str) -> list[str]:
    return re.findall(rf'id="{re.escape(field_id)}-error">([^<]*)<', text)


def _state(session: Any, lot_id: int) -> tuple[list[tuple[Any, ...]], int]:
    session.expire_all()
    rows = [(b.volume_ml, b.cells_per_ml, b.total_cells, b.dmso_percent)
            for b in session.scalars(select(Bag).where(Bag.lot_id == lot_id).order_by(Bag.bag_number))]
    events = int(session.scalar(select(func.count()).select_from(AuditEvent)))
    session.rollback()
    return rows, events


def _cryo_form(dmso: str) -> dict[str, str]:
    """The reviewer's freezing, at the factories' harvest (90 x10^6 viable): 4 bags of 10 mL at 2 x10^6/mL."""
    return {"cryo-frozen_at": f"{TODAY.isoformat()}T09:00", "cryo-bag_count": "4", "cryo-volume_ml": "10",
            "cryo-cells_per_ml": "2", "cryo-dmso_percent": dmso}


def _harvested(session: Any) -> int:
    lot_id = harvested_lot(session, approved_adipose_donor(session))
    record_required_reagents(session, lot_id)  # the DMSO lot too: the 0 % rule is not what refuses here
    session.commit()
    return lot_id


def test_dmso_typed_as_a_fraction_is_refused_at_the_freezing_on_the_web_form(app, users, db_session,  # noqa: F811
                                                                            client_as):
    lot_id = _harvested(db_session)
    tech = client_as("technician")
    before = _state(db_session, lot_id)
    refused = tech.post(f"/lots/{lot_id}/cryopreservation", data=_cryo_form("0.1"))
    text = _text(refused)
    assert refused.status_code == 422, text
    said = _errors(text, "cryo-dmso_percent")
    assert said and said[0] == (f"Bag 1: DMSO 0.1 % {RANGE}: {FRACTION}; the DMSO per kg of a dose is counted "
                                "from it."), said
    assert "DMSO 0.10 %" not in text
    assert _state(db_session, lot_id) == before  # no bag, no audit event
    # above the range: refused naming the range, no fraction said
    high = tech.post(f"/lots/{lot_id}/cryopreservation", data=_cryo_form("15"))
    high_text = _text(high)
    assert high.status_code == 422, high_text
    said = _errors(high_text, "cryo-dmso_percent")
    assert said and said[0].startswith(f"Bag 1: DMSO 15 % {RANGE}. Check the DMSO %"), said
    assert "fraction" not in said[0]
    assert _state(db_session, lot_id) == before
    # inside the range (its ends included): frozen
    done = tech.post(f"/lots/{lot_id}/cryopreservation", data=_cryo_form("5"))
    assert done.status_code == 302, _text(done)
    rows, _events = _state(db_session, lot_id)
    assert [row[3] for row in rows] == [Decimal("5.00")] * 4


def test_dmso_typed_as_a_fraction_is_refused_at_the_freezing_through_the_api(app, users, db_session):  # noqa: F811
    lot_id = _harvested(db_session)
    api = app.test_client()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'technician')}"}
    before = _state(db_session, lot_id)

    def freeze(dmso: str) -> Any:
        return api.post(f"/api/v1/lots/{lot_id}/cryopreservation", headers=headers, json={
            "frozen_at": at(TODAY, 9).isoformat(),
            "bags": [{"volume_ml": "10", "cells_per_ml": 2 * M, "dmso_percent": "10"},
                     {"volume_ml": "10", "cells_per_ml": 2 * M, "dmso_percent": dmso}]})

    refused = freeze("0.1")
    body = refused.get_json()
    assert refused.status_code == 422, body
    assert body["errors"]["dmso_percent"] == [f"Bag 2: DMSO 0.1 % {RANGE}: {FRACTION}; the DMSO per kg of a dose is "
                                              "counted from it."], body
    assert _state(db_session, lot_id) == before
    refused = freeze("10.5")
    assert refused.status_code == 422, refused.get_json()
    assert refused.get_json()["errors"]["dmso_percent"][0].startswith(f"Bag 2: DMSO 10.5 % {RANGE}.")
    assert _state(db_session, lot_id) == before
    done = freeze("7.5")
    assert done.status_code == 201, done.get_json()
    assert [Decimal(bag["dmso_percent"]) for bag in done.get_json()] == [Decimal(10), Decimal("7.5")]


def test_a_bag_corrected_to_a_fraction_of_dmso_is_refused_on_the_web_form(app, users, db_session,  # noqa: F811
                                                                         client_as):
    lot_id, made = cryopreserved_lot(db_session, approved_adipose_donor(db_session), 4, with_reagents=True)
    bag_ids = [bag.id for bag in made]
    db_session.commit()
    tech = client_as("technician")
    before = _state(db_session, lot_id)
    refused = tech.post(f"/lots/{lot_id}/bags/correction", data={
        "bagfix-bag_id": str(bag_ids[2]), "bagfix-volume_ml": "", "bagfix-cells_per_ml": "",
        "bagfix-dmso_percent": "0.05", "bagfix-reason": REASON})
    text = _text(refused)
    assert refused.status_code == 422, text
    assert _errors(text, "bagfix-dmso_percent") == [
        f"Bag 3: DMSO 0.05 % {RANGE}: it looks typed as a fraction. Type the percentage, 5 for 5 %; the DMSO "
        "per kg of a dose is counted from it."], text
    assert _state(db_session, lot_id) == before
    done = tech.post(f"/lots/{lot_id}/bags/correction", data={
        "bagfix-bag_id": str(bag_ids[2]), "bagfix-volume_ml": "", "bagfix-cells_per_ml": "",
        "bagfix-dmso_percent": "7.5", "bagfix-reason": REASON})
    assert done.status_code == 302, _text(done)
    rows, _events = _state(db_session, lot_id)
    assert rows[2][3] == Decimal("7.50")


def test_a_bag_correction_outside_the_range_is_refused_by_the_service(app, users, db_session):  # noqa: F811
    """No API route corrects a bag's content: the service is the path every caller takes (the page above too)."""
    lot_id, made = cryopreserved_lot(db_session, approved_adipose_donor(db_session), 2, with_reagents=True)
    bag_id = made[1].id
    db_session.commit()
    before = _state(db_session, lot_id)
    for dmso, words in ((Decimal("0.1"), f"Bag 2: DMSO 0.1 % {RANGE}: {FRACTION}"),
                        (Decimal(1), f"Bag 2: DMSO 1 % {RANGE}: it looks typed as a fraction"),
                        (Decimal(12), f"Bag 2: DMSO 12 % {RANGE}. Check the DMSO %")):
        try:
            correct_bag_content(db_session, user(db_session, "technician"), lot_id, bag_id, volume_ml=None,
                                cells_per_ml=None, dmso_percent=dmso, reason=REASON)
        except ValidationFailed as error:
            assert error.status == 422 and error.field == "dmso_percent", (error.status, error.field)
            assert words in str(error), str(error)
        else:
            raise AssertionError(f"a bag was corrected to {dmso} % DMSO")
        db_session.rollback()
        assert _state(db_session, lot_id) == before


def test_the_freezing_service_refuses_a_fraction_even_without_a_dmso_lot_recorded(
        app, users, db_session):  # noqa: F811
    lot_id = harvested_lot(db_session, approved_adipose_donor(db_session))
    db_session.commit()
    try:
        bags.cryopreserve(db_session, user(db_session, "technician"), lot_id, frozen_at=at(TODAY, 9),
                          bags=[BagPlan(volume_ml=Decimal(25), cells_per_ml=2 * M, dmso_percent=Decimal("0.1"))])
    except ValidationFailed as error:
        assert error.field == "dmso_percent" and f"Bag 1: DMSO 0.1 % {RANGE}: {FRACTION}" in str(error), str(error)
    else:
        raise AssertionError("a bag at 0.1 % DMSO was frozen")
    db_session.rollback()
    assert _state(db_session, lot_id)[0] == []
