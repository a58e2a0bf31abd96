"""Review 5 (mendB): the viable cell count above the harvest has its own justification. A conditional release's
justification is about the pending tests: it neither releases nor completes a lot whose count is above the harvest.
The count's justification is signed with the disposition, shown on the review page and printed on the CoA; an
exceptional release refusal tells QA what can be done there (a countersignature has no justification of its own)."""
from __future__ import annotations

import html
import re
from typing import Any

import pytest

from mscbatch.errors import Conflict
from mscbatch.lots.models import Lot
from mscbatch.release import release, results
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import LotDisposition
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.test_labelling import pdf_text
from tests.integration.test_release_support import (
    cord_quarantine_lot,
    lupus_patient_code,
    seed_quarantine_lot,
    user,
)
from tests.integration.test_s37_release_seen import seen

STERILITY_WHY = "Sterility BacT/ALERT still incubating (day 7 of 14)"
COUNT_WHY = "Counted on the pooled cryo bags by a second method; the harvest count under-read (CAPA-12)"


def _text(response: Any) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


def _status(app: Any, lot_id: int) -> str:
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.get(Lot, lot_id).status


def _sterility_passes(session: Any, lot_id: int) -> None:
    results.enter_result(session, user(session, "technician"), lot_id, results.ResultEntry(
        test_id="sterility", value="negative", unit="", analyst="Tom QC", tested_on=site_today()))


@pytest.fixture
def lot_id(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    """The demo lot in quarantine (123.42 x10^6 viable cells at harvest), 500 x10^6 counted, sterility pending."""
    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id, {"viable_cell_count": ("500000000", "cells")},
                    skip=("sterility",))
    return lot_id


def _conditional(qa: Any, lot_id: int, **extra: str) -> Any:
    return qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id),
        "action": "conditional", "release-password": PASSWORD, "release-conditional_tests": "sterility",
        "release-justification": STERILITY_WHY, **extra})


def test_a_conditional_release_justification_does_not_waive_the_count_above_the_harvest(app, client_as, lot_id):
    qa = client_as("qa")
    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert 'name="release-count_justification"' in page  # shown: the count is above the harvest
    refused = _conditional(qa, lot_id)
    assert refused.status_code == 409
    assert "Release refused: Viable cell count 500 x10^6 cells is more than" in _text(refused)
    assert "Justification of the viable cell count above the harvest" in _text(refused)
    assert _status(app, lot_id) == "quarantine"
    short = _conditional(qa, lot_id, **{"release-count_justification": "ok fine"})  # under 10 characters
    assert short.status_code == 409 and _status(app, lot_id) == "quarantine"


def test_the_count_justification_is_signed_shown_and_printed_and_completion_needs_no_other(app, client_as, lot_id):
    qa = client_as("qa")
    signed = _conditional(qa, lot_id, **{"release-count_justification": COUNT_WHY})
    assert signed.status_code == 302, _text(signed)[:600]
    with app.extensions["mscbatch.db"].new_session() as session:
        disposition = session.query(LotDisposition).filter_by(lot_id=lot_id, kind="conditional_release").one()
        assert disposition.justification == STERILITY_WHY
        assert disposition.count_justification == COUNT_WHY
        _sterility_passes(session, lot_id)
    page = _text(qa.get(f"/release/lots/{lot_id}"))
    assert f"viable cell count above the harvest justified: {COUNT_WHY}" in page
    assert 'name="release-count_justification"' not in qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    done = client_as("qa2").post(f"/release/lots/{lot_id}/release", data={**seen(client_as("qa2"), lot_id), "action": "complete",
                                                                         "release-password": PASSWORD})
    assert done.status_code == 302, _text(done)[:600]
    coa = " ".join(pdf_text(qa.get(f"/release/lots/{lot_id}/certificate.pdf").data).split())
    assert f"viable cell count above the harvest justified: {COUNT_WHY}" in coa


def test_a_completion_is_refused_when_the_signed_release_kept_no_count_justification(app, lot_id, monkeypatch):
    with app.extensions["mscbatch.db"].new_session() as session:
        # a conditional release signed as before this fix: nothing kept about the count with the signature
        with monkeypatch.context() as patched:
            patched.setattr(release, "_count_justified", lambda *_args: "")
            release.release_lot(session, user(session, "qa"), lot_id, PASSWORD, conditional_tests=["sterility"],
                                justification=STERILITY_WHY, count_justification=COUNT_WHY)
        _sterility_passes(session, lot_id)
        with pytest.raises(Conflict, match="Completion refused: Viable cell count 500"):
            release.complete_conditional_release(session, user(session, "qa2"), lot_id, PASSWORD)
        release.complete_conditional_release(session, user(session, "qa2"), lot_id, PASSWORD, COUNT_WHY)
    assert _status(app, lot_id) == "released"


def test_an_exceptional_release_refusal_says_the_result_is_corrected_and_the_clinician_asks_again(
        app, users, monkeypatch):
    seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:  # a UC-MSC lot, a lupus patient (patient_refusal)
        lot_id = cord_quarantine_lot(session)
        code = lupus_patient_code(session)
        enter_panel(session, user(session, "technician"), lot_id,
                    {"viability": ("65", "%"), "viable_cell_count": ("500000000", "cells")})
        release.request_exceptional_release(session, user(session, "clinician"), lot_id, code,
                                            "No alternative therapy; life-threatening flare, benefit outweighs risk",
                                            PASSWORD)
        with pytest.raises(Conflict) as refused:
            release.approve_exceptional_release(session, user(session, "qa"), lot_id, PASSWORD)
    message = refused.value.message
    assert "is more than the 216.2 x10^6 viable cells" in message  # the demo UC-MSC lot's harvest
    assert "A technician corrects the result; the clinician then asks again" in message
    assert "justification" not in message.lower()


def test_a_rejected_lot_does_not_ask_to_resolve_the_count_before_release(app, client_as, lot_id):
    qa = client_as("qa")
    assert "The result is above it: to resolve before release" in _text(qa.get(f"/release/lots/{lot_id}"))
    rejected = qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id),
        "action": "reject", "release-password": PASSWORD, "release-justification": "Count above the harvest"})
    assert rejected.status_code == 302, _text(rejected)[:600]
    assert _status(app, lot_id) == "rejected"
    assert "to resolve before release" not in _text(qa.get(f"/release/lots/{lot_id}"))
