"""Review 5 (labqa): the certificate of analysis says what a QA person expects of it: the lot's dates, expiry,
storage and site, its bags' DINs, the intended recipient of a directed lot, each OOS by its test's name with the
retest that closed it and who closed it, which OOS each signature was for, and why a rejected lot was rejected."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mscbatch.lots.models import Bag, Lot
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import OosInvestigation, ReleaseResult
from mscbatch.site import local_and_utc, site_config, site_today
from tests.conftest import PASSWORD
from tests.integration.test_labelling import make_lot, pdf_text
from tests.integration.test_release_support import seed_quarantine_lot, user
from tests.integration.test_s37_release_seen import seen
from tests.time_words import site_then_utc


def _coa(client: Any, lot_id: int) -> str:
    response = client.get(f"/release/lots/{lot_id}/certificate.pdf")
    assert response.status_code == 200
    return pdf_text(response.data)


def test_the_certificate_names_dates_storage_site_bags_and_each_oos_with_its_retest(app, users, client_as,
                                                                                   monkeypatch):
    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id, {"cd105": ("94", "%")})  # fails: an OOS opens
        lot = session.get(Lot, lot_id)
        collected, frozen = local_and_utc(lot.collection_at), local_and_utc(lot.frozen_at)
        # the expiry as the lot's page says it: the site's time with its zone, UTC beside it
        expiry = site_then_utc(lot.expires_at)
        dins = [f"{b.din_display} {b.check_character}" for b in
                session.scalars(select(Bag).where(Bag.lot_id == lot_id).order_by(Bag.bag_number))]
    tech = client_as("technician")
    assert tech.post(f"/release/lots/{lot_id}/results", data={
        "result-test_id": "cd105", "result-value": "97", "result-unit": "%", "result-analyst": "Tom QC",
        "result-tested_on": site_today().isoformat()}).status_code == 302
    with app.extensions["mscbatch.db"].new_session() as session:
        oos_id = session.scalar(select(OosInvestigation.id))
        retest_id = session.scalar(select(ReleaseResult.id).where(ReleaseResult.test_id == "cd105")
                                   .order_by(ReleaseResult.id.desc()))
    qa = client_as("qa")
    closed = qa.post(f"/release/oos/{oos_id}", data={
        "action": "invalidate", "oos-investigation": "Pipetting error found on the stain plate; retest valid.",
        "oos-retest_result_id": str(retest_id), "oos-assignable_cause": "analyst_error", "oos-password": PASSWORD,
        **seen(qa, lot_id)})
    assert closed.status_code == 302
    assert qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id),
        "action": "reject", "release-password": PASSWORD,
        "release-justification": "Sterility sample lost in transit"}).status_code == 302

    text = _coa(qa, lot_id)
    assert f"Collected {collected} at Demo hospital, theatre 3" in text
    assert f"Frozen {frozen}" in text and f"Expiry {expiry}" in text
    assert "Storage -150 °C or colder" in text
    assert f"Manufacturing site {site_config().facility_name}" in text
    assert "Bags (4), DIN and check character: " + ", ".join(dins) in text
    # the OOS by its test's name, with the retest that closed it and who closed it
    assert "cd105" not in text and "CD105 CD105 failed (94 % < 95 %)" in text
    assert "retest 97 % (" in text and "Qa, " in text
    assert f"OOS invalidated (laboratory error, valid retest) (OOS investigation {oos_id}, CD105)" in text
    assert "Reason for the rejection: Sterility sample lost in transit" in text
    assert "reason: Sterility sample lost in transit" in text  # beside the rejection's signature too


def test_the_certificate_of_a_directed_lot_names_its_intended_recipient(app, users, client_as):
    lot_id, _bags = make_lot(app, bags=1, familial_for="SSC-BM-0042", product="BM-MSC")
    assert "For use by intended recipient only: SSC-BM-0042" in _coa(client_as("qa"), lot_id)
    other_id, _bags = make_lot(app, bags=1)
    assert "intended recipient" not in _coa(client_as("qa"), other_id)
