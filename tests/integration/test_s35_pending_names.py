"""A conditionally released bag's MATCHES note names the pending test as the specification names it ("Sterility"),
as the lot's flag does, not by its id ("sterility"): the nurse reads the note, the API keeps the ids."""
from __future__ import annotations

import pytest

from tests.integration.test_bedside_late_news import _conditionally_released, _scan
from tests.integration.test_custody_support import prescribed_bag

pytestmark = pytest.mark.usefixtures("users")


def test_the_pending_test_is_named_by_its_specification_name_at_the_bedside(app, db_session):
    ward = prescribed_bag(db_session)
    _conditionally_released(db_session, ward)
    db_session.commit()
    answer = _scan(app, ward)
    assert answer["result"] == "MATCHES"
    [note] = [n for n in answer["notes"] if n.startswith("Conditional release")]
    assert "still pending (Sterility)" in note, note
