"""Review 9, data integrity (21 CFR 11.70, EU GMP Annex 11, DOMAIN.md section 9: "a signed record is locked").

The audit hook is the one place that refuses edits of signed records, so no service has to remember. Before:
- a clinician's signed request for the exceptional release of an OOS batch stayed unlocked while it waited for QA
  (and for good once superseded): the patient and justification the clinician signed could be changed;
- a recall's closing (status, who, when, the reason or closing note) stayed open after the end or completion
  signature vouched for it: the signed closing note could be rewritten, a closed recall set active again;
- the bags of a released (signed, locked) lot could have their content changed (cells per mL, volume, DMSO: what
  the dose is calculated from) or be deleted: only the correction service's own status check stood in the way.
"""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from mscbatch.audit.context import use_case
from mscbatch.errors import RecordLocked
from mscbatch.lots.models import Bag, Lot
from mscbatch.recall import services as recalls
from mscbatch.recall.models import Recall
from mscbatch.release import release
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import LotDisposition
from mscbatch.signatures.services import signatures_of, verify
from tests.conftest import PASSWORD
from tests.integration.patient_factories import donor, lot_with_bags
from tests.integration.test_exceptional_batch import _lot_for_sle_uc_007
from tests.integration.test_release_support import user

JUSTIFICATION = "No alternative therapy; life-threatening flare, benefit outweighs risk"


def _refused(session, change) -> str:  # type: ignore[no-untyped-def]
    """Apply `change` in a use case with a reason; the hook's refusal, and nothing written."""
    with pytest.raises(RecordLocked) as refused, use_case(session, user(session, "qa"), "edit after signing"):
        change()
        session.flush()
    return str(refused.value)


def test_a_clinician_s_signed_exceptional_release_request_is_locked_until_and_after_qa_countersigns(
        app, users, monkeypatch):  # type: ignore[no-untyped-def]
    lot_id = _lot_for_sle_uc_007(app, monkeypatch)
    session = app.extensions["mscbatch.db"].new_session()
    enter_panel(session, user(session, "technician"), lot_id, {"viability": ("66", "%")})
    request = release.request_exceptional_release(session, user(session, "clinician"), lot_id, "SLE-UC-007",
                                                  JUSTIFICATION, PASSWORD)
    request_id = request.id
    session.expire_all()
    waiting = session.get(LotDisposition, request_id)
    assert waiting.locked_at is not None and waiting.signed_at is None  # locked, not yet countersigned
    assert "justification" in _refused(session, lambda: setattr(waiting, "justification", "Typed over"))
    assert "patient_code" in _refused(session, lambda: setattr(waiting, "patient_code", "SLE-UC-008"))

    approved = release.approve_exceptional_release(session, user(session, "qa"), lot_id, PASSWORD, request_id)
    assert approved.signed_at is not None and approved.decided_by_id == user(session, "qa").id
    session.expire_all()
    done = session.get(LotDisposition, request_id)
    assert (done.patient_code, done.justification) == ("SLE-UC-007", JUSTIFICATION)
    assert session.get(Lot, lot_id).status == "released"
    sigs = signatures_of(session, done)
    assert len(sigs) == 2 and all(verify(session, s, done).valid for s in sigs)
    # QA's countersignature (who, when) is written once
    assert "decided_by_id" in _refused(session, lambda: setattr(done, "decided_by_id", user(session, "clinician").id))
    session.close()


def test_a_closed_recall_s_signed_closing_cannot_be_rewritten_nor_the_recall_reopened(app, users, db_session):  # type: ignore[no-untyped-def]
    tech, qa = user(db_session, "technician"), user(db_session, "qa")
    lot_id = lot_with_bags(db_session, tech, donor(db_session, tech), bags=2)[0].lot_id
    recall_id = recalls.start_recall(db_session, qa, scope="lot", target_id=lot_id, password=PASSWORD,
                                     reason="Supplier notice: medium lot contaminated").recall_id
    recalls.end_recall(db_session, qa, recall_id, reason="False alarm: the supplier withdrew its notice",
                       password=PASSWORD)
    db_session.expire_all()
    recall = db_session.get(Recall, recall_id)
    assert recall.status == "ended"
    assert "end_reason" in _refused(db_session, lambda: setattr(recall, "end_reason", "All fine"))
    assert "status" in _refused(db_session, lambda: setattr(recall, "status", "active"))
    assert "ended_by_id" in _refused(db_session, lambda: setattr(recall, "ended_by_id", tech.id))
    db_session.expire_all()
    recall = db_session.get(Recall, recall_id)
    assert recall.end_reason == "False alarm: the supplier withdrew its notice"
    assert all(verify(db_session, s, recall).valid for s in signatures_of(db_session, recall))


def _released_and_locked_lot(session) -> tuple[int, list[int]]:  # type: ignore[no-untyped-def]
    """A lot whose release signature locked it (the lock alone, as release._sign_and_move sets it)."""
    tech = user(session, "technician")
    bags = lot_with_bags(session, tech, donor(session, tech), bags=2)
    lot_id, bag_ids = bags[0].lot_id, [b.id for b in bags]
    with use_case(session, user(session, "qa"), "Released for clinical use"):
        lot = session.get(Lot, lot_id)
        lot.locked_at = lot.created_at
    return lot_id, bag_ids


def test_the_content_of_a_released_lot_s_bag_is_locked_with_the_lot_but_custody_still_moves_it(
        app, users, db_session):  # type: ignore[no-untyped-def]
    _lot_id, bag_ids = _released_and_locked_lot(db_session)
    bag = db_session.get(Bag, bag_ids[0])
    cells = bag.cells_per_ml
    said = _refused(db_session, lambda: setattr(bag, "cells_per_ml", cells * 10))
    assert "part of a signed and locked record" in said and "cells_per_ml" in said
    assert "volume_ml" in _refused(db_session, lambda: setattr(bag, "volume_ml", Decimal("30.00")))
    assert "din" in _refused(db_session, lambda: setattr(bag, "din", "X9999990000001"[:13]))
    with pytest.raises(RecordLocked), use_case(db_session, user(db_session, "qa"), "tidy up"):
        db_session.delete(db_session.get(Bag, bag_ids[1]))
        db_session.flush()
    db_session.expire_all()
    assert db_session.get(Bag, bag_ids[0]).cells_per_ml == cells and db_session.get(Bag, bag_ids[1]) is not None
    with use_case(db_session, user(db_session, "technician"), "custody: moved"):  # custody is not refused
        db_session.get(Bag, bag_ids[0]).status = "on_hold"
    assert db_session.scalar(select(Bag.status).where(Bag.id == bag_ids[0])) == "on_hold"


def test_a_bag_of_a_lot_not_yet_signed_can_still_be_corrected(app, users, db_session):  # type: ignore[no-untyped-def]
    tech = user(db_session, "technician")
    bag = lot_with_bags(db_session, tech, donor(db_session, tech), bags=1, status="quarantine")[0]
    with use_case(db_session, tech, "bag content corrected: typing slip"):
        db_session.get(Bag, bag.id).cells_per_ml = 1_000_000
    db_session.expire_all()
    assert db_session.get(Bag, bag.id).cells_per_ml == 1_000_000
