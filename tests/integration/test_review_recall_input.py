"""Safety review of recalls: odd but plausible input at the start of a recall is refused in words, never a 500."""
from __future__ import annotations

from tests.conftest import PASSWORD


def test_a_recall_target_id_beyond_the_database_integers_is_refused_in_words(app, users, client_as):
    response = client_as("qa").post("/recalls/new", data={
        "scope": "donor", "target": "#99999999999999999999", "reason": "late positive HBV NAT",
        "password": PASSWORD})
    assert response.status_code == 422, response.get_data(as_text=True)
    assert "No donor #99999999999999999999." in response.get_data(as_text=True)
