"""A donor recall's report (page and PDF) lists the donor lookbacks it covers: the one its start closed and one
closed under it since, each opened when, by whom and why (the late result), closed when, by whom, with the closing
note (EU directive 2004/23 lookback traceability). A bag destroyed under an earlier recall (a lot recall R-1) says
so on the donor's recall R-2 ("Discarded under recall R-1 on <day>"), where it said "Discarded before the recall: no
action" with the Hold "—"; a bag discarded before any recall keeps those words."""
from __future__ import annotations

import io
from typing import Any

from markupsafe import escape
from pypdf import PdfReader
from sqlalchemy import select

from mscbatch.custody import handover
from mscbatch.custody.models import CustodyEvent
from mscbatch.donors import services as donor_services
from mscbatch.lots.models import Bag
from mscbatch.recall import services
from mscbatch.recall.queries import open_lookbacks
from mscbatch.recall.report import recall_report
from mscbatch.site import site_day, site_today
from tests.conftest import PASSWORD
from tests.integration.test_donors import user
from tests.integration.test_recall_lookbacks import _infused_cord_donor, _section

NOTE = "Anti-HIV positive too: recall R-2 already holds every lot of the donor and lists its patients"
REASON = "Late positive anti-HCV (LATE-HCV-1)"


def _pdf_text(client: Any, recall_id: int) -> str:
    pdf = client.get(f"/recalls/{recall_id}/report.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    return " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(pdf.data)).pages)


def _flat(text: str) -> str:
    return " ".join(text.split())


def _row(page: str, din: str) -> str:
    return _section(page, f'data-din="{din}"', "</tr>")


def test_a_donor_recall_lists_its_lookbacks_and_a_bag_destroyed_under_an_earlier_recall(app, users, client_as):  # type: ignore[no-untyped-def]
    s = _infused_cord_donor(app)  # a lookback open on LATE-HCV-1
    with app.extensions["mscbatch.db"].new_session() as session:
        qa = user(session, "qa")
        broken, held = sorted(session.scalars(select(Bag.id).where(Bag.lot_id == s["quarantined"])))
        # a bag of the quarantined lot discarded for another reason, before any recall
        handover.discard(session, qa, broken, reason="Bag cracked during the quarantine check",
                         location="Cell therapy unit")
        r1 = services.start_recall(session, qa, scope="lot", target_id=s["quarantined"], password=PASSWORD,
                                   reason="Mycoplasma found late in the quarantined lot").recall_id
        services.discard_held_bag(session, qa, r1, held, reason="Recalled: destroyed")
        services.complete_recall(session, qa, r1, password=PASSWORD,
                                 note="Both bags of the lot destroyed, none issued: reconciliation complete.")
        session.commit()
        dins = {bag.id: bag.din for bag in session.scalars(select(Bag).where(Bag.id.in_([broken, held])))}
        day = site_day(session.scalar(select(CustodyEvent.occurred_at).where(
            CustodyEvent.bag_id == held, CustodyEvent.kind == "discarded")))
    qa_client = client_as("qa")
    started = qa_client.post("/recalls/new", data={"scope": "donor", "target": s["code"], "password": PASSWORD,
                                                   "reason": REASON})
    assert started.status_code == 302, started.get_data(as_text=True)[:2000]
    r2 = int(started.headers["Location"].rsplit("/", 1)[-1])
    with app.extensions["mscbatch.db"].new_session() as session:  # a second late result, closed under R-2
        donor_services.record_result(session, user(session, "technician"), s["donor_id"], marker="anti_hiv_1_2",
                                     result="positive", sample_date=site_today(), lab_reference="LATE-HIV-2")
        session.commit()
        second = open_lookbacks(session)[0].lookback.id
    assert qa_client.post(f"/recalls/lookbacks/{second}/close", data={"note": NOTE}).status_code == 302

    with app.extensions["mscbatch.db"].new_session() as session:
        technician, qa_name = user(session, "technician").full_name, user(session, "qa").full_name
        own = {line.trace.bag.id: line.action for line in recall_report(session, r1).lines}
        assert own[held].startswith("Discarded after the recall started")  # R-1's own report is unchanged
        assert own[broken] == "Discarded before the recall: no action"
    # each lookback: opened when, by whom, why (the late result's report); closed when, by whom, with its note
    first = [f"by {technician}:", "Anti-HCV", "(report LATE-HCV-1).", f"by {qa_name}: Recall R-{r2} started: {REASON}"]
    second = [f"by {technician}:", "Anti-HIV", "(report LATE-HIV-2).",
              f"by {qa_name}: Covered by recall R-{r2} (active): {NOTE}"]
    under = f"Discarded under recall R-{r1} on {day:%Y-%m-%d}"

    page = qa_client.get(f"/recalls/{r2}").get_data(as_text=True)
    items = _section(page, 'id="recall-lookbacks"', "</section>").split("<li")[1:]
    assert len(items) == 2
    for item, expected in zip(items, (first, second), strict=True):
        assert "Lookback opened " in item and " Closed " in item
        for words in expected:
            assert str(escape(words)) in item, words
    assert under in _row(page, dins[held]) and f"held by R-{r1}, destroyed" in _row(page, dins[held])
    assert "Discarded before the recall: no action" in _row(page, dins[broken])
    assert f"R-{r1}" not in _row(page, dins[broken])

    pdf = _pdf_text(qa_client, r2)
    listed = _section(pdf, "Donor lookbacks covered by this recall", "Patients given")
    assert listed.count("Lookback opened ") == 2
    for words in first + second:
        assert _flat(words) in listed, words
    assert under in pdf and "Discarded before the recall: no action" in pdf

    with app.extensions["mscbatch.db"].new_session() as session:  # one function says it on the page and on paper
        from mscbatch.recall.report import lookbacks_of_recall

        covered = [c.words() for c in lookbacks_of_recall(session, services.get_recall(session, r2))]
        assert all(str(escape(text)) in page and _flat(text) in pdf for text in covered) and len(covered) == 2
        assert lookbacks_of_recall(session, services.get_recall(session, r1)) == []  # a lot recall: none

    lot_page = qa_client.get(f"/recalls/{r1}").get_data(as_text=True)  # a lot recall has no lookback section
    assert 'id="recall-lookbacks"' not in lot_page


def test_an_ended_donor_recall_says_its_lookback_was_opened_again(app, users, client_as):  # type: ignore[no-untyped-def]
    s = _infused_cord_donor(app)
    qa_client = client_as("qa")
    started = qa_client.post("/recalls/new", data={"scope": "donor", "target": s["code"], "password": PASSWORD,
                                                   "reason": REASON})
    assert started.status_code == 302
    r1 = int(started.headers["Location"].rsplit("/", 1)[-1])
    assert qa_client.post(f"/recalls/{r1}/end", data={"reason": "Started on the wrong report",
                                                      "password": PASSWORD}).status_code == 302
    page = qa_client.get(f"/recalls/{r1}").get_data(as_text=True)
    listed = _section(page, 'id="recall-lookbacks"', "</section>")
    assert "(report LATE-HCV-1)" in listed and "opened again when it was ended as invalid. Open now." in listed
    # a later recall of the donor closes it again: listed on that recall, and said on the ended one
    again = qa_client.post("/recalls/new", data={"scope": "donor", "target": s["code"], "password": PASSWORD,
                                                 "reason": "Late positive anti-HCV confirmed (LATE-HCV-1)"})
    assert again.status_code == 302
    r2 = int(again.headers["Location"].rsplit("/", 1)[-1])
    assert "Closed since" in _pdf_text(qa_client, r1) and f"Recall R-{r2} started" in _pdf_text(qa_client, r1)
    assert f"Recall R-{r2} started" in _pdf_text(qa_client, r2)


def test_a_donor_recall_with_no_lookback_says_so(app, users, client_as):  # type: ignore[no-untyped-def]
    from tests.integration.test_s34_recall_lookback_close import _recalled_on_notice

    with app.extensions["mscbatch.db"].new_session() as session:
        _donor_id, recall_id = _recalled_on_notice(session, user(session, "qa"))
        session.commit()
    qa_client = client_as("qa")
    page = qa_client.get(f"/recalls/{recall_id}").get_data(as_text=True)
    assert "No lookback of the donor was open when this recall started" in page
    assert "No lookback of the donor was open when this recall started" in _pdf_text(qa_client, recall_id)
