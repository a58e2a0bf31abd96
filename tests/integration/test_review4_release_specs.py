"""Which specification a lot is judged against (review 4), on SQLite and PostgreSQL.

- A rejected lot stays bound to the version its signed rejection was judged against: its review page and its
  certificate do not follow a later version (before, only release signatures bound the version).
- Two specification ids naming the same product class are refused when the specifications are read, naming both
  files and the class (before, the highest version across both ids was taken in silence).
"""
from __future__ import annotations

import html
import io
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from mscbatch.core.configfiles import ConfigError
from mscbatch.core.release_spec import load_release_specs, specs_for_product
from mscbatch.lots.models import Lot
from mscbatch.release import oos as oos_service
from mscbatch.release import specs
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import LotDisposition, OosInvestigation
from tests.conftest import PASSWORD, api_token_for
from tests.integration.test_release_support import seed_quarantine_lot, user

CD105 = 'id = "cd105"\nname = "CD105"\nkind = "minimum"\nunit = "percent"\nmin = 95'


def _pdf_text(data: bytes) -> str:
    return " ".join(" ".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(data)).pages).split())


def test_a_rejected_lot_keeps_the_specification_version_its_rejection_was_signed_under(  # type: ignore[no-untyped-def]
        app, users, monkeypatch, client_as, spec_dir):
    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id, {"cd105": ("93", "%")})  # below ISCT 95 %
        oos_id = session.scalar(select(OosInvestigation.id).where(OosInvestigation.lot_id == lot_id))
        oos_service.confirm_oos(session, user(session, "qa"), oos_id, "Confirmed: CD105 below ISCT 95 %.", PASSWORD)
        rejection = session.scalar(select(LotDisposition).where(LotDisposition.lot_id == lot_id))
        assert (rejection.kind, rejection.spec_version) == ("rejection", "1")
        assert session.get(Lot, lot_id).status == "rejected"
    # later, version 2 of the same specification is installed (version 1 stays installed), CD105 at least 90 %
    text = (spec_dir / "msc_default_v1.toml").read_text()
    assert CD105 in text
    (spec_dir / "msc_default_v2.toml").write_text(
        text.replace('version = "1"', 'version = "2"', 1).replace(CD105, CD105.replace("min = 95", "min = 90")))
    specs.all_specs.cache_clear()
    qa = client_as("qa")
    page = html.unescape(qa.get(f"/release/lots/{lot_id}").get_data(as_text=True))
    assert "msc_default v1" in page and "msc_default v2" not in page
    pdf = qa.get(f"/release/lots/{lot_id}/certificate.pdf")
    assert pdf.status_code == 200
    words = _pdf_text(pdf.data)
    assert "version 1" in words and "version 2" not in words, words[:1500]
    token = api_token_for(app, "qa")
    api = app.test_client().get(f"/api/v1/release/lots/{lot_id}", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 200 and api.get_json()["spec_version"] == "1"
    # the signed text is removed: said in plain words, not judged against version 2
    (spec_dir / "msc_default_v1.toml").unlink()
    specs.all_specs.cache_clear()
    gone = html.unescape(qa.get(f"/release/lots/{lot_id}").get_data(as_text=True))
    assert "was rejected against specification msc_default version 1, which is no longer in" in gone


def _second_id_for_wj(spec_dir: Path) -> Path:
    text = (spec_dir / "uc_msc_strict_v1.toml").read_text()
    path = spec_dir / "a_uc_msc_site_v1.toml"  # read first: sorted before uc_msc_strict_v1.toml
    path.write_text(text.replace('id = "uc_msc_strict"', 'id = "uc_msc_site"', 1))
    specs.all_specs.cache_clear()
    return path


def test_two_specification_ids_for_one_product_class_are_refused_naming_both_files(spec_dir: Path) -> None:
    _second_id_for_wj(spec_dir)
    with pytest.raises(ConfigError) as caught:
        load_release_specs(spec_dir)
    assert caught.value.key == "products"
    assert ("uc_msc_strict_v1.toml" in caught.value.file and "'MSC(WJ)'" in caught.value.problem
            and "a_uc_msc_site_v1.toml" in caught.value.problem), str(caught.value)


def test_the_overlap_is_said_on_the_pages_not_judged_in_silence(  # type: ignore[no-untyped-def]
        app, users, monkeypatch, client_as, spec_dir):
    lot_id = seed_quarantine_lot(app, monkeypatch)
    _second_id_for_wj(spec_dir)
    page = client_as("qa").get(f"/release/lots/{lot_id}")
    assert page.status_code == 409
    words = html.unescape(page.get_data(as_text=True))
    assert ("The release specifications cannot be used until an administrator fixes this file" in words
            and "uc_msc_strict_v1.toml" in words and "a_uc_msc_site_v1.toml" in words and "MSC(WJ)" in words)


def test_a_class_moves_to_its_own_id_by_a_new_version_of_the_old_one(spec_dir: Path) -> None:
    """Read-through of review 4: the overlap check counted every installed version, and the old version (kept for
    the lots signed under it) still named the class: no class could ever move to another id. Only the version in
    force of each id counts."""
    v1 = (spec_dir / "msc_default_v1.toml").read_text()
    both = 'products = ["MSC(M)", "MSC(AT)"]'
    assert both in v1
    (spec_dir / "msc_default_v2.toml").write_text(
        v1.replace('version = "1"', 'version = "2"', 1).replace(both, 'products = ["MSC(M)"]'))
    (spec_dir / "at_msc_strict_v1.toml").write_text(
        v1.replace('id = "msc_default"', 'id = "at_msc_strict"', 1).replace(both, 'products = ["MSC(AT)"]'))
    loaded = load_release_specs(spec_dir)
    assert [(s.id, s.version) for s in specs_for_product(loaded, "MSC(AT)")] == [("at_msc_strict", "1")]
    assert [(s.id, s.version) for s in specs_for_product(loaded, "MSC(M)")] == [("msc_default", "2")]
    # the old id's version in force naming the class again is the overlap, refused
    (spec_dir / "msc_default_v3.toml").write_text(v1.replace('version = "1"', 'version = "3"', 1))
    with pytest.raises(ConfigError, match="MSC\\(AT\\)"):
        load_release_specs(spec_dir)
