"""A signature form refused for another reason (a rationale too long, a justification too short, a wrong password)
while the lot's record changed under the page: the page shown again says first that the record changed, naming
what (re-walk finding: the text check came before the fingerprint's, the page came back with a fresh fingerprint
and said nothing, and the next post signed on a change QA was never told of)."""
from __future__ import annotations

from typing import Any

from tests.conftest import PASSWORD
from tests.integration.test_s37_release_seen import CHANGED, _counts, _deviation, _ready, seen


def test_a_text_refused_while_the_record_changed_says_the_change_first(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id = _ready(app, monkeypatch)
    tech, qa = client_as("technician"), client_as("qa")
    deviation_id = _deviation(app, tech, lot_id, "critical", "Biosafety cabinet airflow alarm during P2")
    shown = seen(qa, lot_id)
    _deviation(app, tech, lot_id, "minor", "Incubator door left ajar 1 minute at P1")  # recorded meanwhile
    before = _counts(app, lot_id)
    form = {"assess-outcome": "no_impact_release", "assess-password": PASSWORD}
    refused = qa.post(f"/release/deviations/{deviation_id}/assess",
                      data={**form, "assess-rationale": "x" * 2001, **shown})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422, page[:3000]
    assert "at most 2000 characters" in page
    notice = page.split('id="changed-since"', 1)[1].split("</p>", 1)[0]
    assert CHANGED + "its deviations or their assessments changed)" in notice, notice
    assert _counts(app, lot_id) == before


def test_a_refusal_with_nothing_changed_says_no_change(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id = _ready(app, monkeypatch)
    qa = client_as("qa")
    wrong: Any = qa.post(f"/release/lots/{lot_id}/release", data={"action": "release", "release-password": "nope",
                                                                   **seen(qa, lot_id)})
    assert wrong.status_code == 401
    assert 'id="changed-since"' not in wrong.get_data(as_text=True)


def test_the_changed_refusal_itself_is_not_repeated_above(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id = _ready(app, monkeypatch)
    qa = client_as("qa")
    shown = seen(qa, lot_id)
    _deviation(app, client_as("technician"), lot_id, "minor", "Incubator door left ajar 1 minute at P1")
    refused = qa.post(f"/release/lots/{lot_id}/release", data={"action": "release", "release-password": PASSWORD,
                                                                 **shown})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 409 and CHANGED in page
    assert 'id="changed-since"' not in page  # said by the refusal itself, not again above it
