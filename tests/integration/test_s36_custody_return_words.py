"""Session 36 (custody): a refused return assessment says what is wrong with what was typed: a temperature that
is not a number, or outside what a logger reads (the range named), on its field."""
from __future__ import annotations

import html as markup

import pytest

from tests.integration.test_return_assessment import post, returned


def _field_error(page: str, field: str) -> str:
    start = page.index(f'id="{field}-error"')
    return markup.unescape(page[start:page.index("</", start)])


@pytest.mark.parametrize("typed, words, not_said", [
    ("abc", "“abc” is not a number", "outside"),
    ("-300", "from -200 to 40 °C", "not a number"),
    ("41", "from -200 to 40 °C", "not a number"),
])
def test_a_typed_temperature_is_told_what_is_wrong_with_it(app, users, db_session, client_as, typed, words,
                                                           not_said):
    ward = returned(db_session)
    answer = post(client_as("qa"), ward.bag_id, logger_max_c=typed)
    assert answer.status_code == 422
    said = _field_error(answer.get_data(as_text=True), "logger_max_c")
    assert words in said and not_said not in said, said


def test_an_empty_temperature_is_still_asked_for(app, users, db_session, client_as):
    ward = returned(db_session)
    said = _field_error(post(client_as("qa"), ward.bag_id, logger_max_c="").get_data(as_text=True), "logger_max_c")
    assert "give the warmest temperature" in said and "not a number" not in said, said

