"""The lot list's donor flag (Lot.gate_now) is the donor gate now, as the lot page and release judge it; for the
list it is taken from the decision in force when nothing changed since the lot started (lots.queries.known_gates),
and judged in full otherwise."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from mscbatch.donors import decisions, services
from mscbatch.donors.models import APPROVED
from mscbatch.lots import services as lot_services
from mscbatch.lots.models import Lot
from mscbatch.lots.queries import LotFilters, list_lots
from tests.conftest import PASSWORD
from tests.integration.lot_factories import COLLECTION_DAYS_AGO, approved_adipose_donor, start_lot
from tests.integration.lot_factories import TODAY as LOT_TODAY
from tests.integration.test_donors import db_session, user  # noqa: F401 (fixture)


def _listed(db_session, monkeypatch):  # noqa: F811
    """{lot id: gate the list shows} and the lots the list judged in full."""
    judged: list[int] = []
    full = lot_services.current_gate

    def counting(session, lot):  # type: ignore[no-untyped-def]
        judged.append(lot.id)
        return full(session, lot)

    monkeypatch.setattr(lot_services, "current_gate", counting)
    db_session.expunge_all()  # a fresh read, as a new request makes
    page = list_lots(db_session, LotFilters())
    return {lot.id: lot.gate_now for lot, _code in page.lots}, judged


def test_an_unchanged_approved_lot_is_not_judged_again_and_a_changed_one_is(app, users, db_session, monkeypatch):  # noqa: F811
    steady = start_lot(db_session, approved_adipose_donor(db_session))
    reopened_donor = approved_adipose_donor(db_session)
    reopened = start_lot(db_session, reopened_donor)
    reapproved_donor = approved_adipose_donor(db_session)
    reapproved = start_lot(db_session, reapproved_donor)
    db_session.commit()
    late = LOT_TODAY - timedelta(days=COLLECTION_DAYS_AGO - 2)
    # new information reopens one donor (a late positive) and another (a negative, then QA approves again)
    services.record_result(db_session, user(db_session, "technician"), reopened_donor, marker="anti_hiv_1_2",
                           result="positive", sample_date=late, lab_reference="LATE-POS")
    services.record_result(db_session, user(db_session, "technician"), reapproved_donor, marker="anti_hiv_1_2",
                           result="negative", sample_date=late, lab_reference="LATE-NEG")
    db_session.commit()
    decisions.decide(db_session, user(db_session, "qa"), reapproved_donor, APPROVED, PASSWORD)
    db_session.commit()

    shown, judged = _listed(db_session, monkeypatch)
    assert (shown[steady], shown[reopened], shown[reapproved]) == ("approved", "ineligible", "approved")
    assert steady not in judged and {reopened, reapproved} <= set(judged)
    # and what the list shows is what the full judgement says, lot by lot
    for lot in db_session.scalars(select(Lot)):
        assert shown[lot.id] == lot_services.current_gate(db_session, lot), lot.lot_number


def test_a_decision_judged_after_the_lot_started_is_judged_in_full(app, users, db_session, monkeypatch):  # noqa: F811
    donor_id = approved_adipose_donor(db_session)
    lot_id = start_lot(db_session, donor_id)
    db_session.commit()
    started = db_session.get(Lot, lot_id).created_at - timedelta(days=400)  # long before the decision in force
    db_session.execute(update(Lot.__table__).where(Lot.__table__.c.id == lot_id).values(created_at=started))
    db_session.commit()
    _shown, judged = _listed(db_session, monkeypatch)
    assert lot_id in judged


def test_the_lots_csv_gives_the_donor_gate_now_beside_the_gate_at_the_start(app, users, db_session, client_as):  # noqa: F811
    """The export said "approved" for a lot whose donor a late positive had reopened, where the list and the API
    said otherwise: a report built from it would count that lot as usable."""
    import csv
    import io

    steady = start_lot(db_session, approved_adipose_donor(db_session))
    reopened_donor = approved_adipose_donor(db_session)
    reopened = start_lot(db_session, reopened_donor)
    db_session.commit()
    late = LOT_TODAY - timedelta(days=COLLECTION_DAYS_AGO - 2)
    services.record_result(db_session, user(db_session, "technician"), reopened_donor, marker="anti_hiv_1_2",
                           result="positive", sample_date=late, lab_reference="LATE-POS")
    db_session.commit()
    numbers = {lot.id: lot.lot_number for lot in db_session.scalars(select(Lot))}
    db_session.commit()  # ends the read (SQLite: every transaction holds the write lock)
    response = client_as("qa").get("/exports/lots.csv")
    assert response.status_code == 200
    rows = {row["lot_number"]: row for row in csv.DictReader(io.StringIO(response.get_data(as_text=True)))}
    assert (rows[numbers[steady]]["donor_gate"], rows[numbers[steady]]["donor_gate_at_start"]) == ("approved",
                                                                                                 "approved")
    assert (rows[numbers[reopened]]["donor_gate"], rows[numbers[reopened]]["donor_gate_at_start"]) == (
        "ineligible", "approved")
