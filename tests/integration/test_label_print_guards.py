"""What a printed label may say, through the print page (review 11), on both databases:

- no fresh label (first print or reprint) for a bag the verification page calls unusable: expired, donor
  reopened by new information, a late OOS, past its post-thaw limit, returned. The print is refused with a 409 naming the
  bag and the reason on the page, and nothing is written (no print record, no custody event);
- "For clinical trial use only" always comes with the trial id (AT-MSC had none);
- the QR code points to MSCBATCH_LABEL_BASE_URL, never to the Host header of the print request; unset, the
  request's own address is used on a plain-HTTP development run only (the `make run` demo), and a site behind
  TLS or in production refuses to print until it is set.
"""
from __future__ import annotations

import dataclasses
import html
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.audit.context import use_case
from mscbatch.core.identifiers import din_shown
from mscbatch.core.label_token import make_token
from mscbatch.custody.models import CustodyEvent
from mscbatch.database import utcnow
from mscbatch.donors import decisions
from mscbatch.donors.models import Donor
from mscbatch.labelling.models import LabelPrint, LabelPrintItem
from mscbatch.lots.models import Bag
from tests.conftest import PASSWORD, add_user, make_app
from tests.integration.lot_factories import approved_adipose_donor
from tests.integration.patient_factories import lot_with_bags, user
from tests.integration.test_bedside_late_news import _conditionally_released, _sterility
from tests.integration.test_custody_support import prescribed_bag
from tests.integration.test_labelling import make_lot, pdf_text, qr_codes

STRONG = "s" * 40


def _print(client: Any, lot_id: int, bag_id: int | None = None, reason: str = "", **kwargs: Any) -> Any:
    data: dict[str, Any] = {"print_format": "bag" if bag_id else "lot", "reason": reason}
    if bag_id:
        data["bag_id"] = bag_id
    return client.post(f"/labels/lots/{lot_id}/print", data=data, **kwargs)


def _page_text(response: Any) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


def _written(app: Any, bag_id: int) -> tuple[int, int, int]:
    """(print records, printed bag items, 'labelled' custody events of the bag)."""
    session = app.extensions["mscbatch.db"].new_session()
    try:
        return (session.scalar(select(func.count()).select_from(LabelPrint)),
                session.scalar(select(func.count()).select_from(LabelPrintItem)),
                session.scalar(select(func.count()).select_from(CustodyEvent).where(
                    CustodyEvent.bag_id == bag_id, CustodyEvent.kind == "labelled")))
    finally:
        session.close()


def _alert(response: Any) -> str:
    """The refusal shown at the top of the print form (role=alert), as plain text."""
    found = re.search(r'<div class="form-errors" role="alert">(.*?)</div>', response.get_data(as_text=True), re.S)
    assert found, response.get_data(as_text=True)[:3000]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


def _refused(app: Any, response: Any, din: str, reason: str, before: tuple[int, int, int], bag_id: int) -> str:
    assert (response.status_code, response.mimetype) == (409, "text/html")  # the print page again, not a PDF
    alert = _alert(response)
    with app.extensions["mscbatch.db"].new_session() as session:  # named as its label names it, with K (din_shown)
        shown = din_shown(session.get(Bag, bag_id))
    assert "No label was printed" in alert and shown in alert and din not in alert and reason in alert, alert
    assert _written(app, bag_id) == before
    return alert


def _verification_reasons(app: Any, bag_id: int) -> str:
    session = app.extensions["mscbatch.db"].new_session()
    try:
        bag = session.get(Bag, bag_id)
        token = make_token(bag.din + bag.check_character, app.config["LABEL_KEY"])
    finally:
        session.close()
    page = app.test_client().get(f"/v/{token}")
    assert page.status_code == 200
    return _page_text(page)


# ---- 1. no fresh label for a bag that must not be used ---------------------------------------------------------

def test_an_expired_bag_gets_no_first_label_and_no_reprint(app, users, client_as) -> None:  # type: ignore[no-untyped-def]
    client = client_as("technician")
    lot_id, bags = make_lot(app, bags=2)
    (fresh_id, fresh_din), (expired_id, expired_din) = bags
    session = app.extensions["mscbatch.db"].new_session()
    with use_case(session, user(session, "qa"), "test: the bag's expiry has passed"):
        session.get(Bag, expired_id).expires_at = utcnow() - timedelta(hours=1)
    session.close()
    assert "the bag has expired" in _verification_reasons(app, expired_id)  # what the /v/ page says

    first = _print(client, lot_id, expired_id)
    _refused(app, first, expired_din[:13], "the bag has expired", (0, 0, 0), expired_id)
    whole = _print(client, lot_id)  # the whole lot: refused, naming the bad bag only
    assert fresh_din[:13] not in _refused(app, whole, expired_din[:13], "the bag has expired", (0, 0, 0), expired_id)
    page = _page_text(client.get(f"/labels/lots/{lot_id}"))
    assert "No label: must not be used: the bag has expired" in page

    assert _print(client, lot_id, fresh_id).status_code == 200  # a usable bag of the same lot still prints
    session = app.extensions["mscbatch.db"].new_session()
    with use_case(session, user(session, "qa"), "test: this one expires too"):
        session.get(Bag, fresh_id).expires_at = utcnow() - timedelta(minutes=1)
    session.close()
    reprint = _print(client, lot_id, fresh_id, reason="label damaged")
    _refused(app, reprint, fresh_din[:13], "the bag has expired", (1, 1, 1), fresh_id)


def test_a_quarantine_lots_expired_bag_gets_no_label_but_its_other_bags_do(app, users, client_as) -> None:  # type: ignore[no-untyped-def]
    client = client_as("technician")
    lot_id, [(good_id, _good), (bad_id, bad_din)] = make_lot(app, status="quarantine", bags=2)
    session = app.extensions["mscbatch.db"].new_session()
    with use_case(session, user(session, "qa"), "test: expired in quarantine"):
        session.get(Bag, bad_id).expires_at = utcnow() - timedelta(days=1)
    session.close()
    _refused(app, _print(client, lot_id, bad_id), bad_din[:13], "the bag has expired", (0, 0, 0), bad_id)
    printed = _print(client, lot_id, good_id)
    assert printed.status_code == 200 and "QUARANTINE" in pdf_text(printed.data)


def test_a_bag_whose_donor_was_reopened_gets_no_label(app, users, client_as) -> None:  # type: ignore[no-untyped-def]
    client = client_as("technician")
    session = app.extensions["mscbatch.db"].new_session()
    donor_id = approved_adipose_donor(session)
    made = lot_with_bags(session, user(session, "technician"), session.get(Donor, donor_id), bags=1, labelled=False)
    lot_id, bag_id, din = made[0].lot_id, made[0].id, made[0].din
    session.close()
    assert _print(client, lot_id, bag_id).status_code == 200  # first print while the donor is approved

    session = app.extensions["mscbatch.db"].new_session()
    decisions.reopen_screening(session, user(session, "qa"), donor_id, "Donor reports hepatitis B in a relative")
    session.close()
    reason = "new information reopened the donor's eligibility"
    assert reason in _verification_reasons(app, bag_id)
    _refused(app, _print(client, lot_id, bag_id, reason="label damaged"), din, reason, (1, 1, 1), bag_id)


def test_a_bag_of_a_lot_with_a_late_oos_gets_no_label(app, users, db_session, client_as) -> None:  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session, state="allocated")
    _conditionally_released(db_session, ward)
    client = client_as("technician")
    first = _print(client, ward.lot_id, ward.bag_id, reason="the lot is now conditionally released")
    assert first.status_code == 200 and "CONDITIONAL RELEASE" in pdf_text(first.data)
    before = _written(app, ward.bag_id)
    _sterility(db_session, ward.lot_id, "positive")
    db_session.rollback()
    din = db_session.get(Bag, ward.bag_id).din
    db_session.rollback()
    reason = "failed after its conditional release (late OOS)"
    assert reason in _verification_reasons(app, ward.bag_id)
    _refused(app, _print(client, ward.lot_id, ward.bag_id, reason="label damaged"), din, reason, before,
             ward.bag_id)


def test_a_thawed_bag_on_the_ward_gets_no_label_within_or_past_its_post_thaw_limit(app, users, db_session, client_as, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A label is printed in the unit only: a thawed bag is at the bedside, where a fresh label from the unit
    cannot reach it (and past its post-thaw limit it is not usable either)."""
    ward = prescribed_bag(db_session, state="thawed")
    din = db_session.get(Bag, ward.bag_id).din
    db_session.rollback()
    client = client_as("technician")
    before = _written(app, ward.bag_id)  # its released label, printed before it left the unit
    _refused(app, _print(client, ward.lot_id, ward.bag_id), din, "out of the unit", before, ward.bag_id)
    later = utcnow() + timedelta(hours=6)
    monkeypatch.setattr("mscbatch.labelling.services.utcnow", lambda: later)
    _refused(app, _print(client, ward.lot_id, ward.bag_id, reason="wet label"), din, "out of the unit",
             before, ward.bag_id)


def test_a_returned_bag_gets_no_label_until_qa_has_assessed_it(app, users, db_session, client_as) -> None:  # type: ignore[no-untyped-def]
    from mscbatch.custody import handover

    ward = prescribed_bag(db_session, state="received")
    handover.return_bag(db_session, user(db_session, "nurse"), ward.bag_id, reason="infusion postponed",
                        location="Ward 3")
    din = db_session.get(Bag, ward.bag_id).din
    db_session.rollback()
    assert "returned; QA must assess it" in _verification_reasons(app, ward.bag_id)
    before = _written(app, ward.bag_id)  # its released label, printed before it left the unit
    _refused(app, _print(client_as("technician"), ward.lot_id, ward.bag_id, reason="wet label"), din,
             "returned; QA must assess it", before, ward.bag_id)


# ---- 2. the trial id ----------------------------------------------------------------------------------------------

def test_an_adipose_lot_label_names_its_trial(app, users, client_as) -> None:  # type: ignore[no-untyped-def]
    from mscbatch.lots.queries import product_catalogue

    trial = product_catalogue().get("AT-MSC").trial
    assert trial and trial.strip()
    lot_id, _bags = make_lot(app, bags=1, product="AT-MSC")
    printed = _print(client_as("technician"), lot_id)
    assert printed.status_code == 200
    text = pdf_text(printed.data)
    assert "For clinical trial use" in text and f"Trial {trial}" in text


def test_a_product_of_a_european_trial_gets_a_label_naming_its_eu_ct_number(app, users, client_as, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An EU CT number (17 characters) is a trial id like any other: the label prints it whole (the bag label
    refused it as too wide for its box up to layout 3) and the QR code still scans to the bag."""
    from mscbatch.labelling import services as labelling

    eu_ct = "2023-503456-12-00"
    lot_id, [(_bag_id, din)] = make_lot(app, bags=1)
    configured = labelling.product_of
    monkeypatch.setattr(labelling, "product_of", lambda lot: dataclasses.replace(configured(lot), trial=eu_ct))
    printed = _print(client_as("technician"), lot_id)
    assert printed.status_code == 200 and printed.mimetype == "application/pdf", printed.get_data(as_text=True)[:2000]
    text = pdf_text(printed.data)
    assert "For clinical trial use only" in text and f"Trial {eu_ct}" in text
    [[url]] = qr_codes(printed.data)
    assert f"/v/{din}." in url


def test_a_product_with_an_empty_trial_id_gets_no_label(app, users, client_as, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Second guard behind the configuration loader: label_data refuses an empty trial id."""
    from mscbatch.labelling import services as labelling

    lot_id, [(bag_id, din)] = make_lot(app, bags=1)
    configured = labelling.product_of
    monkeypatch.setattr(labelling, "product_of", lambda lot: dataclasses.replace(configured(lot), trial=" "))
    response = _print(client_as("technician"), lot_id)
    assert response.status_code == 409
    text = _alert(response)
    assert "The label cannot be printed" in text and "has no trial id" in text and "products.toml" in text
    assert _written(app, bag_id) == (0, 0, 0)


# ---- 3. the address in the QR code --------------------------------------------------------------------------------

def _app_with(database_url: str, **overrides: Any):  # type: ignore[no-untyped-def]
    app = make_app(database_url, **overrides)
    add_user(app, "technician", ["technician"])
    return app


def _tech(app: Any, host: str) -> Any:
    """A technician's client that talks to the app under the Host `host` (as the repro: any client sets it)."""
    client = app.test_client()
    assert client.post("/login", data={"username": "technician", "password": PASSWORD},
                       base_url=f"http://{host}").status_code == 302
    return client


@pytest.mark.parametrize("https", [False, True])
def test_the_qr_points_to_the_configured_address_whatever_host_the_request_named(database_url, https, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The address comes from the environment, as a site sets it (MSCBATCH_LABEL_BASE_URL)."""
    configured = "https://mscbatch.example.org/cell-unit"
    monkeypatch.setenv("MSCBATCH_LABEL_BASE_URL", configured + "/")
    monkeypatch.setenv("MSCBATCH_HTTPS", "1" if https else "0")
    app = _app_with(database_url, SESSION_COOKIE_SECURE=False)  # the test client speaks plain HTTP
    try:
        lot_id, [(bag_id, typed)] = make_lot(app, bags=1)
        for number, host in enumerate(("evil.example", "127.0.0.1:8000")):
            response = _print(_tech(app, host), lot_id, bag_id, reason="" if number == 0 else "again",
                              base_url=f"http://{host}")
            assert response.status_code == 200, response.get_data(as_text=True)[:1000]
            [[url]] = qr_codes(response.data)
            assert url.startswith(f"{configured}/v/{typed}."), url
            assert host not in url
    finally:
        app.extensions["mscbatch.db"].engine.dispose()


@pytest.mark.parametrize("overrides", [
    {"HTTPS": True},
    {"ENV_NAME": "production", "SECRET_KEY": STRONG, "AUDIT_KEY": STRONG, "LABEL_KEY": STRONG},
], ids=["https", "production"])
def test_behind_tls_or_in_production_an_unset_address_refuses_to_print(database_url, overrides) -> None:  # type: ignore[no-untyped-def]
    app = _app_with(database_url, LABEL_BASE_URL=None, **overrides)
    try:
        lot_id, [(bag_id, _typed)] = make_lot(app, bags=1)
        response = _print(_tech(app, "evil.example"), lot_id, bag_id, base_url="http://evil.example")
        assert response.status_code == 409
        text = _alert(response)
        assert "No label was printed" in text and "MSCBATCH_LABEL_BASE_URL" in text
        assert _written(app, bag_id) == (0, 0, 0)
    finally:
        app.extensions["mscbatch.db"].engine.dispose()


def test_the_development_demo_without_a_setting_still_prints_with_its_own_address(database_url) -> None:  # type: ignore[no-untyped-def]
    app = _app_with(database_url, LABEL_BASE_URL=None)
    try:
        lot_id, [(bag_id, typed)] = make_lot(app, bags=1)
        response = _print(_tech(app, "127.0.0.1:5000"), lot_id, bag_id, base_url="http://127.0.0.1:5000")
        assert response.status_code == 200
        [[url]] = qr_codes(response.data)
        assert url.startswith(f"http://127.0.0.1:5000/v/{typed}."), url
    finally:
        app.extensions["mscbatch.db"].engine.dispose()


def test_an_http_address_on_a_tls_site_refuses_to_start(database_url, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from mscbatch.settings import SettingsError

    with pytest.raises(SettingsError, match="MSCBATCH_LABEL_BASE_URL .*https://"):
        make_app(database_url, HTTPS=True, LABEL_BASE_URL="http://mscbatch.example.org")
    monkeypatch.setenv("MSCBATCH_HTTPS", "1")
    monkeypatch.setenv("MSCBATCH_LABEL_BASE_URL", "http://mscbatch.example.org")
    with pytest.raises(SettingsError, match="MSCBATCH_LABEL_BASE_URL .*https://"):
        make_app(database_url)



# ---- 4. the Code 128 ------------------------------------------------------------------------------------------------

def test_a_printed_labels_code_128_is_the_isbt_128_din_data_structure(app, users, client_as) -> None:  # type: ignore[no-untyped-def]
    """ISBT 128 ST-001, data structure 001: "=" + the 13-character DIN + flags "00" (unused); not the bare DIN,
    and never the keyboard check character K."""
    import pypdfium2
    import zxingcpp

    lot_id, bags = make_lot(app, bags=2)
    response = _print(client_as("technician"), lot_id)
    assert response.status_code == 200
    document = pypdfium2.PdfDocument(response.data)
    decoded = [[code.text for code in zxingcpp.read_barcodes(
        page.render(scale=300 / 72, grayscale=True).to_pil().convert("L"), formats=zxingcpp.BarcodeFormat.Code128)]
        for page in document]
    document.close()
    assert decoded == [[f"={typed[:13]}00"] for _bag_id, typed in bags]
