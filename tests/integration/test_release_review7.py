"""Review 7, release: an exceptional release names a patient who can receive the lot; a result refused for its
attachment writes nothing; a result's method, instrument and reagent lot are refused when too long, never cut.
On SQLite and PostgreSQL."""
from __future__ import annotations

import html
import io
import re

import pytest
from sqlalchemy import func, select

from mscbatch.errors import ValidationFailed
from mscbatch.lots.models import Lot
from mscbatch.release import release, results
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import LotDisposition, ReleaseResult, ResultAttachment
from mscbatch.signatures.models import Signature
from mscbatch.site import site_today
from tests.conftest import PASSWORD, api_token_for
from tests.integration.test_release_support import (
    EXCEPTIONAL_WHY,
    cord_quarantine_lot,
    lupus_patient_code,
    seed_quarantine_lot,
    user,
)
from tests.integration.test_s37_release_seen import seen

OOS_VIABILITY = {"viability": ("65", "%")}


@pytest.fixture
def lot_id(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    return seed_quarantine_lot(app, monkeypatch)  # the demo adipose (AT-MSC) lot, and the demo UC-MSC lot


@pytest.fixture
def session(app):  # type: ignore[no-untyped-def]
    s = app.extensions["mscbatch.db"].new_session()
    yield s
    s.close()


def _signatures(session):  # type: ignore[no-untyped-def]
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Signature))


def _status(session, lot_id):  # type: ignore[no-untyped-def]
    session.expire_all()
    return session.get(Lot, lot_id).status


# 1. exceptional release: the patient named can receive the lot

def test_an_exceptional_request_for_a_patient_code_nobody_has_is_refused_next_to_the_field(
        app, session, lot_id, client_as):  # type: ignore[no-untyped-def]
    uc_id = cord_quarantine_lot(session)
    enter_panel(session, user(session, "technician"), uc_id, OOS_VIABILITY)
    before = _signatures(session)
    session.close()  # SQLite: the request's writes must not wait for this session
    clinician = client_as("clinician")
    asked = clinician.post(f"/release/lots/{uc_id}/exceptional", data={
        "exceptional-patient_code": "SSC-BM-999", "exceptional-justification": EXCEPTIONAL_WHY,
        "exceptional-password": PASSWORD, **seen(clinician, uc_id)})
    page = html.unescape(asked.get_data(as_text=True))
    assert asked.status_code == 422
    error = re.search(r'<p class="error" id="exceptional-patient_code-error">([^<]*)</p>', page)
    assert error and "no patient has the code SSC-BM-999" in error.group(1), page[:2000]
    assert 'value="SSC-BM-999"' in page and EXCEPTIONAL_WHY in page  # what was typed is kept
    assert _signatures(session) == before and _status(session, uc_id) == "quarantine"
    assert session.scalar(select(func.count()).select_from(LotDisposition).where(LotDisposition.lot_id == uc_id)) == 0


def test_an_exceptional_request_names_a_patient_whose_protocol_takes_the_product_and_who_is_not_withdrawn(
        session, lot_id):  # type: ignore[no-untyped-def]
    from mscbatch.patients.withdrawal import withdraw

    clinician = user(session, "clinician")
    uc_id = cord_quarantine_lot(session)
    for lot in (lot_id, uc_id):
        enter_panel(session, user(session, "technician"), lot, OOS_VIABILITY)
    lupus = lupus_patient_code(session)
    withdrawn = lupus_patient_code(session)
    withdraw(session, clinician, PASSWORD, _patient_id(session, withdrawn), reason="Consent withdrawn by the patient.")
    before = _signatures(session)
    refused = {
        (lot_id, lupus): "takes UC-MSC, not AT-MSC",  # the adipose lot: no protocol takes it
        (uc_id, withdrawn): "withdrawn from the trial",
        (uc_id, "SLE-UC-999"): "no patient has the code SLE-UC-999",
    }
    for (lot, code), words in refused.items():
        with pytest.raises(ValidationFailed, match=words) as caught:
            release.request_exceptional_release(session, clinician, lot, code, EXCEPTIONAL_WHY, PASSWORD)
        session.rollback()
        assert caught.value.field == "patient_code"
    assert _signatures(session) == before
    release.request_exceptional_release(session, clinician, uc_id, lupus, EXCEPTIONAL_WHY, PASSWORD)  # who can


def test_an_exceptional_request_for_a_directed_protocol_names_the_familial_donor_s_own_recipient(
        session, lot_id):  # type: ignore[no-untyped-def]
    """As a prescription offers bags (core.dosing.offered_bags): a familial donor's cells go to the recipient the
    donor names only, and a directed protocol (SSc-BM) gives its patient only their own familial donor's cells."""
    from tests.integration.patient_factories import SSC, donor, lot_with_bags, patient

    qa, clinician = user(session, "qa"), user(session, "clinician")
    ssc = patient(session, clinician, protocol_id=SSC, enrol=False).code

    def oos_lot(donor_row):  # type: ignore[no-untyped-def]
        [bag, *_] = lot_with_bags(session, qa, donor_row, product="BM-MSC", status="quarantine", labelled=False)
        enter_panel(session, user(session, "technician"), bag.lot_id, OOS_VIABILITY)
        return bag.lot_id

    someone_else_s, unrelated = oos_lot(donor(session, qa, familial_for="SSC-BM-0042")), oos_lot(donor(session, qa))
    own = oos_lot(donor(session, qa, familial_for=ssc))
    for lot, words in ((someone_else_s, "are for patient SSC-BM-0042 only"),
                       (unrelated, "only the cells of their own familial donor")):
        with pytest.raises(ValidationFailed, match=words) as caught:
            release.request_exceptional_release(session, clinician, lot, ssc, EXCEPTIONAL_WHY, PASSWORD)
        session.rollback()
        assert caught.value.field == "patient_code"
    assert release.request_exceptional_release(session, clinician, own, ssc, EXCEPTIONAL_WHY, PASSWORD).patient_code == ssc


def _patient_id(session, code):  # type: ignore[no-untyped-def]
    from mscbatch.patients.models import Patient

    return session.scalar(select(Patient.id).where(Patient.code == code))


def test_qa_does_not_countersign_a_request_for_a_patient_withdrawn_since(session, lot_id, client_as):  # type: ignore[no-untyped-def]
    from mscbatch.patients.withdrawal import withdraw

    clinician = user(session, "clinician")
    uc_id = cord_quarantine_lot(session)
    enter_panel(session, user(session, "technician"), uc_id, OOS_VIABILITY)
    code = lupus_patient_code(session)
    request = release.request_exceptional_release(session, clinician, uc_id, code, EXCEPTIONAL_WHY, PASSWORD)
    request_id = request.id
    withdraw(session, clinician, PASSWORD, _patient_id(session, code), reason="Consent withdrawn by the patient.")
    before = _signatures(session)
    session.close()
    qa = client_as("qa")
    review = html.unescape(qa.get(f"/release/lots/{uc_id}").get_data(as_text=True))  # said before QA presses it
    assert 'id="exceptional-refused"' in review and 'id="sign-exceptional"' not in review
    assert f"patient {code} has been withdrawn from the trial" in review
    answer = qa.post(f"/release/lots/{uc_id}/release", data={**seen(qa, uc_id),
        "action": "exceptional", "release-password": PASSWORD, "release-request_id": str(request_id)})
    page = html.unescape(answer.get_data(as_text=True))
    assert answer.status_code == 422 and f"patient {code} has been withdrawn from the trial" in page
    assert _signatures(session) == before and _status(session, uc_id) == "quarantine"


# 2. a result refused for its attachment writes nothing

def _results(session, lot_id):  # type: ignore[no-untyped-def]
    session.expire_all()
    return session.scalar(select(func.count()).select_from(ReleaseResult).where(ReleaseResult.lot_id == lot_id))


def _attachments(session):  # type: ignore[no-untyped-def]
    return session.scalar(select(func.count()).select_from(ResultAttachment))


COMMON = {"analyst": "Tom QC", "tested_on": site_today().isoformat(), "instrument": "FACSCanto II"}


def _form(prefix, fields, attachment):  # type: ignore[no-untyped-def]
    data = {f"{prefix}-{k}": v for k, v in {**COMMON, **fields}.items()}
    data[f"{prefix}-attachment"] = attachment
    return data


@pytest.mark.parametrize("path,prefix,fields,made", [
    ("results", "result", {"test_id": "viability", "value": "92.5", "unit": "%"}, 1),
    ("panel", "panel", {"cd73": "99", "cd90": "99", "cd105": "99", "cd45": "1", "cd34": "1", "cd14": "1",
                        "cd79a": "1", "hla_dr": "1"}, 8),
])
def test_a_result_refused_for_its_attachment_is_not_saved_and_the_retry_records_it_once(
        session, lot_id, client_as, path, prefix, fields, made):  # type: ignore[no-untyped-def]
    before, files = _results(session, lot_id), _attachments(session)
    session.close()
    client = client_as("technician")
    refused = client.post(f"/release/lots/{lot_id}/{path}", content_type="multipart/form-data", data=_form(
        prefix, fields, (io.BytesIO(b"MZ\x90\x00 not a report"), "report.exe", "application/octet-stream")))
    assert refused.status_code == 422 and "Attachment: accepted files are" in refused.get_data(as_text=True)
    assert _results(session, lot_id) == before and _attachments(session) == files  # nothing written
    session.close()
    again = client.post(f"/release/lots/{lot_id}/{path}", content_type="multipart/form-data", data=_form(
        prefix, fields, (io.BytesIO(b"%PDF-1.7 report"), "report.pdf", "application/pdf")))
    assert again.status_code == 302
    assert _results(session, lot_id) == before + made and _attachments(session) == files + 1


# 3. method, instrument and reagent lot: refused when too long, never cut

def test_a_too_long_instrument_or_reagent_lot_is_refused_by_the_api_naming_the_fields(app, lot_id):  # type: ignore[no-untyped-def]
    token = api_token_for(app, "technician")
    response = app.test_client().post(f"/api/v1/release/lots/{lot_id}/results", headers={
        "Authorization": f"Bearer {token}"}, json={
        "test_id": "viability", "value": "92.5", "unit": "%", "analyst": "Tom QC", "tested_on": COMMON["tested_on"],
        "instrument": "BD FACSCanto II " + "x" * 120, "reagent_lot": "R" * 121, "method": "M" * 201})
    assert response.status_code == 422, response.get_json()
    assert set(response.get_json()["errors"]) == {"instrument", "reagent_lot", "method"}
    at_limit = app.test_client().post(f"/api/v1/release/lots/{lot_id}/results", headers={
        "Authorization": f"Bearer {token}"}, json={
        "test_id": "viability", "value": "92.5", "unit": "%", "analyst": "Tom QC", "tested_on": COMMON["tested_on"],
        "instrument": "I" * 120, "reagent_lot": "R" * 120, "method": "M" * 200})
    body = at_limit.get_json()
    assert at_limit.status_code == 201 and (body["instrument"], body["reagent_lot"], body["method"]) == (
        "I" * 120, "R" * 120, "M" * 200)


@pytest.mark.parametrize("field,limit", [("method", 200), ("instrument", 120), ("reagent_lot", 120)])
def test_a_too_long_method_instrument_or_reagent_lot_is_refused_by_the_service_and_the_page(
        session, lot_id, client_as, field, limit):  # type: ignore[no-untyped-def]
    entry = results.ResultEntry(test_id="viability", value="92.5", unit="%", analyst="Tom QC",
                                tested_on=site_today(), **{field: "x" * (limit + 1)})
    before = _results(session, lot_id)
    with pytest.raises(ValidationFailed, match=f"at most {limit} characters") as caught:
        results.enter_result(session, user(session, "technician"), lot_id, entry)
    session.rollback()
    assert caught.value.field == field
    session.close()
    page = client_as("technician").post(f"/release/lots/{lot_id}/results", data=_form(
        "result", {"test_id": "viability", "value": "92.5", "unit": "%", field: "y" * (limit + 1)}, ""))
    text = page.get_data(as_text=True)
    assert page.status_code == 422 and f'id="result-{field}-error"' in text and "y" * (limit + 1) in text
    assert _results(session, lot_id) == before
