"""An out-of-specification batch released as an exception (EU GMP Part IV 11.5): its certificate shows the
failing result the verdict stands on, and its bags are offered to the one named patient only.

Before: the certificate printed the later passing retest (88 %) beside FAIL, and the dose calculation offered
the bags to any patient (only the bedside check stopped them, after they had been reserved and dispatched).
"""
from __future__ import annotations

import io

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from mscbatch.errors import Conflict
from mscbatch.lots.models import Bag, Lot
from mscbatch.patients import inventory
from mscbatch.release import release, results
from mscbatch.release.demo import enter_panel
from mscbatch.site import site_today
from tests.conftest import PASSWORD, add_user
from tests.integration.patient_factories import donor, lot_with_bags, patient
from tests.integration.test_bedside import _disposition
from tests.integration.test_release_support import (
    cord_quarantine_lot,
    lupus_patient_code,
    seed_quarantine_lot,
    user,
)
from tests.integration.test_s37_release_seen import seen


def _waiting(app, lot_id: int) -> str:  # type: ignore[no-untyped-def]
    """The id of the request the review page shows: QA's countersignature names it (review 4)."""
    from mscbatch.release.queries import waiting_exceptional_request

    with app.extensions["mscbatch.db"].new_session() as session:
        return str(waiting_exceptional_request(session, lot_id).id)


def _lot_for_sle_uc_007(app, monkeypatch) -> int:  # type: ignore[no-untyped-def]
    """A quarantined UC-MSC lot and the lupus patient SLE-UC-007 its exceptional release names (a registered patient
    whose protocol takes the lot's product: release.patient_refusal)."""
    seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        lot_id = cord_quarantine_lot(session)
        lupus_patient_code(session, code="SLE-UC-007")
    return lot_id


def test_the_certificate_of_an_exceptional_release_prints_the_failing_result(app, users, monkeypatch, client_as):
    lot_id = _lot_for_sle_uc_007(app, monkeypatch)
    session = app.extensions["mscbatch.db"].new_session()
    tech = user(session, "technician")
    enter_panel(session, tech, lot_id, {"viability": ("65", "%")})
    results.enter_result(session, tech, lot_id, results.ResultEntry(
        test_id="viability", value="88", unit="%", analyst="QC analyst", tested_on=site_today()))
    release.request_exceptional_release(session, user(session, "clinician"), lot_id, "SLE-UC-007",
                                        "No alternative therapy; life-threatening flare, benefit outweighs risk",
                                        PASSWORD)
    release.approve_exceptional_release(session, user(session, "qa"), lot_id, PASSWORD)
    session.close()
    pdf = client_as("qa").get(f"/release/lots/{lot_id}/certificate.pdf")
    assert pdf.status_code == 200
    text = " ".join(" ".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf.data)).pages).split())
    row = text[text.index("Viability"):text.index("Viability") + 120]
    assert "65" in row and "FAIL" in row and "88" not in row, row


def test_an_exceptionally_released_lot_is_offered_to_its_named_patient_only(app, users, db_session):
    tech, clinician = user(db_session, "technician"), user(db_session, "clinician")
    lot_id = lot_with_bags(db_session, tech, donor(db_session, tech))[0].lot_id
    named = patient(db_session, clinician, code="SLE-UC-901")
    other = patient(db_session, clinician, code="SLE-UC-902")
    _disposition(db_session, lot_id, "exceptional_release", patient_code="SLE-UC-901")
    refused = inventory.calculate(db_session, other.id)
    assert refused.allocation is None
    assert "released as an exception for patient SLE-UC-901 only" in str(refused.refusal)
    offered = inventory.calculate(db_session, named.id)
    assert offered.allocation is not None
    lot_bags = set(db_session.scalars(select(Bag.id).where(Bag.lot_id == lot_id)))
    assert {int(d.bag_id) for d in offered.allocation.draws} <= lot_bags


def _request(session, lot_id: int, clinician) -> None:  # type: ignore[no-untyped-def]
    release.request_exceptional_release(session, clinician, lot_id, "SLE-UC-007",
                                        "No alternative therapy; life-threatening flare, benefit outweighs risk",
                                        PASSWORD)


def test_qa_cannot_approve_an_exceptional_release_on_results_that_changed_since_the_request(  # type: ignore[no-untyped-def]
        app, users, monkeypatch, client_as):
    """The clinician weighed viability 66 %; a positive sterility culture entered afterwards must not be released
    under that signature (review finding: QA's approval waived every failure, old or new)."""
    lot_id = _lot_for_sle_uc_007(app, monkeypatch)
    session = app.extensions["mscbatch.db"].new_session()
    tech = user(session, "technician")
    enter_panel(session, tech, lot_id, {"viability": ("66", "%")})
    _request(session, lot_id, user(session, "clinician"))
    results.enter_result(session, tech, lot_id, results.ResultEntry(
        test_id="sterility", value="positive", unit="", analyst="QC analyst", tested_on=site_today()))
    session.close()
    qa = client_as("qa")
    answer = qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id), "action": "exceptional", "release-password": PASSWORD,
                                                              "release-request_id": _waiting(app, lot_id)})
    assert answer.status_code == 409
    html = answer.get_data(as_text=True).replace("&#39;", "'")
    assert "the results changed since the clinician's request (Sterility: pass negative then, fail positive now)" in html
    session = app.extensions["mscbatch.db"].new_session()
    assert session.get(Lot, lot_id).status == "quarantine"
    _request(session, lot_id, user(session, "clinician"))  # asked again, knowing the culture is positive
    session.close()
    answer = qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id), "action": "exceptional", "release-password": PASSWORD,
                                                              "release-request_id": _waiting(app, lot_id)})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    session = app.extensions["mscbatch.db"].new_session()
    assert session.get(Lot, lot_id).status == "released"
    session.close()


def test_the_clinician_who_asked_cannot_also_approve_as_qa(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    lot_id = _lot_for_sle_uc_007(app, monkeypatch)
    add_user(app, "doctor-qa", ["clinician", "qa"])
    session = app.extensions["mscbatch.db"].new_session()
    enter_panel(session, user(session, "technician"), lot_id, {"viability": ("66", "%")})
    both = user(session, "doctor-qa")
    _request(session, lot_id, both)
    with pytest.raises(Conflict, match="another person than the clinician who asked"):
        release.approve_exceptional_release(session, both, lot_id, PASSWORD)
    assert session.get(Lot, lot_id).status == "quarantine"
    session.close()
