"""A donor recall's report lists the lookbacks it covers (lookbacks_of_recall) with each one's late result: it read
the result of each lookback by itself (one statement a lookback). It reads them in one joined statement now, with
the names of who opened and closed each: the count of statements does not grow with the number of lookbacks."""
from __future__ import annotations

from typing import Any

from mscbatch.donors import services as donor_services
from mscbatch.recall import services
from mscbatch.recall.queries import open_lookbacks
from mscbatch.recall.report import lookbacks_of_recall
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.statements import statements_sent
from tests.integration.test_donors import user
from tests.integration.test_recall_lookbacks import _infused_cord_donor


def _listed(app: Any, recall_id: int) -> tuple[list[str], int]:
    """The lookbacks' sentences, and the statements lookbacks_of_recall sent (in a fresh session: nothing cached)."""
    with app.extensions["mscbatch.db"].new_session() as session:
        recall = services.get_recall(session, recall_id)
        with statements_sent(app) as seen:
            covered = lookbacks_of_recall(session, recall)
        return [c.words() for c in covered], len(seen)


def test_the_lookbacks_of_a_recall_are_read_in_one_statement(app, users):  # type: ignore[no-untyped-def]
    s = _infused_cord_donor(app)  # a lookback open on LATE-HCV-1
    with app.extensions["mscbatch.db"].new_session() as session:
        qa = user(session, "qa")
        recall_id = services.start_recall(session, qa, scope="donor", target_id=s["donor_id"], password=PASSWORD,
                                          reason="Late positive anti-HCV (LATE-HCV-1)").recall_id
        session.commit()
    one, sent_for_one = _listed(app, recall_id)
    assert len(one) == 1 and "(report LATE-HCV-1)" in one[0]

    for marker, report in (("anti_hiv_1_2", "LATE-HIV-2"), ("hbsag", "LATE-HBS-3"), ("syphilis", "LATE-SYPH-4")):
        with app.extensions["mscbatch.db"].new_session() as session:  # a later result, closed under the recall
            donor_services.record_result(session, user(session, "technician"), s["donor_id"], marker=marker,
                                         result="positive", sample_date=site_today(), lab_reference=report)
            session.commit()
            lookback_id = open_lookbacks(session)[0].lookback.id
            services.close_lookback(session, user(session, "qa"), lookback_id, note=f"Covered by the recall: {report}")
            session.commit()
    four, sent_for_four = _listed(app, recall_id)
    assert len(four) == 4
    for words, report in zip(four, ("LATE-HCV-1", "LATE-HIV-2", "LATE-HBS-3", "LATE-SYPH-4"), strict=True):
        assert f"(report {report})" in words  # each with its own late result, oldest first
    assert sent_for_four == sent_for_one == 1
