"""Session 35: what QA found walking the recall journey in the demo, on both databases.

1. A recall's reason had no length limit (5000 characters accepted; the recall's page 59 000 px wide): at most 2000,
   on the form and in the service (nothing written), and a typed text a refusal repeats is cut (a 5000-character
   target was repeated whole in "No reagent lot '...'"). The wrapping itself: test_s35_recall_long_text_browser.py.
2. Signatures on the recall's page and PDF said UTC alone: the local time with its zone, UTC beside it.
3. A completed recall said "Bags on hold now: 0 ... 4 held bags destroyed since (the hold is kept)": it counts the
   holds kept, then the bags still in stock or on the ward.
4. A lookback's refused closing gave an example naming recall R-3 whatever the recall: it names the one in force.
5. The recall PDF's Action column pointed at "this row of the recall's page" (no row, no button on paper).
6. A wrong password on the start / end / complete forms is said next to the password field, and an empty form
   names every blank field at once (before: the target, then the reason, then the password, one at a time).
7. "No reagent lot 'MSC-2026-0001'." said nothing of how a reagent lot is found.
"""
from __future__ import annotations

import html
import io
import re
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.errors import ValidationFailed
from mscbatch.recall import services
from mscbatch.recall.models import BagHold, Recall
from mscbatch.signatures.models import Signature
from mscbatch.site import local_and_utc
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_recall_completion import (
    NOTE,
    complete,
    discard_all_in_stock,
    held_bags,
    notify_all,
    start,
)
from tests.integration.test_recall_support import scene
from tests.integration.test_s34_recall_lookback_close import _recall_then_a_second_late_result

REASON = "Supplier notice: medium lot contaminated"


def session_of(app: Any) -> Any:
    return app.extensions["mscbatch.db"].new_session()


def written(app: Any) -> tuple[int, int, int, int]:
    """Recalls, holds, signatures and audit events: unchanged when a refusal wrote nothing."""
    with session_of(app) as session:
        return tuple(session.scalar(select(func.count()).select_from(model))  # type: ignore[return-value]
                     for model in (Recall, BagHold, Signature, AuditEvent))


def pdf_words(response: Any) -> str:
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    return " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(response.data)).pages)


def words_of(page: str) -> str:
    return html.unescape(" ".join(re.sub(r"<[^>]+>", "", page).split()))


def refusals_of(page: str) -> str:
    """The refusals' words: the error summary and each field's error (not the fields' values, typed back)."""
    found = re.findall(r'<p class="error" id="[^"]*">([^<]*)</p>', page)
    summary = page[page.index('id="error-summary"'):]
    return html.unescape(" ".join(found) + " " + words_of(summary[:summary.index("</div>")]))


def field_html(page: str, field_id: str) -> str:
    """The <input> or <textarea> tag of the field with this id."""
    found = re.search(r'<(?:input|textarea)[^>]*\bid="' + re.escape(field_id) + r'"[^>]*>', page)
    assert found, field_id
    return found.group(0)


def assert_refused_beside(page: str, field_id: str, words: str) -> None:
    """`words` said next to the field (its error paragraph), the field marked invalid, the summary linking to it."""
    error = re.search(r'<p class="error" id="' + re.escape(field_id) + r'-error">([^<]*)</p>', page)
    assert error and words in html.unescape(error.group(1)), (field_id, words, error and error.group(1))
    assert 'aria-invalid="true"' in field_html(page, field_id), field_id
    assert f'href="#{field_id}"' in page, field_id  # the error summary at the top links to the field


# ---- 1. the reason's length, the typed text a refusal repeats --------------------------------------------------------

def test_a_recall_reason_over_2000_characters_is_refused_by_the_form_and_nothing_is_written(app, users, client_as):
    s = scene(app)
    qa = client_as("qa")
    form = qa.get("/recalls/new").get_data(as_text=True)
    assert 'maxlength="2000"' in field_html(form, "reason")
    before = written(app)
    refused = qa.post("/recalls/new", data={"scope": "lot", "target": f"#{s.released_lot_id}", "password": PASSWORD,
                                            "reason": "x" * 5000})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422, page[:2000]
    assert_refused_beside(page, "reason", "The reason has at most 2000 characters (this one has 5000).")
    assert written(app) == before

    # 2000 is the limit; a line break the browser sends as CR LF counts once, as the browser's maxlength counts it
    reason = "y" * 1000 + "\r\n" + "z" * 999
    ok = qa.post("/recalls/new", data={"scope": "lot", "target": f"#{s.quarantine_lot_id}", "password": PASSWORD,
                                       "reason": reason})
    assert ok.status_code == 302, ok.get_data(as_text=True)[:3000]
    with session_of(app) as session:
        stored = session.scalars(select(Recall.reason)).one()
    assert stored == "y" * 1000 + "\n" + "z" * 999 and len(stored) == 2000


def test_start_recall_refuses_a_reason_over_2000_characters_naming_the_field_and_writes_nothing(app, users):
    s = scene(app)
    before = written(app)
    with session_of(app) as session:
        with pytest.raises(ValidationFailed) as refused:
            services.start_recall(session, user(session, "qa"), scope="lot", target_id=s.released_lot_id,
                                  reason="  " + "x" * 2001 + "  ", password=PASSWORD)
        session.rollback()
    assert refused.value.field == "reason" and refused.value.status == 422
    assert "at most 2000 characters (this one has 2001)" in refused.value.message
    assert written(app) == before
    with session_of(app) as session:  # 2000 after the outer spaces are stripped: started
        services.start_recall(session, user(session, "qa"), scope="lot", target_id=s.released_lot_id,
                              reason="  " + "x" * 2000 + "  ", password=PASSWORD)
        session.commit()
        assert len(session.scalars(select(Recall.reason)).one()) == 2000


def test_ending_a_recall_with_a_reason_over_2000_characters_is_refused(app, users, client_as):
    s = scene(app)
    qa = client_as("qa")
    recall_id = start(qa, "lot", f"#{s.quarantine_lot_id}")
    page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    assert 'maxlength="2000"' in field_html(page, "reason")
    refused = qa.post(f"/recalls/{recall_id}/end", data={"reason": "w" * 2001, "password": PASSWORD})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422, text[:2000]
    assert_refused_beside(text, "reason", "The reason for ending the recall has at most 2000 characters")
    with session_of(app) as session:
        assert session.get(Recall, recall_id).status == "active"


@pytest.mark.parametrize("scope", ["reagent_lot", "lot", "donor"])
def test_an_over_long_target_is_cut_in_the_refusal(app, users, client_as, scope):
    scene(app)
    qa = client_as("qa")
    typed = "AB" * 2500  # 5000 characters, no such origin
    refused = qa.post("/recalls/new", data={"scope": scope, "target": typed, "password": PASSWORD, "reason": REASON})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422
    said = refusals_of(page)
    assert f"'{typed[:40]}…'" in said and typed[:41] not in said
    assert_refused_beside(page, "target", f"{typed[:40]}…")
    hashed = refusals_of(qa.post("/recalls/new", data={"scope": scope, "target": "#" + "9" * 5000,
                                                       "password": PASSWORD, "reason": REASON}).get_data(as_text=True))
    assert "#" + "9" * 39 + "…" in hashed and "9" * 41 not in hashed


# ---- 2. signatures in local time, UTC beside -------------------------------------------------------------------------

def test_the_recall_signatures_say_the_local_time_with_utc_beside_on_the_page_and_the_pdf(app, users, client_as):
    s = scene(app)
    qa = client_as("qa")
    recall_id = start(qa, "lot", f"#{s.quarantine_lot_id}")
    assert qa.post(f"/recalls/{recall_id}/end", data={"reason": "Supplier withdrew the notice: wrong lot number",
                                                      "password": PASSWORD}).status_code == 302
    with session_of(app) as session:
        signed = [(sig.printed_name, sig.signed_at, sig.meaning) for sig in session.scalars(
            select(Signature).where(Signature.entity_type == "recall").order_by(Signature.id))]
    assert len(signed) == 2
    page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    lines = re.findall(r'<p class="signature">(.*?)</p>', page)
    assert len(lines) == 2
    pdf = pdf_words(qa.get(f"/recalls/{recall_id}/report.pdf"))
    for line, (name, at, meaning) in zip(lines, signed, strict=True):
        assert '<span class="when">' in line  # the `local` filter: local time, its zone, UTC in brackets
        assert words_of(line) == f"Signed: {name}, {local_and_utc(at)}, “{meaning}”"
        assert f"Signed: {name}, {local_and_utc(at)}, “{meaning}”" in pdf
    assert not re.search(r"\d\d:\d\d UTC, Recall", page + pdf)  # the old manifestation, UTC alone


# ---- 3. a completed recall's counts ----------------------------------------------------------------------------------

def test_a_completed_recall_counts_its_holds_kept_and_the_bags_still_in_stock_or_on_the_ward(app, users, client_as):
    s = scene(app)
    qa = client_as("qa")
    recall_id = start(qa, "lot", f"#{s.released_lot_id}")
    held = held_bags(app, recall_id)
    discard_all_in_stock(app, [bag_id for bag_id, _din, _status in held])
    notify_all(app, qa, recall_id)  # its infused patient's clinician told (recall.notices)
    assert complete(qa, recall_id).status_code == 302
    page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    summary = page[page.index('id="held-now"'):]
    summary = words_of(summary[summary.index(">") + 1:summary.index("</p>")])
    assert summary == (f"Holds kept: {len(held)} (all destroyed); bags still in stock or on the ward: 0. Completing "
                       "lifts no hold: the bedside check still stops every bag this recall held.")
    assert "Bags on hold now" not in page and "destroyed since" not in page
    pdf = pdf_words(qa.get(f"/recalls/{recall_id}/report.pdf"))
    assert f"Holds kept: {len(held)} (all destroyed); bags still in stock or on the ward: 0. Completing lifts" in pdf
    assert "Bags on hold now" not in pdf


# ---- 4. the lookback's example names the recall in force -------------------------------------------------------------

def test_a_refused_lookback_closing_gives_the_example_with_the_recall_in_force(app, users, client_as):
    s = _recall_then_a_second_late_result(app, client_as)
    qa, recall_id, lookback_id = s["qa"], s["recall_id"], s["lookback_id"]
    for note in ("", "covered"):
        refused = qa.post(f"/recalls/lookbacks/{lookback_id}/close", data={"note": note})
        text = words_of(refused.get_data(as_text=True))
        assert refused.status_code == 422
        assert f"(e.g. 'Second marker positive; recall R-{recall_id} holds every lot of the donor" in text
        assert "recall R-3" not in text or recall_id == 3
    with session_of(app) as session:
        with pytest.raises(ValidationFailed) as unknown:  # no such lookback: no number made up
            services.close_lookback(session, user(session, "qa"), 999_999, note="")
    assert "Second marker positive; the donor's recall holds every lot" in unknown.value.message


# ---- 5. the PDF's action for a held bag in stock ---------------------------------------------------------------------

def test_the_pdf_says_qa_to_discard_a_held_bag_in_stock_without_pointing_at_the_pages_row(app, users, client_as):
    s = scene(app)
    qa = client_as("qa")
    recall_id = start(qa, "lot", f"#{s.quarantine_lot_id}")  # 2 bags in stock, held
    page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    assert page.count("QA discards it (Discard (recalled), on this row of the recall&#39;s page)") == 2
    pdf = pdf_words(qa.get(f"/recalls/{recall_id}/report.pdf"))
    assert pdf.count("ON HOLD in stock: do not issue; QA to discard it") == 2
    assert "on this row" not in pdf and "Discard (recalled)" not in pdf


# ---- 6. refusals beside their fields, every blank field at once ------------------------------------------------------

def test_an_empty_start_form_names_every_blank_field_at_once(app, users, client_as):
    scene(app)
    qa = client_as("qa")
    before = written(app)
    refused = qa.post("/recalls/new", data={"scope": "donor", "target": " ", "reason": "  ", "password": ""})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert_refused_beside(page, "target", "Give the donor code, lot number or reagent lot number to recall.")
    assert_refused_beside(page, "reason", "Give the reason for the recall")
    assert_refused_beside(page, "password", "Type your password to sign. Nothing was signed.")
    # a target found, the reason and password blank: both named
    s_code = scene_code(app)
    second = qa.post("/recalls/new", data={"scope": "donor", "target": s_code, "reason": "", "password": ""})
    text = second.get_data(as_text=True)
    assert second.status_code == 422
    assert_refused_beside(text, "reason", "Give the reason for the recall")
    assert_refused_beside(text, "password", "Type your password to sign.")
    assert 'id="target-error"' not in text
    # a reason too long and the rest blank: all said
    third = qa.post("/recalls/new", data={"scope": "donor", "target": "", "reason": "x" * 2001, "password": ""})
    text = third.get_data(as_text=True)
    assert third.status_code == 422
    for field_id in ("target", "reason", "password"):
        assert f'id="{field_id}-error"' in text, field_id
    assert written(app) == before


def scene_code(app: Any) -> str:
    from mscbatch.donors.models import Donor

    with session_of(app) as session:
        return session.scalars(select(Donor.code).order_by(Donor.id)).first()


def test_a_wrong_password_at_the_start_of_a_recall_is_said_beside_the_password_field(app, users, client_as):
    s = scene(app)
    qa = client_as("qa")
    refused = qa.post("/recalls/new", data={"scope": "lot", "target": f"#{s.released_lot_id}", "reason": REASON,
                                            "password": "not-the-password"})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 401
    assert_refused_beside(page, "password", "Signature refused: wrong password. Nothing was signed.")
    assert '<div class="form-errors"' not in page  # not above the form, unattached
    with session_of(app) as session:
        assert session.scalar(select(func.count()).select_from(Recall)) == 0


def test_the_end_and_complete_forms_say_a_wrong_password_beside_it_and_every_blank_field(app, users, client_as):
    s = scene(app)
    qa = client_as("qa")
    recall_id = start(qa, "lot", f"#{s.quarantine_lot_id}")
    empty_end = qa.post(f"/recalls/{recall_id}/end", data={"reason": "", "password": ""})
    text = empty_end.get_data(as_text=True)
    assert empty_end.status_code == 422
    assert_refused_beside(text, "reason", "Say why the recall is ended")
    assert_refused_beside(text, "password", "Type your password to sign.")
    wrong_end = qa.post(f"/recalls/{recall_id}/end", data={"reason": "Supplier withdrew the notice",
                                                           "password": "not-the-password"})
    text = wrong_end.get_data(as_text=True)
    assert wrong_end.status_code == 401
    assert_refused_beside(text, "password", "Signature refused: wrong password. Nothing was signed.")

    discard_all_in_stock(app, [bag_id for bag_id, _din, _status in held_bags(app, recall_id)])
    empty_complete = qa.post(f"/recalls/{recall_id}/complete", data={"note": "", "password": ""})
    text = empty_complete.get_data(as_text=True)
    assert empty_complete.status_code == 422
    assert_refused_beside(text, "note", "Write the closing note, at least 20 characters")
    assert_refused_beside(text, "complete-password", "Type your password to sign.")
    wrong_complete = complete(qa, recall_id, note=NOTE, password="not-the-password")
    text = wrong_complete.get_data(as_text=True)
    assert wrong_complete.status_code == 401
    assert_refused_beside(text, "complete-password", "Signature refused: wrong password. Nothing was signed.")
    with session_of(app) as session:
        assert session.get(Recall, recall_id).status == "active"


# ---- 7. how a reagent lot is found -----------------------------------------------------------------------------------

def test_no_such_reagent_lot_says_how_a_reagent_lot_is_found(app, users, client_as):
    scene(app)
    qa = client_as("qa")
    refused = qa.post("/recalls/new", data={"scope": "reagent_lot", "target": "MSC-2026-0001", "password": PASSWORD,
                                            "reason": REASON})
    text = words_of(refused.get_data(as_text=True))
    assert refused.status_code == 422
    assert ("No reagent lot 'MSC-2026-0001'. A reagent lot is found by the supplier's lot number, as registered on the "
            "Reagents page") in text
    assert "MSC-2026-0001 is written like a cell lot number: to recall that lot, choose 'Lot' under Recall from." \
           in text
    other = words_of(qa.post("/recalls/new", data={"scope": "reagent_lot", "target": "ZZ-404", "password": PASSWORD,
                                                   "reason": REASON}).get_data(as_text=True))
    assert "No reagent lot 'ZZ-404'. A reagent lot is found by the supplier's lot number" in other
    assert "written like a cell lot number" not in other
    assert start(qa, "reagent_lot", "ma -77")  # found as before, capitals and spaces aside
