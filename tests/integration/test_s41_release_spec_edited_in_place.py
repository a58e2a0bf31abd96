"""A specification version edited in place after results were entered under it is refused for the lots not yet
signed, as it already was for signed ones (s41 QA review): CD73 min 95 -> 90 in msc_default_v1.toml, still "version
1", judged a 92 % CD73 as passed. Now the review page says the file changed (409) and names what to do; putting the
text back restores it; a new version is the way to change a rule."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from mscbatch.release import specs
from mscbatch.release.demo import enter_panel
from tests.integration.test_release_support import seed_quarantine_lot, user
from tests.integration.test_review4_release_specs import CD105


def _entered(app: Any, monkeypatch: Any) -> int:
    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id, {"cd105": ("96", "%")})
    return lot_id


def test_a_version_edited_in_place_after_results_is_refused_until_put_back(app, users, monkeypatch,  # type: ignore[no-untyped-def]
                                                                            client_as, spec_dir: Path):
    lot_id = _entered(app, monkeypatch)
    qa = client_as("qa")
    assert qa.get(f"/release/lots/{lot_id}").status_code == 200
    path = spec_dir / "msc_default_v1.toml"
    signed_text = path.read_text()
    assert CD105 in signed_text
    path.write_text(signed_text.replace(CD105, CD105.replace("min = 95", "min = 90")))  # same version, other text
    specs.all_specs.cache_clear()
    page = qa.get(f"/release/lots/{lot_id}")
    words = html.unescape(page.get_data(as_text=True))
    assert page.status_code == 409, words[:2000]
    assert "were entered under specification msc_default version 1, but msc_default_v1.toml was changed after " \
           "the results were entered" in words and "CD105" in words
    assert "a change needs a new version" in words
    path.write_text(signed_text)
    specs.all_specs.cache_clear()
    assert qa.get(f"/release/lots/{lot_id}").status_code == 200
