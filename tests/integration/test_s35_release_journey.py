"""S35 (the technician/QA journey on a lot's release page): a sign button the page already knows would be refused is
disabled with the reason beside it (the service still refuses a forged post, its reasons listed one a line); an
out-of-specification result says so, with the OOS it opened; an empty value names the field and its rule; the OOS
investigation text has a limit, said by the server and by the form; the certificate gives every instant in the
site's time with UTC beside it."""
from __future__ import annotations

import io
import re
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from mscbatch.lots.models import Lot
from mscbatch.release import oos
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import OosInvestigation, ReleaseResult
from mscbatch.site import local_and_utc, site_today
from tests.conftest import PASSWORD
from tests.integration.test_release_support import seed_quarantine_lot, user
from tests.integration.test_review5_release_counts import _one, _text
from tests.integration.test_s37_release_seen import seen

INVESTIGATION_MAX_CHARS = 2000  # release.oos.INVESTIGATION_MAX_CHARS


@pytest.fixture
def lot_id(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    return seed_quarantine_lot(app, monkeypatch)


def _button(page: str, button_id: str) -> str:
    found = re.search(rf'<button[^>]*id="{button_id}"[^>]*>', page)
    assert found is not None, button_id
    return found.group(0)


def _panel(app: Any, lot_id: int, **values: tuple[str, str]) -> None:
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id, dict(values))


def test_sign_buttons_are_disabled_with_the_reason_while_the_page_knows_the_release_is_refused(app, client_as, lot_id):
    qa = client_as("qa")
    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)  # every result still awaited
    assert "disabled" in _button(page, "sign-release") and "disabled" in _button(page, "sign-conditional")
    assert 'id="release-blocked">Cannot be signed yet: see the blockers above.' in page
    assert "Cannot be signed yet: see the blockers above (a conditional release lets only Sterility" in page
    # the server refuses on its own, its several reasons listed one a line, not run together
    refused = qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id), "action": "release", "release-password": PASSWORD})
    assert refused.status_code == 409
    body = refused.get_data(as_text=True)
    listed = re.search(r'<div class="form-errors" role="alert" id="release-refused">(.*?)</div>', body, re.S)
    assert listed is not None, _text(refused)[:800]
    assert "<p>Release refused:</p>" in listed.group(1) and listed.group(1).count("<li>") > 3
    assert "; " not in " ".join(re.findall(r"<li>(.*?)</li>", listed.group(1)))
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Lot, lot_id).status == "quarantine"


def test_conditional_release_is_offered_when_only_sterility_is_awaited_and_release_when_all_pass(app, client_as, lot_id):
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id, skip=("sterility",))
    qa = client_as("qa")
    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert "disabled" in _button(page, "sign-release")  # sterility is awaited
    assert "disabled" not in _button(page, "sign-conditional")
    with app.extensions["mscbatch.db"].new_session() as session:
        from mscbatch.release import results
        tech = user(session, "technician")
        results.enter_result(session, tech, lot_id, results.ResultEntry(
            test_id="sterility", value="negative", unit="", analyst=tech.full_name, tested_on=site_today()))
    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert "disabled" not in _button(page, "sign-release")
    assert "disabled" in _button(page, "sign-conditional")  # nothing left to wait for: it would be a release
    assert "nothing to release conditionally" in page


def test_a_count_above_the_harvest_leaves_the_button_active_as_qa_may_justify_it(app, client_as, lot_id):
    _panel(app, lot_id, viable_cell_count=("500000000", "cells"))
    page = client_as("qa").get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert "disabled" not in _button(page, "sign-release")


def test_an_out_of_specification_result_is_said_plainly_with_its_oos(app, client_as, lot_id):
    tech = client_as("technician")
    entered = _one(tech, lot_id, "cd105", "94", "%")
    assert entered.status_code == 302
    with app.extensions["mscbatch.db"].new_session() as session:
        opened = session.scalar(select(OosInvestigation.id).where(OosInvestigation.lot_id == lot_id))
    page = _text(tech.get(f"/release/lots/{lot_id}"))
    limit = re.search(r"CD105 (\S+ 95 %)", page)
    assert limit is not None
    assert (f"Out of specification: CD105 94 % (limit {limit.group(1)}). OOS {opened} opened: QA investigates "
            "before any release.") in page
    assert "Result recorded." not in page
    passing = _one(tech, lot_id, "cd73", "99", "%")
    assert passing.status_code == 302 and "Result recorded." in _text(tech.get(f"/release/lots/{lot_id}"))


def test_an_empty_value_names_the_test_and_what_it_is_reported_as(app, client_as, lot_id):
    refused = _one(client_as("technician"), lot_id, "cd73", "", "%")
    assert refused.status_code == 422
    text = _text(refused)
    assert "CD73: give a value (a number, in %). Nothing was recorded." in text
    assert "is not a number" not in text
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.scalar(select(ReleaseResult.id).where(ReleaseResult.lot_id == lot_id)) is None


def test_the_oos_investigation_text_has_a_limit_said_by_the_server_and_the_form(app, client_as, lot_id):
    _panel(app, lot_id, cd105=("94", "%"))
    with app.extensions["mscbatch.db"].new_session() as session:
        [opened] = oos.open_oos_of(session, lot_id)
        opened_id = opened.id
    qa = client_as("qa2")
    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert re.search(rf'<textarea[^>]*maxlength="{INVESTIGATION_MAX_CHARS}"[^>]*name="oos-investigation"', page) or \
        re.search(rf'<textarea[^>]*name="oos-investigation"[^>]*maxlength="{INVESTIGATION_MAX_CHARS}"', page)
    refused = qa.post(f"/release/oos/{opened_id}", data={"action": "confirm", "oos-investigation": "x" * 5000,
                                                          "oos-password": PASSWORD, **seen(qa, lot_id)})
    assert refused.status_code == 422
    assert ("Investigation and conclusion: at most 2000 characters (5000 given); shorten it. Nothing was signed."
            in _text(refused))
    with app.extensions["mscbatch.db"].new_session() as session:
        found = session.get(OosInvestigation, opened_id)
        assert found.status == "open" and found.investigation in ("", None)
        assert session.get(Lot, lot_id).status == "quarantine"


def test_the_certificate_gives_every_instant_in_site_time_with_utc_beside_it(app, client_as, lot_id):
    _panel(app, lot_id, cd105=("94", "%"))
    with app.extensions["mscbatch.db"].new_session() as session:
        [opened] = oos.open_oos_of(session, lot_id)
        oos.confirm_oos(session, user(session, "qa2"), opened.id, "Confirmed: no laboratory error found.", PASSWORD)
    with app.extensions["mscbatch.db"].new_session() as session:
        lot = session.get(Lot, lot_id)
        frozen, collected = lot.frozen_at, lot.collection_at
        closed = session.get(OosInvestigation, opened.id).closed_at
    pdf = client_as("qa").get(f"/release/lots/{lot_id}/certificate.pdf")
    assert pdf.status_code == 200
    text = " ".join(" ".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf.data)).pages).split())
    assert f"Frozen {local_and_utc(frozen)}" in text
    assert f"Collected {local_and_utc(collected)} at" in text
    assert re.search(r"Printed \d{4}-\d\d-\d\d \d\d:\d\d [A-Z+\-0-9]+ \((?:\d{4}-\d\d-\d\d )?\d\d:\d\d UTC\)", text), text[:1200]
    assert local_and_utc(closed) in text  # the OOS closed
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [A-Z+\-0-9]+ \((?:\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d UTC\)", text)  # a signature


def test_the_signature_hint_says_the_time_as_signatures_are_shown(app, client_as, lot_id):
    page = _text(client_as("qa").get(f"/release/lots/{lot_id}"))
    assert "the time (the site's local time, with UTC beside it)" in page and "the time (UTC)" not in page
