"""A recall at scale (a reagent lot in 994 lots, 10 000 bags): its page read each bag's allocations and hold one bag
at a time (24 000 statements, 36 s: killed by gunicorn's timeout) and printed one table of every bag in its PDF
(which never finished). The page and the report now read the recall's bags set-based, so the count of statements
does not grow with the number of bags; the page shows a whole summary and the notify list, and its bag table in
pages; the PDF still lists every bag."""
from __future__ import annotations

import re
from typing import Any

import pytest

from mscbatch.recall import services, views
from mscbatch.recall.report import recall_report, recall_report_pdf
from mscbatch.recall.traceability import trace_lot, trace_lots
from tests.conftest import PASSWORD
from tests.integration.lot_factories import approved_adipose_donor, cryopreserved_lot
from tests.integration.statements import statements_sent
from tests.integration.test_donors import db_session, user  # noqa: F401 (fixture)


def _donor_recall(session: Any, lots: int, bags: int) -> tuple[int, int]:
    """A donor with `lots` lots of `bags` bags each, recalled: (donor id, recall id)."""
    donor_id = approved_adipose_donor(session)
    for _ in range(lots):
        cryopreserved_lot(session, donor_id, count=bags)
    session.commit()
    recall_id = services.start_recall(session, user(session, "qa"), scope="donor", target_id=donor_id,
                                      password=PASSWORD, reason="Late positive anti-HBc").recall_id
    session.commit()
    return donor_id, recall_id


def _page_statements(app: Any, client: Any, recall_id: int) -> tuple[int, str]:
    client.get(f"/recalls/{recall_id}")  # the first request of a client reads what every later one has cached
    with statements_sent(app) as seen:
        page = client.get(f"/recalls/{recall_id}")
    assert page.status_code == 200
    return len(seen), page.get_data(as_text=True)


def test_the_recall_page_and_report_read_as_many_statements_for_1_lot_as_for_3(app, users, db_session,  # noqa: F811
                                                                                client_as):  # type: ignore[no-untyped-def]
    _small_donor, small = _donor_recall(db_session, lots=1, bags=2)
    big_donor, big = _donor_recall(db_session, lots=3, bags=4)
    qa = client_as("qa")
    for_small, _ = _page_statements(app, qa, small)
    for_big, page = _page_statements(app, qa, big)
    assert page.count("<tr data-din=") == 12 and page.count('data-hold="active"') == 12
    assert for_big == for_small, (for_small, for_big)
    with statements_sent(app) as pdf_small:
        assert qa.get(f"/recalls/{small}/report.pdf").status_code == 200
    with statements_sent(app) as pdf_big:
        assert qa.get(f"/recalls/{big}/report.pdf").status_code == 200
    assert len(pdf_big) == len(pdf_small)
    # the set-based read says what the per-lot read said, bag by bag
    lots = [lot_trace.lot for lot_trace in recall_report(db_session, big).lots]
    one_by_one = [trace_lot(db_session, lot) for lot in lots]
    together = trace_lots(db_session, lots)
    assert [(t.lot.id, t.donor.id, [(u.id, r.id) for u, r in t.reagents],
             [(b.bag.id, b.hold, b.recipients) for b in t.bags]) for t in together] == \
           [(t.lot.id, t.donor.id, [(u.id, r.id) for u, r in t.reagents],
             [(b.bag.id, b.hold, b.recipients) for b in t.bags]) for t in one_by_one]
    assert all(b.hold and "on hold by recall R-" in b.hold for t in together for b in t.bags)


def test_a_long_bag_table_is_shown_in_pages_and_the_summary_and_pdf_stay_whole(app, users, db_session,  # noqa: F811
                                                                                client_as,
                                                                                monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    _donor, recall_id = _donor_recall(db_session, lots=3, bags=4)
    monkeypatch.setattr(views, "BAGS_PER_PAGE", 5)
    qa = client_as("qa")
    first = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    assert first.count("<tr data-din=") == 5
    assert "Showing bags 1–5 of 12 (page 1 of 3; the PDF report lists every bag)" in first
    assert f'href="/recalls/{recall_id}?page=2#bags" rel="next"' in first
    assert 'id="bag-status-counts"' in first and "12 affected bags by status" in first
    assert "ON HOLD in stock</th><td>12</td>" in first  # the summary counts every bag, not the page's
    last = qa.get(f"/recalls/{recall_id}?page=3").get_data(as_text=True)
    assert last.count("<tr data-din=") == 2 and "Showing bags 11–12 of 12" in last and 'rel="next"' not in last
    assert 'rel="prev"' in last
    beyond = qa.get(f"/recalls/{recall_id}?page=99").get_data(as_text=True)
    assert beyond.count("<tr data-din=") == 2  # the last page
    seen: list[str] = []
    for page in (1, 2, 3):
        answer = qa.get(f"/recalls/{recall_id}?page={page}")
        assert answer.status_code == 200
        seen += re.findall(r'<tr data-din="([^"]+)"', answer.get_data(as_text=True))
    report = recall_report(db_session, recall_id)
    assert len(seen) == len(set(seen)) == len(report.lines) == 12  # every bag once, on one page or another
    pdf = recall_report_pdf(report)
    assert pdf.startswith(b"%PDF")


def test_a_short_recall_has_no_pages(app, users, db_session, client_as):  # type: ignore[no-untyped-def]  # noqa: F811
    _donor, recall_id = _donor_recall(db_session, lots=1, bags=2)
    page = client_as("qa").get(f"/recalls/{recall_id}").get_data(as_text=True)
    assert page.count("<tr data-din=") == 2 and "Showing bags" not in page and "Patients to notify" in page
