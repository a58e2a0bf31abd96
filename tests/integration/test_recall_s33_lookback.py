"""A donor recall closes the donor's lookback when it starts; ended as found invalid, it no longer holds the lots nor
lists the patients, while the late positive that opened the lookback still stands: the lookback is opened again and
is back before QA (review finding "invalid donor recall doesn't reopen lookback": it stayed closed, the QA dashboard
and the recalls page said "None." and nothing asked QA to act on the donor's lots and patients any more)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from mscbatch.audit.context import use_case
from mscbatch.donors import decisions
from mscbatch.donors import services as donor_services
from mscbatch.donors.models import APPROVED, DonorLookback, ScreeningResult
from mscbatch.lots.models import Lot
from mscbatch.recall import services
from mscbatch.recall.queries import open_lookbacks
from mscbatch.recall.report import donor_lots_words, recall_report
from tests.conftest import PASSWORD
from tests.integration.test_donors import TODAY, screened_donor, user
from tests.integration.test_recall_lookbacks import _infused_cord_donor, _section


def _recall_the_donor(app, code: str) -> int:  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        donor_id = services.resolve_target(session, "donor", code)
        started = services.start_recall(session, user(session, "qa"), scope="donor", target_id=donor_id,
                                        reason="Late positive anti-HCV (LATE-HCV-1)", password=PASSWORD)
        session.commit()
        assert open_lookbacks(session) == []
        return started.recall_id


def test_a_donor_recall_ended_as_invalid_opens_the_donors_lookback_again(app, users, client_as):  # type: ignore[no-untyped-def]
    scene = _infused_cord_donor(app)
    recall_id = _recall_the_donor(app, scene["code"])
    qa = client_as("qa")
    ended = qa.post(f"/recalls/{recall_id}/end", data={"reason": "Started on the wrong report", "password": PASSWORD})
    assert ended.status_code == 302
    with app.extensions["mscbatch.db"].new_session() as session:
        found = open_lookbacks(session)
        assert [o.donor.id for o in found] == [scene["donor_id"]]
        assert found[0].recall is None and found[0].lookback.closed_at is None
        assert [p.code for p in found[0].trace.patients] == [scene["patient"]]
    for url, start, end in (("/release", 'id="lookbacks"', 'id="awaiting"'), ("/recalls", 'id="lookbacks"', 'id="recalls"')):
        section = _section(qa.get(url).get_data(as_text=True), start, end)
        assert scene["code"] in section and "LATE-HCV-1" in section and scene["patient"] in section, url
        assert f"/recalls/new?scope=donor&amp;target={scene['code']}" in section
    # a new recall of the donor closes it again
    _recall_the_donor(app, scene["code"])


def test_a_donor_approved_again_since_the_lookback_keeps_it_closed_when_the_recall_is_ended(app, users):  # type: ignore[no-untyped-def]
    scene = _infused_cord_donor(app)
    recall_id = _recall_the_donor(app, scene["code"])
    with app.extensions["mscbatch.db"].new_session() as session:
        late = session.scalar(select(ScreeningResult).where(ScreeningResult.lab_reference == "LATE-HCV-1"))
        # late news: corrected by QA, signed (session 38: a technician alone could erase it), once the recall closed
        # the lookback
        donor_services.correct_result(session, user(session, "qa"), late.id, reason="typed positive for negative",
                                      marker=late.marker, result="negative", sample_date=late.sample_date,
                                      lab_reference=late.lab_reference, password=PASSWORD)
        decisions.decide(session, user(session, "qa2"), scene["donor_id"], APPROVED, PASSWORD,  # s44: a comment
                         comment="Lab report LATE-HCV-1 read: anti-HCV negative")  # on the corrected positive
        services.end_recall(session, user(session, "qa"), recall_id, reason="False positive: result corrected",
                            password=PASSWORD)
        session.commit()
        assert open_lookbacks(session) == []
        assert session.scalar(select(DonorLookback.closed_at)) is not None


def test_a_lot_recall_lists_the_donors_other_lots_it_does_not_cover(app, users, client_as):  # type: ignore[no-untyped-def]
    """A lot recalled because its donor was found positive leaves the donor's other lots in stock: the recall's page
    and report name them, with the donor's open lookback, and offer the donor's recall (before: nothing said so)."""
    scene = _infused_cord_donor(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        released = session.get(Lot, scene["released"])
        quarantined = session.get(Lot, scene["quarantined"])
        started = services.start_recall(session, user(session, "qa"), scope="lot", target_id=released.id,
                                        reason="Donor anti-HCV positive (LATE-HCV-1)", password=PASSWORD)
        session.commit()
        other_number = quarantined.lot_number
        report = recall_report(session, started.recall_id)
        assert report.donor_lots is not None and [lot.id for lot in report.donor_lots.lots] == [quarantined.id]
        assert report.donor_lots.lookback_open and report.donor_lots.donor_in_question
        assert other_number in donor_lots_words(report.donor_lots)
    page = client_as("qa").get(f"/recalls/{started.recall_id}").get_data(as_text=True)
    section = _section(page, 'id="donor-lots"', "</section>")
    assert other_number in section and "open lookback" in section
    assert f"/recalls/new?scope=donor&amp;target={scene['code']}" in section
    with app.extensions["mscbatch.db"].new_session() as session:  # the donor's recall covers them: said so
        donor_recall = services.start_recall(session, user(session, "qa"), scope="donor", target_id=scene["donor_id"],
                                             reason="Donor anti-HCV positive (LATE-HCV-1)", password=PASSWORD)
        session.commit()
        assert recall_report(session, started.recall_id).donor_lots.donor_recall.id == donor_recall.recall_id
    section = _section(client_as("qa").get(f"/recalls/{started.recall_id}").get_data(as_text=True),
                       'id="donor-lots"', "</section>")
    assert f"Recall R-{donor_recall.recall_id} of the donor covers" in section and "/recalls/new" not in section


def test_a_donor_recall_closes_every_open_lookback_of_the_donor(app, users):  # type: ignore[no-untyped-def]
    """A donor reopened by a late result, approved again, then reopened by a newer one has two open lookbacks; the
    recall closed only the newest, and the older stayed on the QA dashboard for good (a second recall of the donor is
    refused while the first is in force)."""
    with app.extensions["mscbatch.db"].new_session() as session:
        tech = user(session, "technician")
        donor_id = screened_donor(session, "cord_eu")
        decisions.decide(session, user(session, "qa"), donor_id, APPROVED, PASSWORD)
        for result, day in (("indeterminate", TODAY - timedelta(days=1)), ("negative", TODAY)):
            donor_services.record_result(session, tech, donor_id, marker="anti_hcv", result=result, sample_date=day,
                                         lab_reference=f"RETEST-{result}")
        session.commit()
        # an approval is now refused while a lookback is open (session 38): the donor approved again over its open
        # lookback, then reopened, is what an older version left; its second lookback is written as it was then
        first = session.scalar(select(DonorLookback).where(DonorLookback.donor_id == donor_id))
        with use_case(session, user(session, "qa2")):
            session.add(DonorLookback(donor_id=donor_id, opened_by_id=tech.id, reason="Newer indeterminate anti-HCV",
                                      superseded_decision_id=first.superseded_decision_id))
        assert len(open_lookbacks(session)) == 2
        started = services.start_recall(session, user(session, "qa"), scope="donor", target_id=donor_id,
                                        reason="Repeated indeterminate anti-HCV", password=PASSWORD)
        session.commit()
        assert open_lookbacks(session) == []
        assert all(lb.closure_note == f"Recall R-{started.recall_id} started: Repeated indeterminate anti-HCV"
                   for lb in session.scalars(select(DonorLookback)))
