"""A new version of a release specification installed while lots made under the old one are still unreleased, on
SQLite and PostgreSQL: a version that changes how a test's results are written (its unit, its result words), or a
version string that cannot be ordered, is refused when the specifications are read, naming the file and the key,
and said on the pages in plain words; never a server error."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mscbatch.release import specs
from mscbatch.release.demo import enter_panel
from tests.conftest import api_token_for
from tests.integration.test_release_support import seed_quarantine_lot, user


@pytest.fixture
def tested_lot(app, users, monkeypatch, spec_dir):  # type: ignore[no-untyped-def]
    """A quarantined adipose lot with every result entered under msc_default version 1."""
    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id)
    return lot_id


def _install(spec_dir: Path, name: str, version: str, *replacements: tuple[str, str]) -> Path:
    text = (spec_dir / "msc_default_v1.toml").read_text().replace('version = "1"', f'version = "{version}"')
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path = spec_dir / name
    path.write_text(text)
    specs.all_specs.cache_clear()
    return path


POTENCY_AS_WORDS = ('kind = "minimum"\nunit = "percent"\nmin = 20\ngroup = "potency"',
                    'kind = "pass_fail"\nunit = "none"\ngroup = "potency"')


def _pages(app: Any, client_as: Any, lot_id: int) -> dict[str, Any]:
    qa = client_as("qa")
    token = api_token_for(app, "qa")
    return {"review": qa.get(f"/release/lots/{lot_id}"), "certificate": qa.get(f"/release/lots/{lot_id}/certificate.pdf"),
            "api": app.test_client().get(f"/api/v1/release/lots/{lot_id}", headers={"Authorization": f"Bearer {token}"})}


@pytest.mark.parametrize("change", ["unit", "words"])
def test_a_version_2_that_changes_how_a_test_is_reported_is_refused_naming_the_file_and_key(
        app, client_as, tested_lot, spec_dir, change):  # type: ignore[no-untyped-def]
    """Results entered in % under version 1 are judged under the active version 2 while the lot is unreleased: a
    version 2 reporting potency as a word, or Gram stain with other words, could not read them (a 500)."""
    if change == "unit":
        _install(spec_dir, "msc_default_v2.toml", "2", POTENCY_AS_WORDS)
        key = "tests[19].unit"
    else:
        _install(spec_dir, "msc_default_v2.toml", "2", ('pass_result = "no organisms"', 'pass_result = "none seen"'))
        key = "tests[15].pass_result"
    for name, response in _pages(app, client_as, tested_lot).items():
        assert response.status_code == 409, (name, response.status_code)
        words = response.get_data(as_text=True)
        assert "msc_default_v2.toml" in words and key in words, name
        assert "version 1" in words and "new test id" in words, name


@pytest.mark.parametrize("version", ["2a", "1.0"])
def test_a_version_string_that_cannot_be_ordered_is_refused_naming_the_file_and_key(
        app, client_as, tested_lot, spec_dir, version):  # type: ignore[no-untyped-def]
    """"2a" cannot be compared with "1" (the highest version is the active one: a 500 before); "1.0" is version 1
    again under another name (which of the two is active?)."""
    _install(spec_dir, "msc_default_v2.toml", version, ("min = 70", "min = 75"))
    for name, response in _pages(app, client_as, tested_lot).items():
        assert response.status_code == 409, (name, response.status_code)
        words = response.get_data(as_text=True)
        assert "msc_default_v2.toml" in words and ": version:" in words, name


def test_a_compatible_version_2_judges_the_unreleased_lot_and_allows_a_dotted_version(
        app, client_as, tested_lot, spec_dir):  # type: ignore[no-untyped-def]
    """Same units and words, another limit: version 1.1 and then 2 become active for the lot still in quarantine;
    "1.10" orders after "1.9" (numbers, not text)."""
    _install(spec_dir, "msc_default_v1_9.toml", "1.9", ("min = 70", "min = 71"))
    _install(spec_dir, "msc_default_v1_10.toml", "1.10", ("min = 70", "min = 72"))
    page = client_as("qa").get(f"/release/lots/{tested_lot}")
    assert page.status_code == 200 and "msc_default v1.10" in page.get_data(as_text=True)


def test_a_specification_edited_in_place_after_results_were_entered_is_said_not_a_server_error(
        app, client_as, tested_lot, spec_dir):  # type: ignore[no-untyped-def]
    """No new version to compare with: version 1 itself now reports potency as a word, and the lot's potency
    result in % cannot be read. The pages say which result and file, and what to do."""
    _install(spec_dir, "msc_default_v1.toml", "1", POTENCY_AS_WORDS)
    for name, response in _pages(app, client_as, tested_lot).items():
        assert response.status_code == 409, (name, response.status_code)
        words = response.get_data(as_text=True)
        # said before any result is read (s41: an edit that leaves every result readable is refused too)
        assert "Potency" in words and "msc_default_v1.toml was changed after the results were entered" in words, name


def test_the_dose_endotoxin_check_is_refused_not_skipped_when_the_specifications_cannot_be_used(
        app, tested_lot, spec_dir):  # type: ignore[no-untyped-def]
    """The dose's K/M check reads the lot's endotoxin result under its specification: a configuration fault must
    stop the calculation with the administrator's message, not drop the check as "no result on the bags"."""
    from mscbatch.lots.models import Lot
    from mscbatch.release.queries import endotoxin_eu_per_ml

    with app.extensions["mscbatch.db"].new_session() as session:
        lot = session.get(Lot, tested_lot)
        assert endotoxin_eu_per_ml(session, [lot])  # the panel's endotoxin result, read under version 1
        _install(spec_dir, "msc_default_v2.toml", "2a", ("min = 70", "min = 75"))
        with pytest.raises(specs.SpecificationUnusable, match="msc_default_v2.toml"):
            endotoxin_eu_per_ml(session, [lot])
