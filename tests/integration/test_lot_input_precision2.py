"""Lot input with more decimals than its column keeps, continued (test_lot_input_precision: bag volume, DMSO %,
tissue amount): a harvest or passage viability (Numeric(5, 2): 95.555 % was kept as 95.56, and the viable cells
computed from it), days in culture (Numeric(5, 1): 4.25 days kept as 4.2) and a freezer's or tank's storage
temperature (Numeric(6, 1): -149.96 °C kept as -150.0, so the tank took bags that must be kept at -150 °C or
colder). On every path (the lot and storage pages, the corrections, the JSON API) each is refused with a message
naming the field and giving an example; the page shows it next to the field with the typed value kept, answers
422 and writes nothing. A number with at most as many decimals (trailing zeros aside) is kept as typed."""
from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.errors import ValidationFailed
from mscbatch.lots import corrections, steps, storage
from mscbatch.lots.models import Lot, ProcessStep, StorageLocation
from tests.conftest import api_token_for
from tests.integration.lot_factories import (
    TODAY,
    M,
    approved_adipose_donor,
    at,
    harvested_lot,
    passages,
    start_lot,
)
from tests.integration.test_donors import db_session, user  # noqa: F401 (fixture)

VIABILITY_WORDS = "Viability: at most 2 decimals (e.g. 92.55 %)."
DAYS_WORDS = "Days in culture: at most 1 decimal (e.g. 6.5)."
TEMPERATURE_WORDS = "Storage temperature: at most 1 decimal (e.g. -135.5 °C)."


def _read(session: Any, read: Any) -> Any:
    """A value read in a transaction of its own (ended: an open read would hold SQLite's lock)."""
    session.rollback()
    session.expire_all()
    try:
        return read()
    finally:
        session.rollback()


def _passage_rows(session: Any, lot_id: int) -> list[tuple[Any, ...]]:
    return _read(session, lambda: [
        (s.passage_number, s.viability_percent, s.days_in_culture) for s in session.scalars(
            select(ProcessStep).where(ProcessStep.lot_id == lot_id, ProcessStep.kind == "passage")
            .order_by(ProcessStep.passage_number))])


def _harvest_row(session: Any, lot_id: int) -> tuple[Any, ...]:
    def read() -> tuple[Any, ...]:
        lot = session.get(Lot, lot_id)
        return lot.harvested_at, lot.harvest_viability_percent, lot.harvest_viable_cells
    return _read(session, read)


def _locations(session: Any) -> int:
    return _read(session, lambda: session.scalar(select(func.count()).select_from(StorageLocation)))


def _next_to_the_field(html: str, field_id: str, words: str, typed: str) -> None:
    """The message in the field's own error line, and the field still holding what was typed."""
    assert f'id="{field_id}-error">{words}</p>' in html, html[:3000]
    tag = next(t for t in re.findall(r"<input[^>]*>", html) if f'id="{field_id}"' in t)
    assert f'value="{typed}"' in tag and 'aria-invalid="true"' in tag, tag


def _isolated_lot(session: Any) -> int:
    """A lot collected 20 days ago at 09:00, its isolation recorded that day: P0 is next."""
    lot_id = start_lot(session, approved_adipose_donor(session))
    steps.record_isolation(session, user(session, "technician"), lot_id, performed_on=TODAY - timedelta(days=20))
    session.commit()
    return lot_id


def _lot_after_p1(session: Any) -> int:
    lot_id = start_lot(session, approved_adipose_donor(session))
    passages(session, lot_id, [(2 * M, 16 * M), (4 * M, 30 * M)])
    session.commit()
    return lot_id


def _p0_details(viability: str, days: str | None) -> steps.PassageDetails:
    return steps.PassageDetails(passage_number=0, performed_on=TODAY - timedelta(days=16), seeded_cells=2 * M,
                                harvested_cells=16 * M, viability_percent=viability, days_in_culture=days)


# -- the services, which every path goes through ------------------------------------------------------------------

@pytest.mark.parametrize(("viability", "days", "field", "words"), [
    ("95.555", "4", "viability_percent", VIABILITY_WORDS),
    ("95.5050", "4", "viability_percent", VIABILITY_WORDS),  # 4 decimals, the last a zero: still 3 that count
    ("0.001", "4", "viability_percent", VIABILITY_WORDS),    # was kept as 0.00 %
    ("95", "4.25", "days_in_culture", DAYS_WORDS),
    ("95", "0.04", "days_in_culture", DAYS_WORDS),           # was rounded to 0.0 and refused as "more than 0"
])
def test_a_passage_viability_or_days_with_too_many_decimals_is_refused(app, users, db_session, viability,  # noqa: F811
                                                                        days, field, words):
    lot_id = _isolated_lot(db_session)
    with pytest.raises(ValidationFailed) as refused:
        steps.record_passage(db_session, user(db_session, "technician"), lot_id, _p0_details(viability, days))
    assert (refused.value.field, refused.value.message) == (field, words)
    assert _passage_rows(db_session, lot_id) == []


def test_a_harvest_viability_with_three_decimals_is_refused(app, users, db_session):  # noqa: F811
    lot_id = _lot_after_p1(db_session)
    with pytest.raises(ValidationFailed) as refused:
        steps.record_harvest(db_session, user(db_session, "technician"), lot_id, harvested_at=at(TODAY, 8),
                             total_cells=30 * M, viability_percent="95.555")
    assert (refused.value.field, refused.value.message) == ("viability_percent", VIABILITY_WORDS)
    assert _harvest_row(db_session, lot_id) == (None, None, None)


def test_a_storage_temperature_with_two_decimals_is_refused(app, users, db_session):  # noqa: F811
    tech = user(db_session, "technician")
    site = storage.create_location(db_session, tech, kind="site", name="Unit")
    db_session.commit()
    before = _locations(db_session)
    for kind, typed in (("tank", "-149.96"), ("freezer", "-80.05")):
        with pytest.raises(ValidationFailed) as refused:
            storage.create_location(db_session, tech, kind=kind, name=f"{kind} 1", parent_id=site.id,
                                    temperature_max_c=Decimal(typed))
        assert (refused.value.field, refused.value.message) == ("temperature_max_c", TEMPERATURE_WORDS)
    assert _locations(db_session) == before


# -- the lot page -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "typed", "words"), [
    ("viability_percent", "95.555", VIABILITY_WORDS),
    ("days_in_culture", "4.25", DAYS_WORDS),
])
def test_a_passage_typed_with_too_many_decimals_is_refused_next_to_the_field(app, users, db_session,  # noqa: F811
                                                                             client_as, name, typed, words):
    lot_id = _isolated_lot(db_session)
    form = {"passage-passage_number": "0", "passage-performed_on": (TODAY - timedelta(days=16)).isoformat(),
            "passage-seeded_cells": "2", "passage-harvested_cells": "16", "passage-viability_percent": "95.5",
            "passage-days_in_culture": "4.5", f"passage-{name}": typed}
    tech = client_as("technician")
    answer = tech.post(f"/lots/{lot_id}/passages", data=form)
    assert answer.status_code == 422, answer.status_code
    _next_to_the_field(answer.get_data(as_text=True), f"passage-{name}", words, typed)
    assert _passage_rows(db_session, lot_id) == []
    # as many decimals as the column keeps, trailing zeros aside: kept as typed
    kept = tech.post(f"/lots/{lot_id}/passages", data={**form, "passage-viability_percent": "95.50",
                                                       "passage-days_in_culture": "4.50"})
    assert kept.status_code == 302, kept.get_data(as_text=True)[:3000]
    assert _passage_rows(db_session, lot_id) == [(0, Decimal("95.5"), Decimal("4.5"))]


def test_a_harvest_viability_with_three_decimals_is_refused_next_to_the_field(app, users, db_session,  # noqa: F811
                                                                              client_as):
    lot_id = _lot_after_p1(db_session)
    form = {"harvest-harvested_at": f"{TODAY.isoformat()}T08:00", "harvest-total_cells": "30",
            "harvest-viability_percent": "95.555"}
    tech = client_as("technician")
    answer = tech.post(f"/lots/{lot_id}/harvest", data=form)
    assert answer.status_code == 422, answer.status_code
    _next_to_the_field(answer.get_data(as_text=True), "harvest-viability_percent", VIABILITY_WORDS, "95.555")
    assert _harvest_row(db_session, lot_id) == (None, None, None)
    assert tech.post(f"/lots/{lot_id}/harvest", data={**form, "harvest-viability_percent": "95.55"}).status_code == 302
    assert _harvest_row(db_session, lot_id)[1:] == (Decimal("95.55"), 28_665_000)  # 30 x10^6 x 95.55 %


# -- the corrections ----------------------------------------------------------------------------------------------

def test_a_harvest_correction_with_three_decimals_is_refused_next_to_the_field(app, users, db_session,  # noqa: F811
                                                                               client_as):
    lot_id = harvested_lot(db_session, approved_adipose_donor(db_session))  # 100 x10^6 cells at 90 %
    db_session.commit()
    recorded = _harvest_row(db_session, lot_id)
    tech = client_as("technician")
    answer = tech.post(f"/lots/{lot_id}/harvest/correction", data={
        "harvestfix-harvested_at": f"{TODAY.isoformat()}T08:00", "harvestfix-total_cells": "100",
        "harvestfix-viability_percent": "95.555", "harvestfix-reason": "95.555 read as 90"})
    assert answer.status_code == 422, answer.status_code
    html = answer.get_data(as_text=True)
    _next_to_the_field(html, "harvestfix-viability_percent", VIABILITY_WORDS, "95.555")
    assert '<details class="correction" id="harvest-fix" open>' in html
    assert _harvest_row(db_session, lot_id) == recorded
    with pytest.raises(ValidationFailed) as refused:  # the service itself, as any other caller reaches it
        corrections.correct_harvest(db_session, user(db_session, "technician"), lot_id, harvested_at=at(TODAY, 8),
                                    total_cells=100 * M, viability_percent=Decimal("95.555"), reason="typo")
    assert (refused.value.field, refused.value.message) == ("viability_percent", VIABILITY_WORDS)
    assert _harvest_row(db_session, lot_id) == recorded


@pytest.mark.parametrize(("name", "typed", "words"), [
    ("viability_percent", "95.555", VIABILITY_WORDS),
    ("days_in_culture", "4.25", DAYS_WORDS),
])
def test_a_passage_correction_with_too_many_decimals_is_refused_next_to_the_field(app, users, db_session,  # noqa: F811
                                                                                  client_as, name, typed, words):
    lot_id = _lot_after_p1(db_session)
    recorded = _passage_rows(db_session, lot_id)
    p0, day = _read(db_session, lambda: db_session.execute(select(ProcessStep.id, ProcessStep.performed_on).where(
        ProcessStep.lot_id == lot_id, ProcessStep.passage_number == 0)).one())
    form = {f"fix{p0}-performed_on": day.isoformat(), f"fix{p0}-seeded_cells": "2",
            f"fix{p0}-harvested_cells": "16", f"fix{p0}-viability_percent": "95",
            f"fix{p0}-days_in_culture": "4", f"fix{p0}-{name}": typed, f"fix{p0}-reason": "typo"}
    answer = client_as("technician").post(f"/lots/{lot_id}/passages/{p0}/correction", data=form)
    assert answer.status_code == 422, answer.status_code
    html = answer.get_data(as_text=True)
    _next_to_the_field(html, f"fix{p0}-{name}", words, typed)
    assert f'<details class="correction" id="fix-{p0}" open>' in html
    assert _passage_rows(db_session, lot_id) == recorded
    details = steps.PassageDetails(passage_number=None, performed_on=day, seeded_cells=2 * M,
                                   harvested_cells=16 * M, viability_percent=form[f"fix{p0}-viability_percent"],
                                   days_in_culture=form[f"fix{p0}-days_in_culture"])
    with pytest.raises(ValidationFailed) as refused:
        corrections.correct_passage(db_session, user(db_session, "technician"), lot_id, p0, details, "typo")
    assert (refused.value.field, refused.value.message) == (name, words)
    assert _passage_rows(db_session, lot_id) == recorded


# -- the storage page ---------------------------------------------------------------------------------------------

def test_a_storage_temperature_with_two_decimals_is_refused_next_to_the_field(app, users, db_session,  # noqa: F811
                                                                              client_as):
    site = storage.create_location(db_session, user(db_session, "technician"), kind="site", name="Unit")
    db_session.commit()
    site_id, before = site.id, _locations(db_session)
    form = {"kind": "tank", "name": "LN2 tank 2", "parent_id": str(site_id), "temperature_max_c": "-149.96"}
    tech = client_as("technician")
    answer = tech.post("/storage/new", data=form)
    assert answer.status_code == 422, answer.status_code
    _next_to_the_field(answer.get_data(as_text=True), "temperature_max_c", TEMPERATURE_WORDS, "-149.96")
    assert _locations(db_session) == before
    assert tech.post("/storage/new", data={**form, "temperature_max_c": "-150.0"}).status_code == 302
    assert _read(db_session, lambda: db_session.scalar(select(StorageLocation.temperature_max_c).where(
        StorageLocation.name == "LN2 tank 2"))) == Decimal("-150")


# -- the JSON API -------------------------------------------------------------------------------------------------

def _bearer(app: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token_for(app, 'technician')}"}


@pytest.mark.parametrize(("name", "typed", "words"), [
    ("viability_percent", "96.555", VIABILITY_WORDS),
    ("days_in_culture", "6.05", DAYS_WORDS),
])
def test_the_api_refuses_a_passage_with_too_many_decimals(app, users, db_session, name, typed, words):  # noqa: F811
    lot_id = _isolated_lot(db_session)
    body = {"passage_number": 0, "performed_on": (TODAY - timedelta(days=13)).isoformat(), "seeded_cells": 2 * M,
            "harvested_cells": 16 * M, "viability_percent": "96.5", "days_in_culture": "6", name: typed}
    answer = app.test_client().post(f"/api/v1/lots/{lot_id}/passages", headers=_bearer(app), json=body)
    assert answer.status_code == 422, answer.get_json()
    assert answer.get_json()["detail"] == words and answer.get_json()["errors"] == {name: [words]}
    assert _passage_rows(db_session, lot_id) == []


def test_the_api_refuses_a_harvest_viability_with_three_decimals(app, users, db_session):  # noqa: F811
    lot_id = _lot_after_p1(db_session)
    answer = app.test_client().post(f"/api/v1/lots/{lot_id}/harvest", headers=_bearer(app), json={
        "harvested_at": f"{TODAY.isoformat()}T08:00:00+00:00", "total_cells": 30 * M, "viability_percent": 95.555})
    assert answer.status_code == 422, answer.get_json()
    assert answer.get_json()["errors"] == {"viability_percent": [VIABILITY_WORDS]}
    assert _harvest_row(db_session, lot_id) == (None, None, None)


def test_the_api_refuses_a_storage_temperature_with_two_decimals(app, users, db_session):  # noqa: F811
    site = storage.create_location(db_session, user(db_session, "technician"), kind="site", name="Unit")
    db_session.commit()
    site_id, before = site.id, _locations(db_session)
    answer = app.test_client().post("/api/v1/storage", headers=_bearer(app), json={
        "kind": "tank", "name": "LN2 tank 2", "parent_id": site_id, "temperature_max_c": "-149.96"})
    assert answer.status_code == 422, answer.get_json()
    assert answer.get_json()["errors"] == {"temperature_max_c": [TEMPERATURE_WORDS]}
    assert _locations(db_session) == before
