"""Session 34, release: the LATE OOS line names the failed test as the specification names it, never by its id.

The flag ("LATE OOS: sterility failed after the conditional release; NOT FOR USE ...") on the release review page,
the lot and label pages, the certificate and the bedside STOP joined the OOS investigations' raw test ids
(release.queries.failed_late_tests). They now give the test's name from the lot's specification; an id the
specification cannot name is kept as it is, so the stop is still said."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from mscbatch.lots.models import Lot
from mscbatch.release.queries import release_state, spec_test_names
from tests.integration.test_release_support import seed_quarantine_lot, sterility_failed_late

NAME = "Sterility (14-day culture)"  # the specification's name, unlike its id "sterility" in more than case


def _failed_late(app: Any, monkeypatch: Any, spec_dir: Path) -> int:
    for spec in spec_dir.glob("*.toml"):
        spec.write_text(spec.read_text().replace('name = "Sterility"', f'name = "{NAME}"'))
    return sterility_failed_late(app, monkeypatch)


def test_the_late_oos_flag_names_the_test_as_the_specification_does(
        app, users, monkeypatch, spec_dir, client_as):  # type: ignore[no-untyped-def]
    lot_id = _failed_late(app, monkeypatch, spec_dir)
    with app.extensions["mscbatch.db"].new_session() as session:
        state = release_state(session, session.get(Lot, lot_id))
        assert state.failed_late == (NAME,)
        assert state.flag.startswith(f"LATE OOS: {NAME} failed after the conditional release"), state.flag
    qa = client_as("qa")
    for page in (f"/release/lots/{lot_id}", f"/labels/lots/{lot_id}"):
        text = html.unescape(qa.get(page).get_data(as_text=True))
        assert f"LATE OOS: {NAME} failed" in text and "LATE OOS: sterility" not in text, page


def test_an_id_the_specification_does_not_name_is_kept_as_it_is(
        app, users, monkeypatch, spec_dir):  # type: ignore[no-untyped-def]
    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        assert spec_test_names(session, lot_id, ("cd14_or_cd11b", "no_such_test")) == ("CD14 or CD11b",
                                                                                       "no_such_test")
        assert spec_test_names(session, lot_id, ()) == ()
