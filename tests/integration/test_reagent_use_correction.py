"""A reagent use recorded in error (the wrong trypsin lot picked, a date of use typed wrong) is corrected on the lot
page while the lot is in process, with its reason (EU GMP ch. 4.9): the row changes in place, the audit trail keeps
the old and new values, the lot page lists the correction, and a recall by reagent lot (queries.lots_using_reagent)
now finds the cell lot under the lot really used and no longer under the wrong one. Every refusal is a 4xx naming
the field, and nothing is written. Through the lot page (harvest and passage corrections have no API either)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.lots import reagents, services
from mscbatch.lots.models import Lot, ProcessStep, ReagentUse
from mscbatch.recall import services as recalls
from tests.conftest import PASSWORD
from tests.integration.lot_factories import (
    TODAY,
    M,
    approved_adipose_donor,
    cryopreserved_lot,
    factory_reagent,
    passages,
    start_lot,
)
from tests.integration.test_donors import db_session, user  # noqa: F401 (fixture)

COLLECTED = TODAY - timedelta(days=20)  # passages(): isolation that day, P0 4 days later, P1 8 days later
P1_DAY = COLLECTED + timedelta(days=8)  # P1 uses its reagents from P0's day (seeding) to its own (harvest)


@dataclass(frozen=True)
class Scene:
    lot_id: int
    lot_number: str
    use_id: int  # trypsin T-WRONG recorded for P1
    wrong: int
    right: int
    expired: int
    recalled: int
    medium: int


def _reagent(session: Any, lot_number: str, reagent_type: str = "trypsin", name: str = "TrypLE",
             expiry: date | None = None) -> int:
    row = reagents.register_reagent_lot(session, user(session, "technician"), reagent_type=reagent_type, name=name,
                                        supplier="Acme", lot_number=lot_number,
                                        expiry_date=expiry or TODAY + timedelta(days=100))
    session.rollback()
    return row.id


def _scene(session: Any) -> Scene:
    lot_id = start_lot(session, approved_adipose_donor(session))
    passages(session, lot_id, [(2 * M, 16 * M), (4 * M, 30 * M)])
    p1 = session.scalar(select(ProcessStep.id).where(ProcessStep.lot_id == lot_id, ProcessStep.passage_number == 1))
    wrong, right = _reagent(session, "T-WRONG"), _reagent(session, "T-RIGHT")
    expired = _reagent(session, "T-EXPIRED", expiry=P1_DAY - timedelta(days=2))
    recalled = _reagent(session, "T-RECALLED")
    medium = _reagent(session, "M-1", "medium", "alpha-MEM")
    recalls.start_recall(session, user(session, "qa"), scope="reagent_lot", target_id=recalled,
                         reason="Supplier notice: endotoxin", password=PASSWORD)
    use = reagents.link_reagent(session, user(session, "technician"), lot_id, wrong, used_on=P1_DAY - timedelta(days=1),
                                step_id=p1)
    scene = Scene(lot_id, session.get(Lot, lot_id).lot_number, use.id, wrong, right, expired, recalled, medium)
    session.rollback()
    return scene


def _form(use_id: int, reagent_lot_id: int, used_on: date, reason: str = "T-RIGHT was used: wrong lot picked"
          ) -> dict[str, str]:
    return {f"reagentfix{use_id}-reagent_lot_id": str(reagent_lot_id),
            f"reagentfix{use_id}-used_on": used_on.isoformat(), f"reagentfix{use_id}-reason": reason}


def _row(session: Any, use_id: int) -> tuple[int, date]:
    use = session.get(ReagentUse, use_id)
    row = (use.reagent_lot_id, use.used_on)
    session.rollback()
    return row


def _trail(session: Any, use_id: int) -> list[AuditEvent]:
    events = list(session.scalars(select(AuditEvent).where(AuditEvent.entity_type == "reagent_use",
                                                           AuditEvent.entity_id == str(use_id),
                                                           AuditEvent.action != "insert").order_by(AuditEvent.seq)))
    session.rollback()
    return events


def _events(session: Any) -> int:
    count = session.scalar(select(func.count()).select_from(AuditEvent))
    session.rollback()
    return int(count)


def _lots_hit_by(session: Any, reagent_lot_id: int) -> set[int]:
    hit = {lot.id for lot in recalls.affected_lots(session, "reagent_lot", reagent_lot_id)}
    session.rollback()
    return hit


def test_a_wrong_trypsin_lot_is_corrected_and_a_recall_finds_the_lot_under_the_right_one(app, users, db_session,  # noqa: F811
                                                                                         client_as):
    s = _scene(db_session)
    assert _lots_hit_by(db_session, s.wrong) == {s.lot_id} and _lots_hit_by(db_session, s.right) == set()
    tech = client_as("technician")
    page = tech.get(f"/lots/{s.lot_id}").get_data(as_text=True)
    assert f'id="reagentfix-{s.use_id}"' in page and "Correct this reagent use" in page
    offered = page.split(f'id="reagentfix{s.use_id}-reagent_lot_id"')[1].split("</select>")[0]
    assert "T-RIGHT" in offered and "T-WRONG" in offered and "M-1" not in offered  # the same type only

    done = tech.post(f"/lots/{s.lot_id}/reagents/{s.use_id}/correction",
                     data=_form(s.use_id, s.right, P1_DAY, "T-RIGHT was used: wrong lot picked"))
    assert done.status_code == 302, done.get_data(as_text=True)
    assert done.headers["Location"].endswith(f"/lots/{s.lot_id}#reagents")
    assert _row(db_session, s.use_id) == (s.right, P1_DAY)

    page = tech.get(f"/lots/{s.lot_id}").get_data(as_text=True)
    assert "Reagent use for P1 corrected" in page  # the flash
    uses = page.split('class="reagent-uses"')[1].split("</ul>")[0]
    assert "Acme lot T-RIGHT</a>" in uses and "Acme lot T-WRONG</a>" not in uses and f"on {P1_DAY}," in uses
    corrections = page.split('id="corrections"')[1].split("</ul>")[0]
    assert "Reagent use at P1 corrected by Technician" in corrections
    assert "T-RIGHT was used: wrong lot picked" in corrections
    assert "reagent lot TrypLE, Acme lot T-WRONG → TrypLE, Acme lot T-RIGHT" in corrections
    assert f"date of use {P1_DAY - timedelta(days=1)} → {P1_DAY}" in corrections

    events = {e.field: e for e in _trail(db_session, s.use_id)}
    assert set(events) == {"reagent_lot_id", "used_on"}
    assert (events["reagent_lot_id"].old_value, events["reagent_lot_id"].new_value) == (str(s.wrong), str(s.right))
    assert (events["used_on"].old_value, events["used_on"].new_value) == (
        (P1_DAY - timedelta(days=1)).isoformat(), P1_DAY.isoformat())
    assert all(e.reason == "reagent use corrected: T-RIGHT was used: wrong lot picked" for e in events.values())
    assert events["used_on"].actor_name == "technician"

    # the recall of the wrong lot no longer touches the cell lot; the recall of the lot really used does
    assert _lots_hit_by(db_session, s.wrong) == set() and _lots_hit_by(db_session, s.right) == {s.lot_id}
    qa = client_as("qa")
    assert s.lot_number not in qa.get(f"/reagents/{s.wrong}").get_data(as_text=True)
    assert s.lot_number in qa.get(f"/reagents/{s.right}").get_data(as_text=True)
    started = qa.post("/recalls/new", data={"scope": "reagent_lot", "target": "T-RIGHT", "password": PASSWORD,
                                            "reason": "Supplier notice: mycoplasma"}, follow_redirects=True)
    assert started.status_code == 200 and s.lot_number in started.get_data(as_text=True)


def test_only_the_date_of_use_can_be_corrected(app, users, db_session, client_as):  # noqa: F811
    s = _scene(db_session)
    done = client_as("technician").post(f"/lots/{s.lot_id}/reagents/{s.use_id}/correction",
                                        data=_form(s.use_id, s.wrong, P1_DAY, "date typed wrong"))
    assert done.status_code == 302, done.get_data(as_text=True)
    assert _row(db_session, s.use_id) == (s.wrong, P1_DAY)
    assert [e.field for e in _trail(db_session, s.use_id)] == ["used_on"]


def _refused(client: Any, session: Any, s: Scene, data: dict[str, str], status: int, field: str | None,
             words: str, use_id: int | None = None, lot_id: int | None = None) -> str:
    use_id, lot_id = use_id or s.use_id, lot_id or s.lot_id
    before, events = _row(session, use_id), _events(session)
    response = client.post(f"/lots/{lot_id}/reagents/{use_id}/correction", data=data)
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert words in text, text
    if field:  # the message stands next to the field it names
        assert f'id="reagentfix{use_id}-{field}-error">' in text, text
        assert words in text.split(f'id="reagentfix{use_id}-{field}-error">')[1].split("</p>")[0]
    assert _row(session, use_id) == before and _events(session) == events  # nothing written
    return text


def test_refusals_name_the_field_and_write_nothing(app, users, db_session, client_as):  # noqa: F811
    s = _scene(db_session)
    tech = client_as("technician")
    wrong_day = P1_DAY - timedelta(days=1)
    _refused(tech, db_session, s, _form(s.use_id, s.right, P1_DAY, reason=""), 422, "reason",
             "Give the reason for the correction")
    _refused(tech, db_session, s, _form(s.use_id, s.right, P1_DAY, reason="   "), 422, "reason",
             "Give the reason for the correction")
    _refused(tech, db_session, s, _form(s.use_id, s.recalled, P1_DAY), 409, "reagent_lot_id",
             "Recalled reagent refused: Acme lot T-RECALLED")
    _refused(tech, db_session, s, _form(s.use_id, s.expired, P1_DAY), 409, "reagent_lot_id",
             "Expired reagent refused")
    _refused(tech, db_session, s, _form(s.use_id, s.medium, P1_DAY), 422, "reagent_lot_id",
             "A correction keeps the reagent type: Trypsin / dissociation reagent was recorded")
    _refused(tech, db_session, s, _form(s.use_id, s.medium, P1_DAY), 422, "reagent_lot_id",
             "to record another reagent, add it")
    _refused(tech, db_session, s, _form(s.use_id, s.wrong, wrong_day), 422, "reagent_lot_id", "Nothing changed")
    _refused(tech, db_session, s, _form(s.use_id, s.right, P1_DAY + timedelta(days=1)), 422, "used_on",
             "is outside P1")  # after P1's harvest
    _refused(tech, db_session, s, _form(s.use_id, s.right, COLLECTED + timedelta(days=2)), 422, "used_on",
             "is outside P1")  # before P1 was seeded
    _refused(tech, db_session, s, _form(s.use_id, s.right, TODAY + timedelta(days=5)), 422, "used_on",
             "The date of use cannot be in the future.")
    _refused(tech, db_session, s, _form(s.use_id, 0, P1_DAY), 422, "reagent_lot_id", "Choose the reagent lot.")
    _refused(tech, db_session, s, _form(s.use_id, 987654, P1_DAY), 404, "reagent_lot_id",
             "Choose a registered reagent lot.")

    # the same reagent lot already recorded for the stage
    p1 = db_session.scalar(select(ProcessStep.id).where(ProcessStep.lot_id == s.lot_id,
                                                        ProcessStep.passage_number == 1))
    reagents.link_reagent(db_session, user(db_session, "technician"), s.lot_id, s.right, used_on=P1_DAY, step_id=p1)
    db_session.rollback()
    _refused(tech, db_session, s, _form(s.use_id, s.right, P1_DAY), 409, "reagent_lot_id",
             "Acme lot T-RIGHT is already recorded for P1.")

    # not a technician
    before = _row(db_session, s.use_id)
    for role in ("qa", "clinician"):
        denied = client_as(role).post(f"/lots/{s.lot_id}/reagents/{s.use_id}/correction",
                                      data=_form(s.use_id, s.right, P1_DAY))
        assert denied.status_code == 403
    assert "Correct this reagent use" not in client_as("qa").get(f"/lots/{s.lot_id}").get_data(as_text=True)
    assert _row(db_session, s.use_id) == before and _trail(db_session, s.use_id) == []


def test_no_correction_of_a_use_of_another_lot_nor_once_the_lot_left_in_process(app, users, db_session,  # noqa: F811
                                                                                client_as):
    s = _scene(db_session)
    done_id, _bags = cryopreserved_lot(db_session, approved_adipose_donor(db_session), count=2, with_reagents=True)
    services.transition_lot(db_session, user(db_session, "technician"), done_id, "quarantine", "ready for QC")
    trypsin = factory_reagent(db_session, "trypsin")
    done_use = db_session.scalar(select(ReagentUse).where(ReagentUse.lot_id == done_id,
                                                          ReagentUse.reagent_lot_id == trypsin))
    done_use_id, done_day = done_use.id, done_use.used_on
    db_session.rollback()
    tech = client_as("technician")

    # a use of another lot, posted against the lot in process: 404 naming the use
    text = _refused(tech, db_session, s, _form(done_use_id, s.right, done_day), 404, None,
                    f"Reagent use #{done_use_id} is not recorded for lot {s.lot_number}", use_id=done_use_id)
    assert _row(db_session, done_use_id) == (trypsin, done_day) and "Not found" in text

    # the lot in quarantine: 409, and the page offers no correction
    text = _refused(tech, db_session, s, _form(done_use_id, s.right, done_day), 409, None,
                    "quarantine: a correction of a reagent use can no longer be recorded", use_id=done_use_id,
                    lot_id=done_id)
    assert 'id="reagent-fix-refused"' in text
    page = tech.get(f"/lots/{done_id}").get_data(as_text=True)
    assert "Correct this reagent use" not in page and "reagentfix" not in page
