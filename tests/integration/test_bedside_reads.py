"""What the bedside check reads, the hot path of every scan: one statement for a check that MATCHES (on the web,
one for the POST that records it, three for the GET of its page, which reads the recorded check and also says which
of the prescribed bags it is), and no column of the bag, its lot or the patient loaded afterwards by the answer (JSON
or page), although the check's statement loads only the columns it names (mscbatch.custody.checks BAG_SHOWN,
LOT_SHOWN, PATIENT_SHOWN)."""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from mscbatch.custody.checks import evaluate
from tests.conftest import api_token_for
from tests.integration.test_custody_support import KEY, prescribed_bag, ward_bag


@contextmanager
def orm_reads() -> Iterator[dict[str, list[str]]]:
    """Every ORM statement of any session in the block, and those that load a column not yet loaded."""
    seen: dict[str, list[str]] = {"statements": [], "column_loads": []}

    def executed(state: ORMExecuteState) -> None:
        seen["statements"].append(str(state.statement))
        if state.is_column_load:
            seen["column_loads"].append(str(state.statement))

    event.listen(Session, "do_orm_execute", executed)
    try:
        yield seen
    finally:
        event.remove(Session, "do_orm_execute", executed)


def test_a_check_that_matches_reads_with_one_statement(app, users, db_session):
    ward = ward_bag(app)
    with orm_reads() as seen:
        result = evaluate(db_session, ward.wristband, ward.token, KEY)
        # everything its two answers show of the bag, the lot and the patient
        shown = (result.bag.id, result.bag.din, result.bag.din_display, result.bag.check_character,
                 result.bag.bag_number, result.bag.bag_count, result.bag.volume_ml, result.bag.expires_at,
                 result.lot.id, result.lot.lot_number, result.lot.product_name, result.patient.code,
                 result.patient.initials, result.patient.date_of_birth)
    assert result.matches, result.failures
    assert all(value is not None for value in shown)
    assert len(seen["statements"]) == 1, seen["statements"]


#: what the sign-in reads at every request (the session, the user and their roles), not the check's
SIGN_IN_TABLES = ("auth_session", "user_account", "user_role")


def _check_reads(seen: dict[str, list[str]]) -> list[str]:
    return [s for s in seen["statements"] if re.search(r"\bFROM\s+(\w+)", s).group(1) not in SIGN_IN_TABLES]


def test_the_web_page_of_a_check_that_matches_reads_with_one_statement_then_three(app, users, client_as):
    """Post-redirect-get (review 5): the POST records the check (its one read: the check itself) and answers 303;
    the GET of /ward/checks/<id> records nothing and reads three: the recorded check row, the facts read again now
    (the check's one statement) and the bag's place in the prescription. Counted per request, sign-in excluded."""
    ward = ward_bag(app)
    nurse = client_as("nurse")
    with orm_reads() as posted:
        answer = nurse.post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token})
    assert answer.status_code == 303 and re.fullmatch(r"/ward/checks/\d+", answer.headers["Location"])
    assert len(_check_reads(posted)) <= 1, _check_reads(posted)
    with orm_reads() as shown:
        page = nurse.get(answer.headers["Location"])
    assert page.status_code == 200 and ">MATCHES<" in page.get_data(as_text=True)
    assert "bag 1 of the 3 prescribed for this patient" in page.get_data(as_text=True)  # the third statement
    assert len(_check_reads(shown)) <= 3, _check_reads(shown)


def test_the_answers_of_a_check_load_no_column_the_check_did_not_read(app, users, client_as):
    ward, other = ward_bag(app), ward_bag(app)
    nurse = client_as("nurse")
    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}
    with orm_reads() as seen:
        # each followed to its page (303 to GET /ward/checks/<id>): the page's reads are counted too
        page = nurse.post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token}, follow_redirects=True)
        stop = nurse.post("/ward/check", data={"wristband": other.wristband, "bag": ward.token},
                          follow_redirects=True)
        answer = app.test_client().post("/api/v1/custody/scan-verify", headers=headers,
                                        json={"wristband": ward.wristband, "bag": ward.token})
    assert [r.status_code for r in page.history + stop.history] == [303, 303]
    assert page.status_code == 200 and ">MATCHES<" in page.get_data(as_text=True)
    assert stop.status_code == 200 and "WRONG PATIENT" in stop.get_data(as_text=True)
    assert answer.status_code == 200 and answer.get_json()["result"] == "MATCHES"
    assert seen["column_loads"] == [], seen["column_loads"]


def test_a_check_of_a_patient_given_an_infusion_in_the_last_24_hours_reads_its_dmso_with_two_statements_more(
        app, users, db_session):
    """The check's one statement says whether the patient had an infusion in the last 24 hours (an EXISTS bound to
    "since" = now - 24 h, at every scan); only then does it read two more: the DMSO already given in them
    (patients.inventory.dmso_given_within) and the prescription's weight and DMSO limit per kg per day."""
    from mscbatch.custody import handover, infusions
    from mscbatch.lots.models import Bag
    from tests.integration.patient_factories import user
    from tests.integration.test_custody_support import checked_and_confirmed, token_of

    ward = prescribed_bag(db_session)  # three bags of 25 mL: 2.75 g of DMSO each, far below 1 g/kg
    checked_and_confirmed(db_session, ward)
    nurse, tech = user(db_session, "nurse"), user(db_session, "technician")
    started = infusions.start_infusion(db_session, nurse, ward.bag_id, wristband=ward.wristband,
                                       bag_scan=ward.token, label_key=KEY)
    # ended, as prescribed: a bag still running is a STOP for the next one (s41)
    infusions.end_infusion(db_session, nurse, started.id, volume_ml="25")
    second = db_session.get(Bag, ward.other_bag_ids[0])
    handover.dispatch(db_session, tech, second.id, courier="C", shipper="S", temperature_logger_id="T")
    handover.receive(db_session, nurse, second.id, scan=token_of(second))
    handover.thaw(db_session, nurse, second.id, scan=token_of(second))
    token = token_of(second)
    db_session.commit()
    with orm_reads() as seen:
        result = evaluate(db_session, ward.wristband, token, KEY)
    assert result.matches, result.failures
    assert len(seen["statements"]) == 3, seen["statements"]
    assert "FROM infusion JOIN bag" in seen["statements"][1]  # dmso_given_within
    assert seen["column_loads"] == [], seen["column_loads"]

    # the same infusion started 24 hours and a minute before the scan: outside the window, one statement again;
    # started 23 hours before it (the day before, on most clocks), inside: two more
    from datetime import timedelta

    from sqlalchemy import update

    from mscbatch.custody.models import Infusion
    from mscbatch.database import utcnow

    now = utcnow()
    for ago, statements in ((timedelta(hours=24, minutes=1), 1), (timedelta(hours=23), 3)):
        db_session.commit()
        with app.extensions["mscbatch.db"].engine.begin() as connection:  # a start is always "now": moved here
            connection.execute(update(Infusion.__table__).where(Infusion.__table__.c.bag_id == ward.bag_id)
                               .values(started_at=now - ago))
        with orm_reads() as seen:
            result = evaluate(db_session, ward.wristband, token, KEY, now=now)
        assert result.matches, result.failures
        assert len(seen["statements"]) == statements, (ago, seen["statements"])
