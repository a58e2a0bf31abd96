"""Session 42b (ward nurses at night): the reaction onset is a datetime-local picker, as every date-time field of
the site (web/date_fields.DateTimeSiteField, read by site.site_time); on a tablet set to a US locale it shows AM/PM,
and "09:58 PM" was read as 09:58. The field now says the 24-hour clock in its hint and opts in to js/clock-words.js
(data-clock-words, data-zone), which says the typed time back beside it ("= 21:58 CET, ..."); the server's reading
and refusals are unchanged. Through the web client, on SQLite and PostgreSQL (the browser test drives the words)."""
from __future__ import annotations

import html
import re

import pytest

from mscbatch.site import site_config
from tests.integration.test_s35_ward_confirm_words import _infusion

pytestmark = pytest.mark.usefixtures("users")


def test_the_onset_field_says_the_24_hour_clock_and_opts_in_to_the_words_beside_it(app, client_as):  # type: ignore[no-untyped-def]
    nurse, url = _infusion(app, client_as)
    page = nurse.get(url).get_data(as_text=True)
    with app.app_context():
        zone = site_config().tz.key
    field = re.search(r'<input[^>]*id="onset_at"[^>]*>', page)
    assert field, page[page.find("Onset"):][:600]
    assert 'type="datetime-local"' in field.group(0)
    assert 'data-clock-words="onset_at-words"' in field.group(0) and f'data-zone="{zone}"' in field.group(0)
    assert re.search(r'<p class="clock-words" id="onset_at-words" aria-live="polite" hidden></p>', page)
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    assert f"Local time, {zone}. Empty: now. On the 24-hour clock: 9:58 in the evening is 21:58." in text
    assert '<script src="/static/js/clock-words.js"></script>' in page


def test_an_onset_refused_is_shown_back_with_its_words_place(app, client_as):  # type: ignore[no-untyped-def]
    nurse, url = _infusion(app, client_as)
    answer = nurse.post(f"{url}/reactions", data={"ctcae_term": "Fever", "grade": "1", "onset_at": "2999-01-01T09:58"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422, page[:500]
    field = re.search(r'<input[^>]*id="onset_at"[^>]*>', page).group(0)
    assert 'value="2999-01-01T09:58"' in field and 'data-clock-words="onset_at-words"' in field
    assert 'id="onset_at-words"' in page
