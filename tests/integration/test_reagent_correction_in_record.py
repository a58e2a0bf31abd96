"""A reagent lot's correction is a correction of every cell lot's record that used it (EU GMP Annex 11 8.2), on
SQLite and PostgreSQL: a trypsin's lot number and expiry date corrected on its reagent lot page while a lot that used
it at P0 is in quarantine is listed among that lot's corrections (lots.record_corrections) with its old and new
values, who and why: on QA's release review page, the certificate of analysis and the lot's trace PDF. It was listed
on the reagent lot's page only, and QA signed a release without seeing it. Corrected after QA opened the review
page, it refuses the signature posted from it (release.release.page_fingerprint), nothing signed."""
from __future__ import annotations

import html
from typing import Any

from sqlalchemy import func, select

from mscbatch.lots.models import Lot, ReagentLot, ReagentUse
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import LotDisposition
from tests.conftest import PASSWORD
from tests.integration.test_release_support import seed_quarantine_lot, user
from tests.integration.test_s37_release_seen import seen
from tests.integration.test_s38_record_corrections import HEADING, _pdf_text
from tests.integration.test_s42_lots_reagent_lot_correction import _correct, _form

REASON = "lot number & expiry read off the box <not the bottle>"
CORRECTED = "Reagent lot DemoBio lot TR-7718 (TrypLE Select, used at P0)"


def _trypsin(app: Any, lot_id: int) -> tuple[int, Any]:
    """The demo quarantine lot's trypsin (DemoBio TR-7781, used at P0): its id and registered expiry date."""
    with app.extensions["mscbatch.db"].new_session() as session:
        reagent = session.scalar(select(ReagentLot).join(ReagentUse, ReagentUse.reagent_lot_id == ReagentLot.id)
                                 .where(ReagentUse.lot_id == lot_id, ReagentLot.reagent_type == "trypsin"))
        assert (reagent.supplier, reagent.lot_number) == ("DemoBio", "TR-7781"), reagent.lot_number
        return reagent.id, reagent.expiry_date


def _corrected(app: Any, client_as: Any, lot_id: int) -> tuple[str, str]:
    """The trypsin corrected on its page by the technician (lot number TR-7718, the expiry a few days earlier in its
    month: still months after every use of it): its expiry (old, new) as the record shows them."""
    trypsin, expiry = _trypsin(app, lot_id)
    new_expiry = expiry.replace(day=1) if expiry.day > 1 else expiry.replace(day=2)
    done = _correct(client_as("technician"), trypsin, _form(lot_number="TR-7718", expiry=new_expiry, reason=REASON))
    assert done.status_code == 302, done.get_data(as_text=True)[:3000]
    return expiry.isoformat(), new_expiry.isoformat()


def test_a_reagent_lot_corrected_is_listed_on_the_review_page_the_certificate_and_the_trace_pdf(  # type: ignore[no-untyped-def]
        app, users, monkeypatch, client_as):
    lot_id = seed_quarantine_lot(app, monkeypatch)
    qa = client_as("qa")
    assert f"{HEADING}: none" in html.unescape(qa.get(f"/release/lots/{lot_id}").get_data(as_text=True))
    old, new = _corrected(app, client_as, lot_id)

    raw = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert "<not the bottle>" not in raw  # escaped
    section = html.unescape(raw.split('id="record-corrections"')[1].split("</section>")[0])
    assert f"{HEADING}: 1 correction" in section, section
    assert f"{CORRECTED} corrected by Technician" in section and REASON in section, section
    assert f"supplier's lot number TR-7781 → TR-7718; expiry date {old} → {new}" in section, section

    with app.extensions["mscbatch.db"].new_session() as session:
        number = session.get(Lot, lot_id).lot_number
    for pdf in (f"/release/lots/{lot_id}/certificate.pdf", f"/trace/lots/{lot_id}.pdf"):
        printed = qa.get(pdf)
        assert printed.status_code == 200, pdf
        text = _pdf_text(printed.data)
        assert f"{HEADING}: 1 correction" in text and number in text, text
        assert "TR-7718" in text and "TrypLE Select, used at P0" in text and REASON in text, text
        assert "TR-7781 -> TR-7718" in text and f"{old} -> {new}" in text, text


def test_a_reagent_lot_corrected_after_qa_opened_the_review_page_refuses_the_signature(  # type: ignore[no-untyped-def]
        app, users, monkeypatch, client_as):
    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id)
    qa = client_as("qa")
    shown = seen(qa, lot_id)
    assert shown["seen"]
    _corrected(app, client_as, lot_id)

    refused = qa.post(f"/release/lots/{lot_id}/release", data={"action": "release", "release-password": PASSWORD,
                                                                 **shown})
    text = html.unescape(refused.get_data(as_text=True))
    assert refused.status_code == 409, text[:3000]
    assert ("The lot's record changed since you opened this page (its manufacturing record's corrections after "
            "first entry changed): review it again; nothing was signed") in text, text[:3000]
    assert f"{HEADING}: 1 correction" in text and CORRECTED in text and REASON in text, text[:3000]
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Lot, lot_id).status == "quarantine"
        assert session.scalar(select(func.count()).select_from(LotDisposition)) == 0
    signed = qa.post(f"/release/lots/{lot_id}/release", data={"action": "release", "release-password": PASSWORD,
                                                                **seen(qa, lot_id)})
    assert signed.status_code == 302, signed.get_data(as_text=True)[:3000]
    text = _pdf_text(qa.get(f"/release/lots/{lot_id}/certificate.pdf").data)
    assert f"{HEADING}: 1 correction" in text and "TR-7781 -> TR-7718" in text, text
