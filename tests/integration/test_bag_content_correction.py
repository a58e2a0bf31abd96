"""Correcting a bag's content recorded at cryopreservation (volume, cells per mL, DMSO %), through the lot page, on
SQLite and PostgreSQL: a cells per mL typed wrong was a wrong dose at the bedside (the dose is calculated from the
bag's cells) and could not be corrected, while passages and the harvest could.

- the correction: one audited transaction (old and new value of each field with the reason), the bag's cells
  follow (volume x cells per mL), listed on the lot page;
- every refusal (403 role, 422 field and rule, 409 state), nothing written;
- only before a release signature (in process or quarantine), only a bag in stock;
- a bag labelled before the correction is marked "reprint its label" and cannot be dispatched with the old label;
- the dose calculation for a patient then counts the corrected cells.
"""
from __future__ import annotations

import html
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.lots.models import Bag, Lot
from mscbatch.patients import inventory, prescriptions
from mscbatch.patients.models import Patient
from mscbatch.release import release
from mscbatch.release.demo import enter_panel
from tests.conftest import PASSWORD
from tests.integration.lot_factories import M, approved_adipose_donor, cryopreserved_lot
from tests.integration.test_custody_support import token_of
from tests.integration.test_release_support import (
    cord_quarantine_lot,
    lupus_patient_code,
    seed_quarantine_lot,
    user,
)

REASON = "cells per mL copied from the wrong line of the counting sheet"


def _session(app: Any) -> Any:
    return app.extensions["mscbatch.db"].new_session()


def _fix(bag_id: int, volume: str = "20", cells: str = "1", dmso: str = "10", reason: str = REASON) -> dict[str, Any]:
    return {"bagfix-bag_id": str(bag_id), "bagfix-volume_ml": volume, "bagfix-cells_per_ml": cells,
            "bagfix-dmso_percent": dmso, "bagfix-reason": reason}


def _content(app: Any, lot_id: int) -> list[tuple[int, Decimal, int, int, Decimal]]:
    with _session(app) as session:
        return [(b.bag_number, b.volume_ml, b.cells_per_ml, b.total_cells, b.dmso_percent)
                for b in session.scalars(select(Bag).where(Bag.lot_id == lot_id).order_by(Bag.bag_number))]


def _audit_count(app: Any) -> int:
    with _session(app) as session:
        return int(session.scalar(select(func.count()).select_from(AuditEvent)))


def _text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


@pytest.fixture
def frozen(app: Any, users: Any) -> tuple[int, list[int]]:
    """A lot in process frozen into 4 bags of 20 mL x 1 x10^6/mL (20 x10^6 cells each), from a harvest of
    90 x10^6 viable cells (100 x10^6 at 90 %): 10 x10^6 viable cells not in bags."""
    with _session(app) as session:
        lot_id, made = cryopreserved_lot(session, approved_adipose_donor(session), 4, with_reagents=True)
        return lot_id, [b.id for b in made]


# ---- the correction -------------------------------------------------------------------------------------------------

def test_a_technician_corrects_a_bags_content_in_one_audited_step(app, frozen, client_as):  # type: ignore[no-untyped-def]
    lot_id, bag_ids = frozen
    tech = client_as("technician")
    chosen = tech.get(f"/lots/{lot_id}?fixbag={bag_ids[1]}")  # the row's "Correct its content" link
    page = _text(chosen)
    assert "Correct a bag's content" in page and f'fixbag={bag_ids[1]}' in page
    assert f'<option selected value="{bag_ids[1]}">bag 2 of 4 (' in page, page  # chosen, its values filled in
    assert 'name="bagfix-volume_ml" step="any" type="number" value="20.00"' in page
    assert 'name="bagfix-cells_per_ml" step="any" type="number" value="1"' in page

    done = tech.post(f"/lots/{lot_id}/bags/correction", data=_fix(bag_ids[1], volume="20.55", cells="1.1",
                                                                  dmso="7.5"), follow_redirects=True)
    text = _text(done)
    assert done.status_code == 200, text
    assert ("Bag 2 of 4 corrected: 20.55 mL, 1.1 x10^6 cells per mL, 22.6 x10^6 cells in the bag, DMSO 7.50 %. "
            "The old values and your reason are in the audit trail.") in text, text
    # the bag's cells follow, as cryopreserve computes them: 20.55 mL x 1 100 000 /mL
    assert _content(app, lot_id)[1] == (2, Decimal("20.55"), 1_100_000, 22_605_000, Decimal("7.50"))
    assert _content(app, lot_id)[0] == (1, Decimal("20.00"), M, 20 * M, Decimal("10.00"))  # the others untouched
    with _session(app) as session:
        events = {e.field: (Decimal(e.old_value), Decimal(e.new_value), e.reason, e.actor_name)
                  for e in session.scalars(select(AuditEvent).where(
                      AuditEvent.entity_type == "bag", AuditEvent.entity_id == str(bag_ids[1]),
                      AuditEvent.action == "update"))}
    why = f"bag content corrected: {REASON}"
    assert events == {"volume_ml": (20, Decimal("20.55"), why, "technician"),
                      "cells_per_ml": (M, 1_100_000, why, "technician"),
                      "total_cells": (20 * M, 22_605_000, why, "technician"),
                      "dmso_percent": (10, Decimal("7.5"), why, "technician")}, events
    listed = text[text.index('id="bag-corrections"'):]
    assert "Bag 2 of 4 corrected by Technician" in listed and REASON in listed
    assert "cells per mL 1 x10^6 → 1.1 x10^6" in listed and "cells in the bag 20 x10^6 → 22.6 x10^6" in listed
    assert "volume (mL) 20" in listed and "→ 20.55" in listed and "DMSO % 10" in listed and "→ 7.50" in listed
    assert 'class="flag flag-warning relabel"' not in text  # never labelled: nothing to reprint


# ---- refusals: nothing written -------------------------------------------------------------------------------------

REFUSALS = [
    # (form values, status, words naming the field and its rule)
    (dict(reason=""), 422, "Give the reason for the correction: it goes into the audit trail."),
    (dict(volume="0.05"), 422, "Bag 1: volume between 0.1 and 1000 mL."),
    (dict(volume="20.555"), 422, "Bag 1: volume at most 2 decimals (e.g. 20.55 mL)."),
    (dict(volume="abc"), 422, "Volume, corrected: 'abc' is not a number"),
    (dict(dmso="25"), 422, "Bag 1: DMSO between 0 and 20 %."),
    (dict(dmso="7.555"), 422, "Bag 1: DMSO at most 2 decimals (e.g. 7.5 %)."),
    (dict(cells="0"), 422, "Bag 1: give the cells per mL."),
    (dict(cells="-1"), 422, "Viable cells per mL, corrected: a number of cells cannot be negative."),
    # 32 x10^6 in bag 1 + 3 x 20 x10^6 = 92 x10^6 > the 90 x10^6 viable cells harvested
    (dict(cells="1.6"), 422, "Bag 1: cells per mL refused: the 4 bags would hold 92 x10^6 viable cells but the "
                             "harvest has only 90 x10^6 viable cells (2 x10^6 too many). Nothing was changed."),
    (dict(), 422, "Nothing changed: give the corrected values."),
]


@pytest.mark.parametrize(("values", "status", "words"), REFUSALS)
def test_a_refused_correction_names_the_field_and_rule_and_writes_nothing(  # type: ignore[no-untyped-def]
        app, frozen, client_as, values, status, words):
    lot_id, bag_ids = frozen
    tech = client_as("technician")  # signing in is audited: counted before
    before, events = _content(app, lot_id), _audit_count(app)
    answer = tech.post(f"/lots/{lot_id}/bags/correction", data=_fix(bag_ids[0], **values))
    text = _text(answer)
    assert answer.status_code == status, text
    assert words in text, text
    assert 'id="bag-fix" open' in text  # the form is shown again, open, with the message by its field
    assert _content(app, lot_id) == before and _audit_count(app) == events


def test_the_bag_must_be_chosen_and_of_this_lot(app, frozen, client_as):  # type: ignore[no-untyped-def]
    lot_id, bag_ids = frozen
    with _session(app) as session:
        other_lot, other_bags = cryopreserved_lot(session, approved_adipose_donor(session), 1)
    tech = client_as("technician")
    before, events = _content(app, lot_id), _audit_count(app)
    unchosen = tech.post(f"/lots/{lot_id}/bags/correction", data=_fix(0, cells="1.1"))
    assert unchosen.status_code == 422 and "Choose the bag to correct." in _text(unchosen)
    foreign = tech.post(f"/lots/{lot_id}/bags/correction", data=_fix(other_bags[0].id, cells="1.1"))
    assert foreign.status_code == 404 and "Choose a bag of lot " in _text(foreign), _text(foreign)
    assert _content(app, lot_id) == before and _content(app, other_lot)[0][2] == M and _audit_count(app) == events


@pytest.mark.parametrize("role", ["qa", "clinician", "nurse", "admin"])
def test_only_a_technician_corrects_a_bags_content(app, frozen, client_as, role):  # type: ignore[no-untyped-def]
    lot_id, bag_ids = frozen
    client = client_as(role)
    before, events = _content(app, lot_id), _audit_count(app)
    assert client.post(f"/lots/{lot_id}/bags/correction", data=_fix(bag_ids[0], cells="1.1")).status_code == 403
    assert "Correct a bag's content" not in _text(client.get(f"/lots/{lot_id}"))
    assert _content(app, lot_id) == before and _audit_count(app) == events


def test_a_bag_out_of_stock_is_not_corrected(app, frozen, client_as):  # type: ignore[no-untyped-def]
    """A bag on hold (or allocated, or on its way to the ward) is not typed over: 409, nothing written."""
    lot_id, bag_ids = frozen
    with _session(app) as session, use_case(session, user(session, "qa"), "test: QA put the bag on hold"):
        session.get(Bag, bag_ids[2]).status = "on_hold"
    tech = client_as("technician")
    before, events = _content(app, lot_id), _audit_count(app)
    answer = tech.post(f"/lots/{lot_id}/bags/correction", data=_fix(bag_ids[2], cells="1.1"))
    text = _text(answer)
    assert answer.status_code == 409, text
    assert ("Bag 3 of 4 (" in text and ") is on hold: its content is corrected only while it is in stock (stored) "
            "and allocated to no one. Nothing was changed.") in text, text
    assert _content(app, lot_id) == before and _audit_count(app) == events


def test_a_rejected_lots_bags_are_not_corrected(app, frozen, client_as):  # type: ignore[no-untyped-def]
    lot_id, bag_ids = frozen
    with _session(app) as session, use_case(session, user(session, "qa"), "test: QA rejected the lot"):
        session.get(Lot, lot_id).status = "rejected"
    tech = client_as("technician")
    before, events = _content(app, lot_id), _audit_count(app)
    answer = tech.post(f"/lots/{lot_id}/bags/correction", data=_fix(bag_ids[0], cells="1.1"))
    assert answer.status_code == 409
    assert "is rejected: its record is closed and a bag's content can no longer be corrected" in _text(answer)
    assert 'id="bag-fix-refused"' in _text(answer)  # said, though the form is no longer offered
    assert "Correct a bag's content" not in _text(tech.get(f"/lots/{lot_id}"))
    assert _content(app, lot_id) == before and _audit_count(app) == events


# ---- quarantine, the label, the release, the dose ---------------------------------------------------------------------

def test_a_bag_corrected_in_quarantine_needs_its_label_reprinted_and_doses_with_its_corrected_cells(  # type: ignore[no-untyped-def]
        app, users, monkeypatch, client_as):
    """The demo UC-MSC lot in quarantine: 4 bags of 25 mL x 2 x10^6/mL (50 x10^6 each) from 216.2 x10^6 viable
    cells. Labelled in quarantine; bag 1 really holds 2.4 x10^6/mL. Corrected, its label is out of date: the lot
    page says so and the dispatch refuses it until a label is printed after the correction; after the release, the
    correction is refused (the record is signed) and the dose is calculated from 60 x10^6 cells."""
    seed_quarantine_lot(app, monkeypatch)
    with _session(app) as session:
        lot_id = cord_quarantine_lot(session)
        session.commit()
        bag_ids = [b.id for b in session.scalars(select(Bag).where(Bag.lot_id == lot_id).order_by(Bag.bag_number))]
    tech = client_as("technician")
    assert tech.post(f"/labels/lots/{lot_id}/print", data={"print_format": "lot"}).status_code == 200

    done = tech.post(f"/lots/{lot_id}/bags/correction", data=_fix(bag_ids[0], volume="25", cells="2.4"),
                     follow_redirects=True)
    text = _text(done)
    assert done.status_code == 200, text
    assert "Its label was printed before and shows the old values: reprint its label." in text, text
    assert text.count('class="flag flag-warning relabel"') == 1 and f'data-relabel="{bag_ids[0]}"' in text
    labels = _text(tech.get(f"/labels/lots/{lot_id}"))  # the labels page, where the reprint is made, says it too
    assert labels.count('class="flag flag-warning relabel"') == 1 and f'data-relabel="{bag_ids[0]}"' in labels
    assert _content(app, lot_id)[0] == (1, Decimal("25.00"), 2_400_000, 60 * M, Decimal("10.00"))

    with _session(app) as session:  # QC results by the technician, the release signed by QA (another person)
        enter_panel(session, user(session, "technician"), lot_id)
        release.release_lot(session, user(session, "qa"), lot_id, PASSWORD)
    before, events = _content(app, lot_id), _audit_count(app)
    locked = tech.post(f"/lots/{lot_id}/bags/correction", data=_fix(bag_ids[1], volume="25", cells="2.1"))
    words = _text(locked)
    assert locked.status_code == 409, words
    assert ("is released: its record was signed at release and is locked, so a bag's content can no longer be "
            "corrected here. Tell QA: a released lot's bags are dealt with by a deviation, an OOS investigation or "
            "a recall. Nothing was changed.") in words, words
    assert _content(app, lot_id) == before and _audit_count(app) == events

    # the dose: the corrected bag counts 60 x10^6 viable cells, the others 50 x10^6
    with _session(app) as session:
        patient = session.scalar(select(Patient).where(Patient.code == lupus_patient_code(session)))
        dose = inventory.calculate(session, patient.id)
        assert dose.allocation is not None, dose.refusal
        assert {int(bag_id): cand.viable_cells for bag_id, (cand, _b, _l) in dose.bags.items()
                if int(bag_id) in bag_ids} == {bag_ids[0]: 60 * M, bag_ids[1]: 50 * M, bag_ids[2]: 50 * M,
                                               bag_ids[3]: 50 * M}
        # the clinician's choice of the lot's first three bags (60 + 50 + part of 50 x10^6 for 125 x10^6)
        chosen = inventory.calculate(session, patient.id, only_bag_ids=bag_ids[:3])
        assert chosen.allocation is not None, chosen.refusal
        draws = {int(d.bag_id): d for d in chosen.allocation.draws}
        assert draws[bag_ids[0]].cells == 60 * M and not draws[bag_ids[0]].partial, draws  # at 2.4 x10^6/mL
        assert sum(d.cells for d in draws.values()) == 125 * M  # 62.5 kg x 2 x10^6/kg
        prescriptions.prescribe(session, user(session, "clinician"), PASSWORD, patient.id, bag_ids=sorted(draws),
                                weight_id=chosen.weight.id if chosen.weight else None)
        assert session.get(Bag, bag_ids[0]).status == "allocated"
        token = token_of(session.get(Bag, bag_ids[0]))

    dispatch = {"bag": token, "courier": "Fast Courier", "shipper": "Dry shipper DS-3",
                "temperature_logger_id": "TL-0042"}
    refused = tech.post("/ward/dispatch", data=dispatch)
    words = _text(refused)
    assert refused.status_code == 409, words
    assert ("cannot leave the unit: Print the bag's released label first: its content (volume, cells per mL, DMSO) "
            "was corrected after its last label was printed, so that label shows the old values.") in words, words
    with _session(app) as session:
        assert session.get(Bag, bag_ids[0]).status == "allocated"

    reprinted = tech.post(f"/labels/lots/{lot_id}/print", data={"print_format": "bag", "bag_id": bag_ids[0],
                                                               "reason": "content corrected: 2.4 x10^6/mL"})
    assert reprinted.status_code == 200, _text(reprinted)
    assert 'class="flag flag-warning relabel"' not in _text(tech.get(f"/lots/{lot_id}"))
    assert 'class="flag flag-warning relabel"' not in _text(tech.get(f"/labels/lots/{lot_id}"))
    sent = tech.post("/ward/dispatch", data=dispatch)
    assert sent.status_code == 302, _text(sent)
    with _session(app) as session:
        assert session.get(Bag, bag_ids[0]).status == "dispatched"


def test_in_quarantine_a_bag_corrected_to_hold_dmso_needs_the_dmso_lot_recorded(  # type: ignore[no-untyped-def]
        app, users, client_as, monkeypatch):
    """A product that does not list DMSO, frozen without it: the lot went to quarantine with no DMSO lot recorded.
    A correction that puts DMSO in a bag would leave a quarantined record the quarantine itself refuses
    (lots.reagent_rules: a bag holding DMSO needs its DMSO lot), and reagent lots are no longer recorded then."""
    from dataclasses import replace

    from mscbatch.core.culture import BagPlan
    from mscbatch.lots import bags, reagents, services
    from mscbatch.lots.models import ProcessStep
    from tests.integration.lot_factories import TODAY, at, factory_reagent, harvested_lot, place_bags

    shipped = services.product_of
    def without_dmso(lot):  # type: ignore[no-untyped-def]
        return replace(shipped(lot), required_reagent_types=(("medium",), ("platelet_lysate", "fbs"), ("trypsin",)))

    monkeypatch.setattr(services, "product_of", without_dmso)
    monkeypatch.setattr(bags, "product_of", without_dmso)  # the freezing asks the product whether it uses DMSO
    with _session(app) as session:
        lot_id = harvested_lot(session, approved_adipose_donor(session))
        tech = user(session, "technician")
        isolation, p0 = session.scalars(select(ProcessStep).where(ProcessStep.lot_id == lot_id)
                                        .order_by(ProcessStep.performed_on, ProcessStep.id)).all()[:2]
        for kind, step in (("medium", isolation), ("platelet_lysate", isolation), ("trypsin", p0)):
            reagents.link_reagent(session, tech, lot_id, factory_reagent(session, kind), used_on=step.performed_on,
                                  step_id=step.id)
        made = bags.cryopreserve(session, tech, lot_id, frozen_at=at(TODAY, 9), bags=[
            BagPlan(volume_ml=Decimal(20), cells_per_ml=M, dmso_percent=Decimal(0))] * 2)
        place_bags(session, [bag.id for bag in made])  # quarantine needs every bag in a storage position
        services.transition_lot(session, tech, lot_id, "quarantine", "frozen without DMSO")
        bag_id = made[0].id
    tech_client = client_as("technician")
    before, events = _content(app, lot_id), _audit_count(app)
    answer = tech_client.post(f"/lots/{lot_id}/bags/correction", data=_fix(bag_id, dmso="5"))
    text = _text(answer)
    assert answer.status_code == 409, text
    assert ("Correction refused: lot " in text and " is in quarantine and its record names no DMSO; a bag holding "
            "DMSO needs the DMSO lot used recorded. Check the DMSO %; if it is right, record a deviation and tell "
            "QA. Nothing was changed.") in text, text
    assert _content(app, lot_id) == before and _audit_count(app) == events
    fine = tech_client.post(f"/lots/{lot_id}/bags/correction", data=_fix(bag_id, dmso="0", cells="1.05"))
    assert fine.status_code == 302, _text(fine)  # the same lot's cells per mL may still be corrected
