"""A field with two messages: each message has its own id and the input is described by both (the same id twice on
a page is invalid HTML, and a screen reader reading aria-describedby finds only the first)."""
from __future__ import annotations

import re

from wtforms import Form, StringField


class _OneField(Form):
    name = StringField("Name")


def test_two_messages_of_one_field_have_distinct_ids_and_both_describe_the_input(app) -> None:  # type: ignore[no-untyped-def]
    form = _OneField()
    form.name.errors = ["Name: required.", "Name: at most 40 characters."]
    with app.test_request_context():
        html = app.jinja_env.from_string('{% from "macros.html" import field %}{{ field(form.name) }}').render(form=form)
    ids = re.findall(r'<p class="error" id="([^"]+)"', html)
    assert ids == ["name-error", "name-error-2"]
    described = re.search(r'aria-describedby="([^"]+)"', html)
    assert described and described.group(1).split() == ids


def test_one_message_keeps_its_plain_id(app) -> None:  # type: ignore[no-untyped-def]
    form = _OneField()
    form.name.errors = ["Name: required."]
    with app.test_request_context():
        html = app.jinja_env.from_string('{% from "macros.html" import field %}{{ field(form.name) }}').render(form=form)
    assert re.findall(r'id="(name-error[^"]*)"', html) == ["name-error"]
    assert 'aria-describedby="name-error"' in html
