"""The label's Code 128 (ISBT 128 DIN data structure 001, "=" + DIN + 2 flag characters) read by a unit's barcode
scanner names its bag, as the QR code and a typed DIN with its K do. It was refused everywhere as a mistyped DIN
("has 16 characters"), so the one ISBT symbol the label carries could not be scanned into the app."""
from __future__ import annotations

from urllib.parse import quote

from mscbatch.core.identifiers import parse_din
from mscbatch.labels.symbols import isbt128_din
from mscbatch.lots.models import Bag
from tests.integration.test_custody_support import check, prescribed_bag


def _symbol(bag: Bag) -> str:
    """What the scanner types: the label's Code 128 decodes to this (tests/unit/test_label_render.py reads it
    from a rendered label with zxing-cpp)."""
    return isbt128_din(parse_din(bag.din))


def test_the_bedside_check_matches_the_bag_named_by_its_code_128(app, users, db_session):
    ward = prescribed_bag(db_session)
    bag = db_session.get(Bag, ward.bag_id)
    result = check(db_session, ward, token=_symbol(bag))
    assert result.matches, result.failures
    assert result.bag.id == bag.id


def test_a_scanned_symbol_that_is_no_din_is_refused_in_plain_words(app, users, db_session):
    ward = prescribed_bag(db_session)
    bag = db_session.get(Bag, ward.bag_id)
    broken = "=O" + _symbol(bag)[2:]  # a FIN never starts with the letter O
    result = check(db_session, ward, token=broken)
    assert not result.matches
    assert any("bar code scanned is not a bag number" in f.message for f in result.failures), result.failures
    flagged = _symbol(bag)[:-2] + "?!"
    assert not check(db_session, ward, token=flagged).matches


def test_the_identifier_page_and_api_read_the_symbol_and_name_the_bag(app, users, db_session, client_as):
    ward = prescribed_bag(db_session)
    bag = db_session.get(Bag, ward.bag_id)
    din, symbol = bag.din, _symbol(bag)
    db_session.commit()
    client = client_as("nurse")
    page = client.get(f"/identifiers?text={quote(symbol)}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200, text
    assert "read from the label" in text and din in text
    from tests.conftest import api_token_for
    answer = app.test_client().post("/api/v1/identifiers/parse", json={"text": symbol},
                                    headers={"Authorization": f"Bearer {api_token_for(app, 'nurse')}"})
    body = answer.get_json()
    assert answer.status_code == 200 and body["valid"] is True and body["parts"]["din"] == din, body
