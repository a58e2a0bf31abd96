"""core.identifiers.din_words: a DIN and its check character K said as the label says them (din_shown's body, for
what holds no bag: a draw, a stored calculation); what is no DIN this unit allocates is said as stored."""
from __future__ import annotations

from types import SimpleNamespace

from mscbatch.core.identifiers import din_shown, din_words
from mscbatch.patients.endotoxin import known_part


def test_a_din_is_said_in_its_groups_with_its_check_character() -> None:
    assert din_words("G123417654321", "A") == "G1234 17 654321 A"
    assert din_shown(SimpleNamespace(din="G123417654321", check_character="A")) == "G1234 17 654321 A"


def test_what_is_no_din_is_said_as_stored() -> None:
    assert din_words("OLD-7", "X") == "OLD-7 X"
    assert din_words("OLD-7", "") == "OLD-7"
    assert din_words("", "") == ""
    assert din_shown(SimpleNamespace(din=None, check_character="")) == ""


def test_a_draw_without_an_endotoxin_result_is_named_as_its_label_does() -> None:
    _known, missing = known_part([{"din": "G123417654321", "endotoxin_eu": None}, {"din": "OLD-7"}])
    assert missing == ["G1234 17 654321 A", "OLD-7"]
