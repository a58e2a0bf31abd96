"""The error summary says a field's name once: a message starting with the field's short name ("Weight: ..." for
the field "Weight (kg)") is not prefixed with the label again ("Weight (kg): Weight: ...", re-review s36)."""
from __future__ import annotations

import pytest

from mscbatch.web.templating import SummaryItem


@pytest.mark.parametrize(("label", "message", "named"), [
    ("Weight (kg)", "Weight: a number of kilograms", True),
    ("Cells seeded (x10^6 cells)", "Cells seeded: 'abc' is not a number", True),
    ("Storage temperature (°C, at most)", "Storage temperature: must be between -200 and -20 °C", True),
    ("Second person: password", "Second person: wrong password", True),
    ("Weight (kg)", "Give the weight.", False),  # no name of its own: the label says which field
    ("Reason", "Not saved: give a reason", False),
    ("Weight (kg)", "W: too short a name to be the field's", False),
])
def test_a_message_naming_its_field_is_not_prefixed_again(label: str, message: str, named: bool) -> None:
    assert SummaryItem("f", label, message).names_field is named
