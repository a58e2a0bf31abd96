"""UI review 3 (lots, storage, monitoring and every refused form), through the web pages as each role sees them.

#6  A refusal on a page shown again appeared next to its form, often below the fold, with nothing at the top:
    every page rendered with a refused form now opens with a summary ("Not saved: ..." linking to the fields),
    role="alert" and autofocus, found by base.html in the page's forms (no template names it).
#7  The lot page said "QA has not approved donor D-..." of an approved donor whose samples do not cover the lot's
    collection day, and the release page "donor eligibility not approved": both now give the donor gate's reasons.
#8  The box picker's options began "Unit / Tank / Rack ...": a narrow select showed only the unit. Box first now.
#9  The bags table had ten columns; the storage column was squeezed to one letter on a tablet. Six now.
#15 Monitoring counted "second person is the first checker" (a right password) as a failed sign-in.
#17 /lots/new showed "MSC-{year}-{seq:04d}" and "From config/products.toml".
"""
from __future__ import annotations

import html
import re
from datetime import timedelta

from mscbatch.custody.bedside import SECOND_PERSON_REFUSED
from mscbatch.donors.models import APPROVED
from mscbatch.lots import storage
from mscbatch.lots.models import Bag, Lot
from mscbatch.monitoring import counters
from mscbatch.site import site_today
from mscbatch.web.templating import summary_items
from tests.conftest import PASSWORD, screening_seen
from tests.integration.lot_factories import TODAY, approved_adipose_donor, box, cryopreserved_lot, start_lot
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import check, prescribed_bag, token_of
from tests.integration.test_donors import db_session, screened_donor  # noqa: F401 (fixture)


def _summary(body: str) -> str:
    """The summary at the top of the page, as plain text ("" when there is none)."""
    found = re.search(r'<div class="error-summary" id="error-summary" role="alert" tabindex="-1" autofocus[^>]*>'
                      r'(.*?)</div>', body, re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split()) if found else ""


def _first(body: str, *markers: str) -> str:
    """Which marker comes first in the page."""
    return min((m for m in markers if m in body), key=body.index)


# ---- #6 the refusal summary at the top of the page -------------------------------------------------------------

def test_a_refused_second_person_is_summarised_at_the_top_of_the_bedside_page(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    ward = prescribed_bag(session)
    check_id = check(session, ward).check_id
    session.close()
    response = client_as("nurse").post(f"/ward/checks/{check_id}/confirm", data={
        "second_username": "nurse2", "second_password": "not-the-password", "checker_password": PASSWORD})
    body = response.get_data(as_text=True)
    assert response.status_code == 401
    assert _summary(body) == "Not saved: " + SECOND_PERSON_REFUSED
    assert '<a href="#second_password" data-field="second_password">' in body  # a link to the field
    # at the top of the content: before the green verdict the nurse sees first, and the form far below it
    assert _first(body, 'id="error-summary"', 'class="verdict', 'name="second_password"') == 'id="error-summary"'
    assert "js/error-summary.js" in body  # moves the focus to it (autofocus does without JavaScript)


def test_a_refused_dispatch_is_summarised_at_the_top_of_the_ward_page(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    ward = prescribed_bag(session, state="dispatched")  # already on its way: a second dispatch is refused
    token = token_of(session.get(Bag, ward.bag_id))
    session.close()
    response = client_as("technician").post("/ward/dispatch", data={
        "bag": token, "courier": "Fast Courier", "shipper": "Dry shipper DS-3", "temperature_logger_id": "TL-0042"})
    body = response.get_data(as_text=True)
    assert response.status_code == 409, body[:2000]
    summary = _summary(body)
    inline = re.search(r'<section aria-labelledby="h-dispatch".*?<div class="form-errors" role="alert">(.*?)</div>',
                       body, re.S)
    said = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", inline.group(1))).split()) if inline else "?"
    assert summary == f"Not saved: {said}" and "dispatched" in said, (summary, said)  # what the form says, on top
    assert _first(body, 'id="error-summary"', "<h1>Ward scanning</h1>") == 'id="error-summary"'


def test_a_refused_donor_signature_is_summarised_at_the_top_of_the_donor_page(app, users, client_as,
                                                                             db_session):  # noqa: F811
    donor_id = screened_donor(db_session, "adipose_at_don")
    db_session.close()
    response = client_as("qa").post(f"/donors/{donor_id}/decision", data={**screening_seen(client_as("qa"), donor_id),
        "decision-meaning": APPROVED, "decision-password": "wrong-one"})
    body = response.get_data(as_text=True)
    assert response.status_code == 401
    assert "Signature refused: wrong password. Nothing was signed." in _summary(body)
    assert _first(body, 'id="error-summary"', "<h1>") == 'id="error-summary"'


def test_a_page_without_a_refusal_has_no_summary(app, users, client_as):
    body = client_as("technician").get("/ward").get_data(as_text=True)
    assert 'id="error-summary"' not in body and "error-summary.js" not in body


def test_the_summary_lists_form_and_field_errors_once_each_and_links_only_real_fields(app):
    from flask_wtf import FlaskForm
    from wtforms import HiddenField, StringField
    from wtforms.validators import DataRequired

    class Form(FlaskForm):
        token = HiddenField("Token", validators=[DataRequired("The form expired: open it again.")])
        bag = StringField("Bag label", validators=[DataRequired("Scan the bag.")])

    with app.test_request_context("/somewhere", method="POST", data={}):
        form = Form(prefix="dispatch")
        form.validate()
        form.form_errors.append("Refused: the bag is not released.")
        items = summary_items({"dispatch_form": form, "same": form, "forms": [form], "page_errors": ["Else."]})
    assert [(item.target, item.label, item.message) for item in items] == [
        (None, "", "Refused: the bag is not released."),
        (None, "", "The form expired: open it again."),  # a hidden field: said, not linked
        ("dispatch-bag", "Bag label", "Scan the bag."),  # the same form under three names: listed once
        (None, "", "Else.")]


# ---- #7 the donor gate's own reasons -------------------------------------------------------------------------

def test_a_lot_of_an_approved_donor_outside_the_sample_windows_says_why_it_is_pending(app, users, client_as,
                                                                                     db_session):  # noqa: F811
    donor_id = approved_adipose_donor(db_session, days_ago=20)  # samples the day after a donation 20 days ago
    lot_id = start_lot(db_session, donor_id, days_ago=2)  # collected 18 days after those samples
    lot = db_session.get(Lot, lot_id)
    assert lot.gate_now == "pending"
    code = lot.lot_number
    db_session.close()

    page = client_as("technician").get(f"/lots/{lot_id}").get_data(as_text=True)
    flag = re.search(r'<div class="flag flag-warning" id="pending-flag".*?</div>', page, re.S)
    assert flag, page[:3000]
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", flag.group(0))).split())
    assert "QA has not approved" not in text and "has not signed" not in text, text
    day = (TODAY - timedelta(days=2)).isoformat()
    assert re.search(rf"QA approved donor D-\d{{4}}-\d{{4}} on \d{{4}}-\d\d-\d\d, but judged at this lot's collection "
                     rf"day \({day}\) the screening says pending:", text), text
    assert "missing" in text.lower() or "window" in text.lower(), text  # the screening's own words for the samples

    review = client_as("qa").get(f"/release/lots/{lot_id}").get_data(as_text=True)
    reasons = re.search(r'<ul class="gate-reasons" id="gate-reasons">(.*?)</ul>', review, re.S)
    assert reasons and f"collection day ({day})" in html.unescape(reasons.group(1)), (code, review[:3000])


def test_a_lot_of_a_donor_qa_has_not_signed_says_so(app, users, client_as, db_session):  # noqa: F811
    donor_id = screened_donor(db_session, "adipose_at_don", planned_collection_date=TODAY - timedelta(days=20),
                              sample=TODAY - timedelta(days=19))  # eligible on its screening, not signed by QA
    lot_id = start_lot(db_session, donor_id)
    db_session.close()
    page = client_as("technician").get(f"/lots/{lot_id}").get_data(as_text=True)
    assert re.search(r"QA has not signed donor D-\d{4}-\d{4}&#39;s eligibility yet\.", page), page[:3000]
    assert "but judged at this lot" not in page


# ---- #8 / #9 the box picker and the bags table ---------------------------------------------------------------

def test_the_box_picker_names_the_box_first_and_the_bags_table_fits_a_tablet(app, users, client_as,
                                                                            db_session):  # noqa: F811
    donor_id = approved_adipose_donor(db_session)
    lot_id, made = cryopreserved_lot(db_session, donor_id, count=2)
    box_id = box(db_session)
    storage.store_bag(db_session, user(db_session, "technician"), made[0].id, box_id, 1)
    db_session.close()
    page = client_as("technician").get(f"/lots/{lot_id}").get_data(as_text=True)
    picker = re.search(r'<select[^>]*id="store-box_id"[^>]*>(.*?)</select>', page, re.S)
    assert picker, page[:3000]
    options = [html.unescape(o) for o in re.findall(r"<option[^>]*>([^<]*)</option>", picker.group(1))]
    assert "Box 1 — Rack, Tank, Unit -150" in options, options
    table = re.search(r'<table class="bags">.*?</table>', page, re.S).group(0)  # type: ignore[union-attr]
    assert re.findall(r"<th>([^<]*)</th>", table.split("</thead>")[0]) == [
        "Bag, DIN and K", "Product code", "Content", "Expiry", "Status", "Storage"]
    stored = re.search(r'<tr data-bag="1">.*?</tr>', table, re.S).group(0)  # type: ignore[union-attr]
    cell = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", stored.split('class="storage-cell">')[1])).split())
    assert cell.startswith("Box 1 , position A1 Rack, Tank, Unit -150"), cell


# ---- #15 monitoring ------------------------------------------------------------------------------------------

def test_the_first_checker_as_second_person_is_counted_apart_from_wrong_passwords(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    ward = prescribed_bag(session)
    first = check(session, ward).check_id
    session.close()
    nurse = client_as("nurse")
    same = nurse.post(f"/ward/checks/{first}/confirm", data={
        "second_username": "nurse", "second_password": PASSWORD, "checker_password": PASSWORD})
    assert same.status_code == 409 and "cannot check twice" in same.get_data(as_text=True)
    wrong = nurse.post(f"/ward/checks/{first}/confirm", data={
        "second_username": "nurse2", "second_password": "wrong-password", "checker_password": PASSWORD})
    assert wrong.status_code == 401

    session = app.extensions["mscbatch.db"].new_session()
    counts = counters.counts(session)
    session.close()
    assert counts["failed_logins"]["all_time"] == 1  # nurse2's wrong password only
    assert counts["second_person_refused"]["all_time"] == 1
    page = client_as("admin").get("/admin/monitoring").get_data(as_text=True)
    section = re.search(r'<section id="recent-second_person_refused">.*?</section>', page, re.S)
    assert section and "nurse (Nurse)" in section.group(0) and "the same person cannot check twice" in section.group(0)
    logins = re.search(r'<section id="recent-failed_logins">.*?</section>', page, re.S).group(0)  # type: ignore[union-attr]
    assert "nurse2 (Nurse2)" in logins and "cannot check twice" not in logins and "first checker" not in logins


# ---- #17 plain words on /lots/new ----------------------------------------------------------------------------

def test_the_new_lot_page_speaks_plain_words(app, users, client_as):
    page = html.unescape(client_as("technician").get("/lots/new").get_data(as_text=True))
    assert "{year}" not in page and "seq:04d" not in page and "config/products.toml" not in page
    assert f"e.g. MSC-{site_today().year}-0001" in page
