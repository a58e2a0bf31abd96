"""The release page's blockers: what is wrong (a failed test) first, in bold with its cross, then the results still
awaited, counted, in a panel of their own. Before, one failed CD105 was the third line of twenty, in the same red as
"CD73 pending". An unharvested lot's manufacturing summary says so in words ("harvest not recorded yet"), not
"harvest — cells, viability — %"."""
from __future__ import annotations

from mscbatch.site import site_today
from tests.integration.lot_factories import approved_adipose_donor, start_lot
from tests.integration.test_release_support import seed_quarantine_lot


def _section(page: str, start: str, end: str) -> str:
    return page[page.index(start):page.index(end, page.index(start))]


def test_a_failed_test_is_listed_before_the_results_still_awaited(app, users, client_as, monkeypatch):
    lot_id = seed_quarantine_lot(app, monkeypatch)
    sent = client_as("technician").post(f"/release/lots/{lot_id}/results", data={
        "result-test_id": "cd105", "result-value": "94.6", "result-unit": "%", "result-analyst": "Tom QC",
        "result-tested_on": site_today().isoformat()})
    assert sent.status_code == 302, sent.get_data(as_text=True)[:500]
    page = client_as("qa").get(f"/release/lots/{lot_id}").get_data(as_text=True)
    blocking = _section(page, 'id="blocking"', 'id="results"')
    problems = _section(blocking, 'id="blockers-problems"', "</ul>")
    awaited = _section(blocking, 'id="blockers-awaited"', "</details>")
    assert "CD105 failed" in problems and " pending (" not in problems
    assert "CD105" not in awaited and "CD73 pending (no valid result yet)" in awaited
    assert "Results still awaited (" in awaited and 'id="blockers-awaited" open' not in blocking
    assert blocking.index("blockers-problems") < blocking.index("blockers-awaited")


def test_with_only_results_awaited_their_panel_is_open(app, users, client_as,
                                                                                        monkeypatch):
    lot_id = seed_quarantine_lot(app, monkeypatch)
    page = client_as("qa").get(f"/release/lots/{lot_id}").get_data(as_text=True)
    blocking = _section(page, 'id="blocking"', 'id="results"')
    assert 'id="blockers-problems"' not in blocking and 'id="blockers-awaited" open' in blocking
    summary = _section(page, 'id="h-summary"', "</dl>")
    assert "harvest " in summary and "— cells" not in summary and "— %" not in summary


def test_an_unharvested_lots_summary_says_so_in_words(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    try:
        lot_id = start_lot(session, approved_adipose_donor(session))
        session.commit()
    finally:
        session.close()
    page = client_as("qa").get(f"/release/lots/{lot_id}").get_data(as_text=True)
    summary = _section(page, 'id="h-summary"', "</dl>")
    assert "harvest not recorded yet; no bags" in summary, summary
    assert "— cells" not in summary and "— %" not in summary
