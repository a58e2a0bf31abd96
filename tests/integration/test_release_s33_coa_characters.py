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


def test_a_name_the_font_cannot_print_is_written_as_its_code_point_never_a_black_square(
        app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id = seed_quarantine_lot(app, monkeypatch)
    add_user(app, "pawel", ["qa"], full_name="Paweł Łukasiewicz")
    session = app.extensions["mscbatch.db"].new_session()
    try:
        enter_panel(session, user(session, "technician"), lot_id)
        from mscbatch.release.results import ResultEntry, enter_result

        enter_result(session, user(session, "technician"), lot_id, ResultEntry(
            test_id="viability", value="93", unit="%", analyst="Иван Петров", tested_on=site_today()))
        release.release_lot(session, user(session, "pawel"), lot_id, PASSWORD)
        assert session.query(ReleaseResult).filter_by(analyst="Иван Петров").count() == 1
    finally:
        session.close()

    pdf = client_as("qa").get(f"/release/lots/{lot_id}/certificate.pdf")
    assert pdf.status_code == 200
    text = _text(pdf.data)
    assert "\u25a0" not in text  # no black square in place of a recorded character
    assert "Pawe[U+0142] [U+0141]ukasiewicz" in text  # the printed name of the release signature
    assert "[U+0418][U+0432][U+0430][U+043D]" in text  # Иван, the analyst of the viability result
    assert "a character this certificate's font cannot print, written as its Unicode code point" in text


def test_a_certificate_whose_text_the_fonts_print_has_no_code_points_nor_their_note(
        app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id = seed_quarantine_lot(app, monkeypatch)
    add_user(app, "zoe", ["qa"], full_name="Zoë Lefèvre-Müller ≤")
    session = app.extensions["mscbatch.db"].new_session()
    try:
        enter_panel(session, user(session, "technician"), lot_id)
        release.release_lot(session, user(session, "zoe"), lot_id, PASSWORD)
    finally:
        session.close()
    text = _text(client_as("qa").get(f"/release/lots/{lot_id}/certificate.pdf").data)
    assert "Zoë Lefèvre-Müller ≤" in text
    assert "[U+" not in text and "code point" not in text
