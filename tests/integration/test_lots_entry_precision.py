"""What the lot page records reads back as typed (ALCOA: accurate), and a bag's content is corrected one value at a
time, through the lot page's forms.

1. A cell count typed in x10^6 that the record would show otherwise is refused: passage P2's harvested cells typed
   90.004 were kept as 90 004 000 cells (the PD computed from them) while the passage table, the release review and
   the certificate showed "90 x10^6" (culture.format_cells: 2 decimals, 2 significant figures below 0.01 x10^6).
   Now 422 naming the field and the rule, nothing written; 90.01 is kept and shown "90.01 x10^6". A count filled
   into a correction form and sent back unchanged is not judged again (it may come from the API in whole cells).
2. "Correct a bag's content": a value left blank is kept as recorded, so a volume alone is corrected without
   retyping the cells per mL and the DMSO % (the form opened from its summary, the bag chosen in the select, is
   empty: it was refused "Give the cells per mL", "Give the DMSO percentage"); all blank is "Nothing changed".
"""
from __future__ import annotations

import html
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.errors import ValidationFailed
from mscbatch.lots import steps
from mscbatch.lots.models import Bag, ProcessStep
from mscbatch.lots.views import millions
from tests.integration.lot_factories import (
    TODAY,
    M,
    approved_adipose_donor,
    cryopreserved_lot,
    passages,
    start_lot,
)
from tests.integration.test_donors import db_session, user  # noqa: F401 (fixture)

REFUSED_90_004 = ("Cells harvested: 90.004 x10^6 would be shown as 90 x10^6 on the record: type at most 2 decimals "
                  "(a count is recorded to 0.01 x10^6, 10 000 cells).")


def _read(session: Any, read: Any) -> Any:
    """A value read in a transaction of its own (ended: an open read would hold SQLite's lock)."""
    session.rollback()
    session.expire_all()
    try:
        return read()
    finally:
        session.rollback()


def _passages(session: Any, lot_id: int) -> list[tuple[Any, ...]]:
    return _read(session, lambda: [
        (s.passage_number, s.seeded_cells, s.harvested_cells, s.viability_percent) for s in session.scalars(
            select(ProcessStep).where(ProcessStep.lot_id == lot_id, ProcessStep.kind == "passage")
            .order_by(ProcessStep.passage_number))])


def _bags(session: Any, lot_id: int) -> list[tuple[Any, ...]]:
    return _read(session, lambda: [
        (b.bag_number, b.volume_ml, b.cells_per_ml, b.total_cells, b.dmso_percent) for b in session.scalars(
            select(Bag).where(Bag.lot_id == lot_id).order_by(Bag.bag_number))])


def _audit_count(session: Any) -> int:
    return int(_read(session, lambda: session.scalar(select(func.count()).select_from(AuditEvent))))


def _text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def _next_to_the_field(text: str, field_id: str, words: str, typed: str) -> None:
    """The message in the field's own error line, and the field still holding what was typed."""
    assert f'id="{field_id}-error">{words}</p>' in text, text[:4000]
    tag = next(t for t in re.findall(r"<input[^>]*>", text) if f'id="{field_id}"' in t)
    assert f'value="{typed}"' in tag and 'aria-invalid="true"' in tag, tag


def _p2_form(harvested: str) -> dict[str, str]:
    return {"passage-passage_number": "2", "passage-performed_on": (TODAY - timedelta(days=8)).isoformat(),
            "passage-seeded_cells": "20", "passage-harvested_cells": harvested, "passage-viability_percent": "95",
            "passage-days_in_culture": "4"}


@pytest.fixture
def lot_after_p1(db_session: Any, users: Any) -> int:  # noqa: F811
    """P0 2 -> 16 and P1 14 -> 110 x10^6, recorded 16 and 12 days ago: P2 is next."""
    lot_id = start_lot(db_session, approved_adipose_donor(db_session))
    passages(db_session, lot_id, [(2 * M, 16 * M), (14 * M, 110 * M)])
    db_session.commit()
    return lot_id


# ---- 1. a count reads back as typed ----------------------------------------------------------------------------------

def test_a_new_passage_count_the_record_would_round_is_refused_naming_the_field(  # type: ignore[no-untyped-def]
        app, db_session, lot_after_p1, client_as):  # noqa: F811
    tech = client_as("technician")
    before, events = _passages(db_session, lot_after_p1), _audit_count(db_session)
    answer = tech.post(f"/lots/{lot_after_p1}/passages", data=_p2_form("90.004"))
    text = _text(answer)
    assert answer.status_code == 422, text[:3000]
    _next_to_the_field(text, "passage-harvested_cells", REFUSED_90_004, "90.004")
    assert _passages(db_session, lot_after_p1) == before and _audit_count(db_session) == events

    kept = tech.post(f"/lots/{lot_after_p1}/passages", data=_p2_form("90.01"), follow_redirects=True)
    text = _text(kept)
    assert kept.status_code == 200 and "Passage P2 recorded" in text, text[:3000]
    assert _passages(db_session, lot_after_p1)[-1] == (2, 20 * M, 90_010_000, Decimal("95"))
    assert "90.01 x10^6" in _text(tech.get(f"/lots/{lot_after_p1}"))


def test_a_passage_correction_the_record_would_round_is_refused_naming_the_field(  # type: ignore[no-untyped-def]
        app, db_session, lot_after_p1, client_as):  # noqa: F811
    p1 = _read(db_session, lambda: db_session.execute(select(ProcessStep.id, ProcessStep.performed_on).where(
        ProcessStep.lot_id == lot_after_p1, ProcessStep.passage_number == 1)).one())
    step_id, day = p1

    def form(harvested: str) -> dict[str, str]:
        return {f"fix{step_id}-performed_on": day.isoformat(), f"fix{step_id}-seeded_cells": "14",
                f"fix{step_id}-harvested_cells": harvested, f"fix{step_id}-viability_percent": "95",
                f"fix{step_id}-days_in_culture": "4", f"fix{step_id}-reason": "harvested count misread"}

    tech = client_as("technician")
    before, events = _passages(db_session, lot_after_p1), _audit_count(db_session)
    answer = tech.post(f"/lots/{lot_after_p1}/passages/{step_id}/correction", data=form("90.004"))
    text = _text(answer)
    assert answer.status_code == 422, text[:3000]
    _next_to_the_field(text, f"fix{step_id}-harvested_cells", REFUSED_90_004, "90.004")
    assert f'<details class="correction" id="fix-{step_id}" open>' in text
    assert _passages(db_session, lot_after_p1) == before and _audit_count(db_session) == events

    done = tech.post(f"/lots/{lot_after_p1}/passages/{step_id}/correction", data=form("90.01"),
                     follow_redirects=True)
    text = _text(done)
    assert done.status_code == 200 and "Passage P1 corrected" in text, text[:3000]
    assert _passages(db_session, lot_after_p1)[1] == (1, 14 * M, 90_010_000, Decimal("95"))
    assert "90.01 x10^6" in _text(tech.get(f"/lots/{lot_after_p1}"))


def test_a_count_recorded_in_whole_cells_is_kept_when_its_correction_form_sends_it_back(  # type: ignore[no-untyped-def]
        app, db_session, lot_after_p1, client_as):  # noqa: F811
    """P2 recorded (as the API may) with 90 004 321 cells: its correction form is filled with 90.004321, which the
    record shows as 90 x10^6; sent back unchanged with the viability corrected, it is no new typing: accepted and
    kept to the cell. Changed to another value the record would round, it is refused."""
    steps.record_passage(db_session, user(db_session, "technician"), lot_after_p1, steps.PassageDetails(
        passage_number=2, performed_on=TODAY - timedelta(days=8), seeded_cells=20 * M, harvested_cells=90_004_321,
        viability_percent="95", days_in_culture="4"))
    db_session.commit()
    step_id, day = _read(db_session, lambda: db_session.execute(select(ProcessStep.id, ProcessStep.performed_on).where(
        ProcessStep.lot_id == lot_after_p1, ProcessStep.passage_number == 2)).one())
    tech = client_as("technician")
    page = _text(tech.get(f"/lots/{lot_after_p1}"))
    tag = next(t for t in re.findall(r"<input[^>]*>", page) if f'id="fix{step_id}-harvested_cells"' in t)
    assert 'value="90.004321"' in tag, tag
    form = {f"fix{step_id}-performed_on": day.isoformat(), f"fix{step_id}-seeded_cells": "20",
            f"fix{step_id}-harvested_cells": "90.004321", f"fix{step_id}-viability_percent": "96",
            f"fix{step_id}-days_in_culture": "4", f"fix{step_id}-reason": "viability misread"}
    changed = tech.post(f"/lots/{lot_after_p1}/passages/{step_id}/correction",
                        data={**form, f"fix{step_id}-harvested_cells": "90.004322"})
    assert changed.status_code == 422
    assert "Cells harvested: 90.004322 x10^6 would be shown as 90 x10^6 on the record" in _text(changed)
    done = tech.post(f"/lots/{lot_after_p1}/passages/{step_id}/correction", data=form)
    assert done.status_code == 302, _text(done)[:3000]
    assert _passages(db_session, lot_after_p1)[2] == (2, 20 * M, 90_004_321, Decimal("96"))


@pytest.mark.parametrize(("typed", "cells"), [
    ("12.5", 12_500_000), ("120", 120 * M), ("0.5", 500_000), ("2.25", 2_250_000), ("12.50", 12_500_000),
    ("0.004", 4_000), ("0.0012", 1_200), ("0", 0),
])
def test_a_count_the_record_shows_as_typed_is_accepted(typed: str, cells: int) -> None:
    assert millions(Decimal(typed), "seeded_cells", "Cells seeded") == cells


@pytest.mark.parametrize(("typed", "words"), [
    ("12.505", "Cells seeded: 12.505 x10^6 would be shown as 12.5 x10^6 on the record: type at most 2 decimals"),
    ("0.00123", "Cells seeded: 0.00123 x10^6 would be shown as 0.0012 x10^6 on the record: type at most 2 "
                "significant figures"),
    ("12.0000001", "Cells seeded: 12.0000001 x10^6 would be shown as 12 x10^6 on the record"),
])
def test_a_count_the_record_would_show_otherwise_is_refused(typed: str, words: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        millions(Decimal(typed), "seeded_cells", "Cells seeded")
    assert refused.value.field == "seeded_cells" and refused.value.message.startswith(words), refused.value.message


# ---- 2. a bag's content corrected one value at a time ------------------------------------------------------------

@pytest.fixture
def frozen(db_session: Any, users: Any) -> tuple[int, list[int]]:  # noqa: F811
    """4 bags of 20 mL x 1 x10^6/mL, DMSO 10 %, from 90 x10^6 viable cells harvested."""
    lot_id, made = cryopreserved_lot(db_session, approved_adipose_donor(db_session), 4, with_reagents=True)
    db_session.commit()
    return lot_id, [b.id for b in made]


def _bag_fix(bag_id: int, volume: str = "", cells: str = "", dmso: str = "",
             reason: str = "volume read off the wrong syringe") -> dict[str, str]:
    return {"bagfix-bag_id": str(bag_id), "bagfix-volume_ml": volume, "bagfix-cells_per_ml": cells,
            "bagfix-dmso_percent": dmso, "bagfix-reason": reason}


def _bag_updates(session: Any, bag_id: int) -> list[str]:
    return _read(session, lambda: sorted(e.field for e in session.scalars(select(AuditEvent).where(
        AuditEvent.entity_type == "bag", AuditEvent.entity_id == str(bag_id), AuditEvent.action == "update"))))


def test_a_bags_volume_alone_is_corrected_the_other_fields_left_blank(  # type: ignore[no-untyped-def]
        app, db_session, frozen, client_as):  # noqa: F811
    lot_id, bag_ids = frozen
    tech = client_as("technician")
    page = _text(tech.get(f"/lots/{lot_id}"))
    assert "a field left blank keeps the value recorded" in page  # the form says what a blank means
    done = tech.post(f"/lots/{lot_id}/bags/correction", data=_bag_fix(bag_ids[1], volume="22"),
                     follow_redirects=True)
    text = _text(done)
    assert done.status_code == 200, text[:3000]
    assert "Bag 2 of 4 corrected: 22.00 mL, 1 x10^6 cells per mL, 22 x10^6 cells in the bag, DMSO 10.00 %." in text
    assert _bags(db_session, lot_id)[1] == (2, Decimal("22"), M, 22 * M, Decimal("10"))
    # the cells in the bag follow the volume; the cells per mL and the DMSO % were kept, not rewritten
    assert _bag_updates(db_session, bag_ids[1]) == ["total_cells", "volume_ml"]
    listed = text[text.index('id="bag-corrections"'):]
    listed = listed[:listed.index("</ul>")]
    assert "Bag 2 of 4 corrected by Technician" in listed and "volume (mL) 20" in listed and "→ 22" in listed
    assert "cells per mL" not in listed and "DMSO %" not in listed


def test_a_bags_volume_alone_is_corrected_from_its_rows_filled_in_form(  # type: ignore[no-untyped-def]
        app, db_session, frozen, client_as):  # noqa: F811
    """The row's "Correct its content" link opens the form with the bag's values: the volume retyped, the rest sent
    back as filled in."""
    lot_id, bag_ids = frozen
    tech = client_as("technician")
    page = _text(tech.get(f"/lots/{lot_id}?fixbag={bag_ids[2]}"))
    values = {name: re.search(rf'name="bagfix-{name}"[^>]* value="([^"]*)"', page).group(1)  # type: ignore[union-attr]
              for name in ("volume_ml", "cells_per_ml", "dmso_percent")}
    assert values == {"volume_ml": "20.00", "cells_per_ml": "1", "dmso_percent": "10.00"}, values
    done = tech.post(f"/lots/{lot_id}/bags/correction", data=_bag_fix(
        bag_ids[2], volume="21.5", cells=values["cells_per_ml"], dmso=values["dmso_percent"]))
    assert done.status_code == 302, _text(done)[:3000]
    assert _bags(db_session, lot_id)[2] == (3, Decimal("21.5"), M, 21_500_000, Decimal("10"))
    assert _bag_updates(db_session, bag_ids[2]) == ["total_cells", "volume_ml"]


def test_a_bag_correction_with_every_value_blank_is_refused_and_writes_nothing(  # type: ignore[no-untyped-def]
        app, db_session, frozen, client_as):  # noqa: F811
    lot_id, bag_ids = frozen
    tech = client_as("technician")
    before, events = _bags(db_session, lot_id), _audit_count(db_session)
    answer = tech.post(f"/lots/{lot_id}/bags/correction", data=_bag_fix(bag_ids[0]))
    text = _text(answer)
    assert answer.status_code == 422, text[:3000]
    assert ('id="bagfix-volume_ml-error">Nothing changed: give the corrected values. The volume, cells per mL and '
            "DMSO % were all left blank, and a blank keeps the value recorded: type at least the one that is "
            "wrong.</p>") in text, text[:4000]
    assert 'id="bag-fix" open' in text
    assert "Give the cells per mL" not in text and "Give the DMSO percentage" not in text
    assert _bags(db_session, lot_id) == before and _audit_count(db_session) == events
    # the recorded values typed again: nothing changed either, said on the volume
    same = tech.post(f"/lots/{lot_id}/bags/correction", data=_bag_fix(bag_ids[0], volume="20", cells="1"))
    assert same.status_code == 422 and "Nothing changed: give the corrected values." in _text(same)
    assert _bags(db_session, lot_id) == before and _audit_count(db_session) == events


def test_a_bags_cells_per_ml_the_record_would_round_is_refused(  # type: ignore[no-untyped-def]
        app, db_session, frozen, client_as):  # noqa: F811
    lot_id, bag_ids = frozen
    tech = client_as("technician")
    before, events = _bags(db_session, lot_id), _audit_count(db_session)
    answer = tech.post(f"/lots/{lot_id}/bags/correction", data=_bag_fix(bag_ids[0], cells="1.005"))
    text = _text(answer)
    assert answer.status_code == 422, text[:3000]
    _next_to_the_field(text, "bagfix-cells_per_ml", "Cells per mL: 1.005 x10^6 would be shown as 1 x10^6 on the "
                       "record: type at most 2 decimals (a count is recorded to 0.01 x10^6, 10 000 cells).", "1.005")
    assert _bags(db_session, lot_id) == before and _audit_count(db_session) == events
