"""A number is taken only as a person writes it plainly (mscbatch.api.plain_numbers), in the JSON API
(PlainDecimal) and on the pages (FiniteDecimalField, lots' NumberField): Python's Decimal() read "1_0" as 10,
Arabic-Indic or full-width digits as 12 and "1e2" as 100, so a count or a dose typed wrong was kept silently."""
from __future__ import annotations

from decimal import Decimal

import pytest
from marshmallow import Schema, ValidationError
from werkzeug.datastructures import MultiDict
from wtforms import Form

from mscbatch.api.plain_numbers import PlainDecimal, is_plain_number
from mscbatch.errors import ValidationFailed
from mscbatch.lots.forms import NumberField
from mscbatch.web.forms import FiniteDecimalField

NOT_PLAIN = ["1_0", "١٢", "１２", "۱۲", "1e2", "1E2", "2E+1", "+5", "1,5", "1.2.3", "\u00a012", "12\u2009", "1 2",
             "NaN", "Infinity", "-", ".", "", "0x10", "\u200b12"]
PLAIN = {"12": Decimal("12"), "0.5": Decimal("0.5"), ".5": Decimal("0.5"), " 12 ": Decimal("12"),
         "012": Decimal("12"), "62.50": Decimal("62.50")}


@pytest.mark.parametrize("text", NOT_PLAIN)
def test_text_that_decimal_reads_but_a_person_did_not_write_plainly_is_not_a_plain_number(text):
    assert not is_plain_number(text, signed=True) and not is_plain_number(text, signed=False)


@pytest.mark.parametrize("text", sorted(PLAIN))
def test_plainly_written_numbers_are_plain(text):
    assert is_plain_number(text, signed=False) and is_plain_number(text, signed=True)


def test_a_minus_sign_only_where_the_field_is_signed():
    assert is_plain_number("-150.5", signed=True) and not is_plain_number("-150.5", signed=False)
    assert not is_plain_number("--1", signed=True) and not is_plain_number("1-", signed=True)


class _In(Schema):
    volume_ml = PlainDecimal(required=True)
    temperature_max_c = PlainDecimal(signed=True, load_default=None)


@pytest.mark.parametrize("text", ["1_0", "١٢", "１２", "1e2", "-5", "\u00a012"])
def test_the_api_field_refuses_naming_the_field_and_the_rule(text):
    """Refused as the services refuse (a 422 problem naming the request's own field, detail = the words)."""
    with pytest.raises(ValidationFailed) as refused:
        _In().load({"volume_ml": text})
    [message] = refused.value.errors["volume_ml"]
    assert message == refused.value.message
    assert message.startswith(f"volume_ml: {text!r} is not a plain number") and "digits 0-9 with at most one " \
        "decimal point" in message
    assert "no underscore, no exponent such as 1e2" in message


def test_the_api_field_takes_plain_numbers_and_json_numbers_written_plainly():
    for text, value in PLAIN.items():
        assert _In().load({"volume_ml": text})["volume_ml"] == value
    assert _In().load({"volume_ml": 12, "temperature_max_c": "-150"}) == {
        "volume_ml": Decimal("12"), "temperature_max_c": Decimal("-150")}
    assert _In().load({"volume_ml": 0.5})["volume_ml"] == Decimal("0.5")
    with pytest.raises(ValidationFailed):  # str(1e-05) has an exponent
        _In().load({"volume_ml": 1e-05})
    for value in (True, [1], {"a": 1}):  # marshmallow's own "Not a valid number."
        with pytest.raises(ValidationError):
            _In().load({"volume_ml": value})
    assert _In().dump({"volume_ml": Decimal("1.50"), "temperature_max_c": None}) == {
        "volume_ml": "1.50", "temperature_max_c": None}


class _Page(Form):
    temperature = FiniteDecimalField("Storage temperature (°C)", places=None)
    volume = NumberField("Volume (mL)", places=None)


def test_a_label_names_the_field_in_words():
    class Dose(Schema):
        dose_level_cells_per_kg = PlainDecimal(label="Dose level")

    with pytest.raises(ValidationFailed) as refused:
        Dose().load({"dose_level_cells_per_kg": "1E+999999999"})
    assert refused.value.message.startswith("Dose level: '1E+999999999' is not a plain number; write the number")
    assert list(refused.value.errors) == ["dose_level_cells_per_kg"]


@pytest.mark.parametrize("text", ["1_0", "١٢", "１２", "1e2", "\u00a012", "NaN"])
def test_the_page_fields_refuse_with_the_rule_and_read_nothing(text):
    form = _Page(MultiDict({"temperature": text, "volume": text}))
    assert not form.validate()
    assert form.temperature.data is None and form.volume.data is None
    assert "digits 0-9 with at most one decimal point" in form.temperature.errors[0]
    assert form.volume.errors == [f"Volume: {text!r} is not a number; write the number plainly: digits 0-9 with at "
                                  "most one decimal point, such as 12.5 (a minus sign first only below zero, such as "
                                  "-150.5; no underscore, no exponent such as 1e2, no comma, no spaces or other "
                                  "characters)."]


def test_the_page_fields_still_take_plain_numbers_and_a_minus_sign():
    form = _Page(MultiDict({"temperature": " -150.5 ", "volume": "0.5"}))
    assert form.validate(), form.errors
    assert (form.temperature.data, form.volume.data) == (Decimal("-150.5"), Decimal("0.5"))


def test_a_decimal_comma_keeps_its_own_words_on_the_page():
    form = _Page(MultiDict({"volume": "9,5"}))
    assert not form.validate()
    assert form.volume.errors == ["Volume: '9,5' is not a number; type it with a point, not a comma, such as 12.5."]
