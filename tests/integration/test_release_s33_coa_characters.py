"""A certificate of analysis prints what the record holds: a character its fonts have no glyph for (the ł of a Polish
QA person's printed name, an analyst's name in Cyrillic) was drawn as a black square, so the signed certificate named
someone the record does not. It is written as its code point, and the certificate says what that means."""
from __future__ import annotations

import io

from pypdf import PdfReader

from mscbatch.release import release
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import ReleaseResult
from mscbatch.site import site_today
from tests.conftest import PASSWORD, add_user
from tests.integration.test_release_support import seed_quarantine_lot, user


def _text(pdf: bytes) -> str:
    return " ".join(" ".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf)).pages).split())


def _released_by(app, monkeypatch, username: str, full_name: str, analyst: str = "") -> int:  # type: ignore[no-untyped-def]
    """A lot whose results are entered (the viability's analyst named `analyst`, when given) and released by a new
    QA account printed `full_name`."""
    lot_id = seed_quarantine_lot(app, monkeypatch)
    add_user(app, username, ["qa"], full_name=full_name)
    session = app.extensions["mscbatch.db"].new_session()
    try:
        enter_panel(session, user(session, "technician"), lot_id)
        if analyst:
            from mscbatch.release.results import ResultEntry, enter_result

            enter_result(session, user(session, "technician"), lot_id, ResultEntry(
                test_id="viability", value="93", unit="%", analyst=analyst, tested_on=site_today()))
        release.release_lot(session, user(session, username), lot_id, PASSWORD)
        if analyst:
            assert session.query(ReleaseResult).filter_by(analyst=analyst).count() == 1
    finally:
        session.close()
    return lot_id


def test_a_name_the_font_cannot_print_is_written_as_its_code_point_never_a_black_square(
        app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id = _released_by(app, monkeypatch, "pawel", "Paweł Łukasiewicz", analyst="Иван Петров")

    pdf = client_as("qa").get(f"/release/lots/{lot_id}/certificate.pdf")
    assert pdf.status_code == 200
    text = _text(pdf.data)
    assert "\u25a0" not in text  # no black square in place of a recorded character
    assert "Pawe[U+0142] [U+0141]ukasiewicz" in text  # the printed name of the release signature
    assert "[U+0418][U+0432][U+0430][U+043D]" in text  # Иван, the analyst of the viability result
    assert "a character this certificate's font cannot print, written as its Unicode code point" in text


def test_a_certificate_whose_text_the_fonts_print_has_no_code_points_nor_their_note(
        app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id = _released_by(app, monkeypatch, "zoe", "Zoë Lefèvre-Müller ≤")
    text = _text(client_as("qa").get(f"/release/lots/{lot_id}/certificate.pdf").data)
    assert "Zoë Lefèvre-Müller ≤" in text
    assert "[U+" not in text and "code point" not in text
