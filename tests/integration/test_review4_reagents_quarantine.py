"""Review 4, reagent lots before quarantine (DOMAIN.md section 4: the manufacturing record holds the reagent lots
used, medium, platelet lysate or FBS, trypsin, DMSO, because recalls happen by reagent lot too).

A lot went to quarantine, then release, with no reagent lot recorded, not even the DMSO in its bags, so a recall
of a reagent lot could not find it. Now each product lists `required_reagent_types` in config/products.toml
(checked when the file loads), the move to quarantine is refused naming each missing type, bags with DMSO always
need a DMSO lot, and the lot page says what is missing before the technician tries. Through the lot page and
form, the API, the configuration loader, the demo and the scale generator; on SQLite and PostgreSQL."""
from __future__ import annotations

import html
import re
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from mscbatch.core.configfiles import ConfigError
from mscbatch.core.site_config import load_products
from mscbatch.lots import reagents, services
from mscbatch.lots.models import Lot, ProcessStep
from mscbatch.lots.queries import lots_using_reagent, product_catalogue
from mscbatch.lots.reagent_rules import missing_reagent_types
from mscbatch.paths import config_dir
from tests.conftest import api_token_for
from tests.integration.lot_factories import (
    TODAY,
    approved_adipose_donor,
    cryopreserved_lot,
    factory_reagent,
)
from tests.integration.test_donors import db_session, user  # noqa: F401 (fixture)

PRODUCTS = config_dir() / "products.toml"


def _text(response: Any) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


def _status(session: Any, lot_id: int) -> str:
    status = session.get(Lot, lot_id).status
    session.rollback()
    return status


def _steps(session: Any, lot_id: int) -> dict[str, int]:
    found = {s.label: s.id for s in session.scalars(select(ProcessStep).where(ProcessStep.lot_id == lot_id))}
    session.rollback()
    return found


def _link(client: Any, lot_id: int, reagent_id: int, step_id: int, day: Any) -> Any:
    return client.post(f"/lots/{lot_id}/reagents", data={"reagent-reagent_lot_id": reagent_id,
                                                         "reagent-step_id": step_id, "reagent-used_on": day.isoformat()})


def _quarantine(client: Any, lot_id: int) -> Any:
    return client.post(f"/lots/{lot_id}/transition", data={"transition-target": "quarantine",
                                                           "transition-reason": "Cryopreserved and stored"})


def test_quarantine_is_refused_until_every_required_reagent_lot_is_recorded_and_the_page_says_what_is_missing(
        app, users, db_session, client_as):  # noqa: F811
    lot_id, _bags = cryopreserved_lot(db_session, approved_adipose_donor(db_session),  # 10 % DMSO, no reagent
                                      placed=True)
    ids = {kind: factory_reagent(db_session, kind) for kind in ("medium", "trypsin", "dmso")}
    fbs = reagents.register_reagent_lot(db_session, user(db_session, "technician"), reagent_type="fbs",
                                        name="Fetal bovine serum", supplier="SerumCo", lot_number="FBS-77",
                                        expiry_date=TODAY + timedelta(days=200)).id
    steps = _steps(db_session, lot_id)
    tech = client_as("technician")

    page = _text(tech.get(f"/lots/{lot_id}"))  # before trying: the page lists what is missing
    assert ("Still to record: culture medium, platelet lysate or FBS, trypsin, DMSO." in page), page
    assert "Not ready for quarantine: no culture medium, no platelet lysate or FBS, no trypsin, no DMSO recorded" in page
    assert ("Required for Adipose tissue MSC before quarantine: culture medium, platelet lysate or FBS, trypsin, DMSO"
            in page)

    refused = _quarantine(tech, lot_id)
    assert refused.status_code == 409
    words = _text(refused)
    assert ("record the lot's reagent lots before quarantine: no culture medium, no platelet lysate or FBS, no "
            "trypsin, no DMSO recorded" in words), words
    assert _status(db_session, lot_id) == "in_process"

    # medium and FBS (either platelet lysate or FBS will do) at the isolation: trypsin and DMSO still missing
    isolation_day = TODAY - timedelta(days=20)
    for reagent_id in (ids["medium"], fbs):
        assert _link(tech, lot_id, reagent_id, steps["Isolation"], isolation_day).status_code == 302
    refused = _quarantine(tech, lot_id)
    assert refused.status_code == 409
    assert "before quarantine: no trypsin, no DMSO recorded" in _text(refused)
    assert "Still to record: trypsin, DMSO." in _text(tech.get(f"/lots/{lot_id}"))
    assert _status(db_session, lot_id) == "in_process"

    assert _link(tech, lot_id, ids["trypsin"], steps["P0"], isolation_day + timedelta(days=4)).status_code == 302
    refused = _quarantine(tech, lot_id)  # the bags hold 10 % DMSO: the DMSO lot is required
    assert refused.status_code == 409 and "before quarantine: no DMSO recorded" in _text(refused)
    assert _link(tech, lot_id, ids["dmso"], 0, TODAY).status_code == 302
    page = _text(tech.get(f"/lots/{lot_id}"))
    assert "Still to record" not in page and "Not ready for quarantine" not in page

    assert _quarantine(tech, lot_id).status_code == 302
    assert _status(db_session, lot_id) == "quarantine"
    # the recall of the FBS lot now finds the lot (queries.lots_using_reagent: what a reagent recall holds)
    assert lot_id in {lot.id for _use, lot in lots_using_reagent(db_session, fbs)}
    db_session.rollback()


def test_the_api_refuses_quarantine_naming_the_missing_reagent_types(app, users, db_session):  # noqa: F811
    lot_id, _bags = cryopreserved_lot(db_session, approved_adipose_donor(db_session))
    db_session.rollback()
    client = app.test_client()
    answer = client.post(f"/api/v1/lots/{lot_id}/transitions",
                         headers={"Authorization": f"Bearer {api_token_for(app, 'technician')}"},
                         json={"target": "quarantine", "reason": "frozen"})
    assert answer.status_code == 409
    assert ("before quarantine: no culture medium, no platelet lysate or FBS, no trypsin, no DMSO recorded"
            in answer.get_json()["detail"])
    assert _status(db_session, lot_id) == "in_process"


def test_bags_with_dmso_need_a_dmso_lot_even_when_the_product_does_not_list_it() -> None:
    uc = product_catalogue().get("UC-MSC")
    without_dmso = replace(uc, required_reagent_types=(("medium",),))
    bag = SimpleNamespace(dmso_percent=Decimal("7.5"))
    assert missing_reagent_types(without_dmso, {"medium"}, [bag]) == ["DMSO"]
    assert missing_reagent_types(without_dmso, {"medium"}, [SimpleNamespace(dmso_percent=Decimal(0))]) == []
    assert missing_reagent_types(without_dmso, {"medium", "dmso"}, [bag]) == []
    assert missing_reagent_types(uc, {"medium", "platelet_lysate", "trypsin", "dmso"}, [bag]) == []
    assert missing_reagent_types(uc, {"medium", "fbs", "trypsin", "dmso", "other"}, [bag]) == []
    assert missing_reagent_types(uc, {"other"}, []) == ["culture medium", "platelet lysate or FBS", "trypsin", "DMSO"]


def _edited(tmp_path: Path, old: str, new: str) -> Path:
    text = PRODUCTS.read_text()
    assert old in text
    target = tmp_path / "products.toml"
    target.write_text(text.replace(old, new, 1))
    return target


SHIPPED = 'required_reagent_types = ["medium", "platelet_lysate or fbs", "trypsin", "dmso"]'


@pytest.mark.parametrize(("new", "fragment"), [
    ('required_reagent_types = ["medium", "platelet_lysate or serum", "trypsin"]',
     "unknown reagent type 'serum' for product 'UC-MSC'"),
    ('required_reagent_types = ["medium", "other"]', "unknown reagent type 'other' for product 'UC-MSC'"),
    ('required_reagent_types = ["medium", "fbs", "platelet_lysate or fbs"]',
     "reagent type 'fbs' is listed twice for product 'UC-MSC'"),
    ('required_reagent_types = "medium"', "for product 'UC-MSC': expected a list of reagent types"),
    ("", "missing for product 'UC-MSC'"),
])
def test_an_unknown_reagent_type_is_refused_when_the_configuration_loads_naming_file_and_product(
        tmp_path: Path, new: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_products(_edited(tmp_path, SHIPPED, new))
    error = caught.value
    assert error.file.endswith("products.toml") and error.key == "products[0].required_reagent_types"
    assert fragment in error.problem, error.problem


def test_the_shipped_products_require_medium_platelet_lysate_or_fbs_trypsin_and_dmso() -> None:
    for product in load_products(PRODUCTS).products:
        assert product.required_reagent_types == (("medium",), ("platelet_lysate", "fbs"), ("trypsin",), ("dmso",))


def test_every_demo_lot_past_manufacturing_names_its_reagent_lots_and_a_recall_of_the_platelet_lysate_finds_them(
        app):
    from mscbatch.demo import seed_demo
    from mscbatch.lots.models import ReagentLot

    session = app.extensions["mscbatch.db"].new_session()
    try:
        seed_demo(session, hash_profile="fast")
        session.rollback()
        made = list(session.scalars(select(Lot).where(Lot.status != "in_process").order_by(Lot.id)))
        assert len(made) >= 2
        for lot in made:
            assert services.missing_reagents_of(session, lot) == [], lot.lot_number
        hpl = session.scalar(select(ReagentLot.id).where(ReagentLot.lot_number == "HPL-0457"))
        assert {lot.id for _use, lot in lots_using_reagent(session, hpl)} >= {lot.id for lot in made}
    finally:
        session.close()


def test_the_scale_generator_records_the_required_reagent_lots_of_every_lot(app, users):
    result = app.test_cli_runner().invoke(args=["seed-scale", "--bags", "24", "--seed", "5", "--quiet"])
    assert result.exit_code == 0, result.output
    session = app.extensions["mscbatch.db"].new_session()
    try:
        lots = list(session.scalars(select(Lot)))
        assert lots and all(lot.status != "in_process" for lot in lots)
        for lot in lots:
            assert services.missing_reagents_of(session, lot) == [], lot.lot_number
    finally:
        session.close()
