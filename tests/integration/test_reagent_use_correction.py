"""A reagent use recorded in error (the wrong trypsin lot picked, a date of use typed wrong) is corrected on the lot
page while the lot is in process, with its reason (EU GMP ch. 4.9): the row changes in place, the audit trail keeps
the old and new values, the lot page lists the correction, and a recall by reagent lot (queries.lots_using_reagent)
now finds the cell lot under the lot really used and no longer under the wrong one. Every refusal is a 4xx naming
the field, and nothing is written. Through the lot page (harvest and passage corrections have no API either).

A correction records what happened: the lot really used is accepted even when recalled or expired, with a warning,
and a recall of it then holds the cell lot's bags at once; a use of a reagent lot under an active recall cannot be
corrected away from it (that would take the cell lot out of the recall) while its date still can."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.lots import reagents, services
from mscbatch.lots.models import Lot, ProcessStep, ReagentUse
from mscbatch.lots.queries import bags_of
from mscbatch.recall import services as recalls
from mscbatch.recall.models import BagHold, Recall
from mscbatch.recall.queries import recalls_covering
from mscbatch.release.release import refusals
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
    done_id, _bags = cryopreserved_lot(db_session, approved_adipose_donor(db_session), count=2, with_reagents=True,
                                       placed=True)
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


# --- a recalled or expired reagent lot really used; a use under recall -------------------------------------------


@dataclass(frozen=True)
class Frozen:
    lot_id: int
    lot_number: str
    use_id: int  # trypsin T-WRONG recorded for P1, the day before P1's harvest
    bag_ids: list[int]


def _frozen(session: Any, s: Scene) -> Frozen:
    """A lot still in process, frozen into 4 bags, whose record names T-WRONG for P1 (the lot's P1 is P1_DAY)."""
    lot_id, _made = cryopreserved_lot(session, approved_adipose_donor(session), count=4)
    p1 = session.scalar(select(ProcessStep.id).where(ProcessStep.lot_id == lot_id, ProcessStep.passage_number == 1))
    use = reagents.link_reagent(session, user(session, "technician"), lot_id, s.wrong,
                                used_on=P1_DAY - timedelta(days=1), step_id=p1)
    lot = session.get(Lot, lot_id)
    frozen = Frozen(lot_id, lot.lot_number, use.id, [b.id for b in bags_of(session, lot_id)])
    assert lot.status == "in_process" and len(frozen.bag_ids) == 4
    session.rollback()
    return frozen


def _holds(session: Any, bag_ids: list[int]) -> set[tuple[int, int]]:
    """(recall id, bag id) of the active holds of these bags."""
    held = {(r, b) for r, b in session.execute(select(BagHold.recall_id, BagHold.bag_id).where(
        BagHold.bag_id.in_(bag_ids), BagHold.lifted_at.is_(None)))}
    session.rollback()
    return held


def _recall_of(session: Any, reagent_lot_id: int) -> int:
    found = session.scalar(select(Recall.id).where(Recall.reagent_lot_id == reagent_lot_id, Recall.status == "active"))
    session.rollback()
    return int(found)


def _covering(session: Any, lot_id: int) -> list[int]:
    found = [r.id for r in recalls_covering(session, session.get(Lot, lot_id))]
    session.rollback()
    return found


def _flash(page: str) -> tuple[str, str]:
    """(category, words) of the page's last flash (the first one may be the sign-in's)."""
    rest = page.split('<div class="flash flash-')[-1]
    return rest.split('"')[0], rest.split(">", 1)[1].split("</div>")[0]


def test_a_correction_to_the_recalled_lot_really_used_is_accepted_and_holds_the_lots_bags(
        app, users, db_session, client_as):  # noqa: F811
    s = _scene(db_session)
    f = _frozen(db_session, s)
    recall_id = _recall_of(db_session, s.recalled)
    assert _holds(db_session, f.bag_ids) == set() and _covering(db_session, f.lot_id) == []
    tech = client_as("technician")
    done = tech.post(f"/lots/{f.lot_id}/reagents/{f.use_id}/correction",
                     data=_form(f.use_id, s.recalled, P1_DAY, "T-RECALLED was used: wrong lot picked"))
    assert done.status_code == 302, done.get_data(as_text=True)
    assert _row(db_session, f.use_id) == (s.recalled, P1_DAY)
    category, words = _flash(tech.get(f"/lots/{f.lot_id}").get_data(as_text=True))
    assert category == "warning", words
    assert words == (f"Reagent use for P1 corrected. TrypLE lot T-RECALLED is under recall R-{recall_id}: lot "
                     f"{f.lot_number} is now covered by it and its 4 bags are on hold. Record a deviation and tell "
                     "QA."), words

    # the recall now reaches the lot: its bags are held (the bedside check refuses them), release is refused
    assert _holds(db_session, f.bag_ids) == {(recall_id, b) for b in f.bag_ids}
    assert _covering(db_session, f.lot_id) == [recall_id]
    assert f.lot_id in _lots_hit_by(db_session, s.recalled)
    reasons = refusals(db_session, db_session.get(Lot, f.lot_id), user(db_session, "qa"))
    db_session.rollback()
    assert any(r.startswith(f"the lot is covered by recall R-{recall_id} ") for r in reasons), reasons
    page = client_as("qa").get(f"/recalls/{recall_id}").get_data(as_text=True)
    assert f.lot_number in page
    trail = {e.field: e for e in _trail(db_session, f.use_id)}
    assert (trail["reagent_lot_id"].old_value, trail["reagent_lot_id"].new_value) == (str(s.wrong), str(s.recalled))


def test_a_correction_to_a_recalled_lot_before_the_freeze_warns_and_the_freeze_holds(
        app, users, db_session, client_as):  # noqa: F811
    s = _scene(db_session)
    recall_id = _recall_of(db_session, s.recalled)
    tech = client_as("technician")
    done = tech.post(f"/lots/{s.lot_id}/reagents/{s.use_id}/correction", data=_form(s.use_id, s.recalled, P1_DAY))
    assert done.status_code == 302, done.get_data(as_text=True)
    assert _row(db_session, s.use_id) == (s.recalled, P1_DAY)
    category, words = _flash(tech.get(f"/lots/{s.lot_id}").get_data(as_text=True))
    assert category == "warning" and f"is under recall R-{recall_id}: lot {s.lot_number} is now covered by it and " \
        "the bags frozen from it will be held. Record a deviation and tell QA." in words, words
    assert _covering(db_session, s.lot_id) == [recall_id]


def test_a_correction_to_the_expired_lot_really_used_is_accepted_with_a_warning(app, users, db_session,  # noqa: F811
                                                                               client_as):
    s = _scene(db_session)
    tech = client_as("technician")
    done = tech.post(f"/lots/{s.lot_id}/reagents/{s.use_id}/correction", data=_form(s.use_id, s.expired, P1_DAY))
    assert done.status_code == 302, done.get_data(as_text=True)
    assert _row(db_session, s.use_id) == (s.expired, P1_DAY)
    category, words = _flash(tech.get(f"/lots/{s.lot_id}").get_data(as_text=True))
    assert category == "warning", words
    assert words == (f"Reagent use for P1 corrected. TrypLE lot T-EXPIRED had expired on {P1_DAY - timedelta(days=2)}, "
                     f"before its use on {P1_DAY}. Record a deviation and tell QA."), words
    # a new use of an expired or recalled lot is still refused
    p0, p1 = (db_session.scalar(select(ProcessStep.id).where(ProcessStep.lot_id == s.lot_id,
                                                             ProcessStep.passage_number == n)) for n in (0, 1))
    db_session.rollback()
    for reagent_lot_id, step_id, words in ((s.expired, p1, "Expired reagent refused"),
                                           (s.recalled, p0, "Recalled reagent refused")):
        refused = tech.post(f"/lots/{s.lot_id}/reagents", data={
            "reagent-reagent_lot_id": str(reagent_lot_id), "reagent-step_id": str(step_id),
            "reagent-used_on": (P1_DAY if step_id == p1 else COLLECTED + timedelta(days=4)).isoformat()})
        assert refused.status_code == 409 and words in refused.get_data(as_text=True), refused.get_data(as_text=True)


def test_a_use_under_an_active_recall_is_not_corrected_away_from_it(app, users, db_session, client_as):  # noqa: F811
    s = _scene(db_session)
    f = _frozen(db_session, s)
    started = recalls.start_recall(db_session, user(db_session, "qa"), scope="reagent_lot", target_id=s.wrong,
                                   reason="Supplier notice: endotoxin", password=PASSWORD)
    db_session.rollback()
    recall_id = started.recall_id
    held = _holds(db_session, f.bag_ids)
    assert held == {(recall_id, b) for b in f.bag_ids} and _covering(db_session, f.lot_id) == [recall_id]
    tech = client_as("technician")
    _refused(tech, db_session, s, _form(f.use_id, s.right, P1_DAY - timedelta(days=1)), 409, "reagent_lot_id",
             f"TrypLE lot T-WRONG is under recall R-{recall_id}, which covers lot {f.lot_number}: its record cannot "
             "be corrected away from it while the recall is in force. Ask QA.", use_id=f.use_id, lot_id=f.lot_id)
    _refused(tech, db_session, s, _form(f.use_id, s.recalled, P1_DAY), 409, "reagent_lot_id",
             f"is under recall R-{recall_id}", use_id=f.use_id, lot_id=f.lot_id)  # even to another recalled lot
    assert _holds(db_session, f.bag_ids) == held and _covering(db_session, f.lot_id) == [recall_id]
    assert f.lot_id in _lots_hit_by(db_session, s.wrong)
    assert f.lot_number in client_as("qa").get(f"/recalls/{recall_id}").get_data(as_text=True)

    # once QA ends the recall, the record can be corrected away from it
    recalls.end_recall(db_session, user(db_session, "qa"), recall_id, reason="Supplier withdrew the notice",
                       password=PASSWORD)
    db_session.rollback()
    done = tech.post(f"/lots/{f.lot_id}/reagents/{f.use_id}/correction", data=_form(f.use_id, s.right, P1_DAY))
    assert done.status_code == 302, done.get_data(as_text=True)
    assert _row(db_session, f.use_id) == (s.right, P1_DAY)


def test_a_use_under_an_active_recall_answers_nothing_changed_and_its_date_can_be_corrected(
        app, users, db_session, client_as):  # noqa: F811
    s = _scene(db_session)
    f = _frozen(db_session, s)
    recall_id = recalls.start_recall(db_session, user(db_session, "qa"), scope="reagent_lot", target_id=s.wrong,
                                     reason="Supplier notice: endotoxin", password=PASSWORD).recall_id
    db_session.rollback()
    held = _holds(db_session, f.bag_ids)
    tech = client_as("technician")

    # re-submitting the values recorded: nothing changed (not a recall message)
    text = _refused(tech, db_session, s, _form(f.use_id, s.wrong, P1_DAY - timedelta(days=1)), 422,
                    "reagent_lot_id", "Nothing changed", use_id=f.use_id, lot_id=f.lot_id)
    assert "recall" not in text.split(f'id="reagentfix{f.use_id}-reagent_lot_id-error">')[1].split("</p>")[0]

    # its date can still be corrected: the recall still covers the lot, no recall check, a plain success
    done = tech.post(f"/lots/{f.lot_id}/reagents/{f.use_id}/correction",
                     data=_form(f.use_id, s.wrong, P1_DAY, "date typed wrong"))
    assert done.status_code == 302, done.get_data(as_text=True)
    assert _row(db_session, f.use_id) == (s.wrong, P1_DAY)
    category, words = _flash(tech.get(f"/lots/{f.lot_id}").get_data(as_text=True))
    assert category == "success" and "recall" not in words, words
    assert [e.field for e in _trail(db_session, f.use_id)] == ["used_on"]
    assert _holds(db_session, f.bag_ids) == held and _covering(db_session, f.lot_id) == [recall_id]

