"""Review s36 of the donor forms, through the web client (SQLite and PostgreSQL).

1. "Negative retest 180 days" was offered, with a hint promising the wider sample window, for every tissue source:
   it is shown only for a rule set whose extended window such a retest opens (living adipose donors, AT-DON), and a
   small script follows the protocol chosen on the same page. The server refuses nothing new: elsewhere the value
   is ignored.
2. A date typed wrong ("31/02/2026", "2026-13-45") was refused with WTForms' "Not a valid date value." and came
   back in an <input type="date">, which a browser empties: now the field, the text and the format are named, and
   the text stays in the field (donor form and the result form of the donor page).
3. The questionnaire's error summary said "Detail: Field cannot be longer than 500 characters." of one of 13+
   Detail fields: it names the question and the length typed.
4. QA's signature hint said the time is shown in UTC: it is shown in the site's local time with UTC beside it.
"""
from __future__ import annotations

import re
from typing import Any

from mscbatch.donors import services
from mscbatch.donors.models import Donor, ScreeningResult
from tests.integration.test_donors import (
    DATES,
    count,
    db_session,  # noqa: F401 (fixture)
    details,
    page_of,
    register_through_the_form,
    screened_donor,
    user,
)


def _retest_wrapper(html: str) -> str:
    found = re.search(r'<div id="retest-field"[^>]*>', html)
    assert found, "no wrapper around the retest field"
    return found.group(0)


def _registered(db_session: Any, rule_set_id: str, **changes: Any) -> int:  # noqa: F811
    donor = services.register_donor(db_session, user(db_session, "technician"), details(rule_set_id, **changes))
    db_session.commit()
    return donor.id


def _edit_post(rule_set_id: str, **overrides: str) -> dict[str, str]:
    """The edit form's fields for a donor registered with test_donors.details(rule_set_id)."""
    d = details(rule_set_id)
    data = {"rule_set_id": rule_set_id, "donor_type": d.donor_type, "relationship": d.relationship or "",
            "recipient_code": d.recipient_code or "", "initials": d.initials, "sex": d.sex, "weight_kg": d.weight_kg,
            "date_of_birth": d.date_of_birth.isoformat(), "consent_signed": "yes",
            "consent_date": d.consent_date.isoformat(), "social_security": "yes", "childbearing_potential": "yes",
            "contraception": "yes", "planned_collection_date": d.planned_collection_date.isoformat(),
            "reason": "typing error on the consent form"}
    data.update(overrides)
    return data


# ---- 1. the 180-day retest field only where it has an effect ---------------------------------------------------

def test_the_retest_field_is_hidden_until_a_protocol_with_an_extended_window_is_chosen(app, client_as):
    tech = client_as("technician")
    html = tech.get("/donors/new").get_data(as_text=True)
    wrapper = _retest_wrapper(html)
    assert 'data-shown-for-rule-sets="adipose_at_don"' in wrapper  # the only rule set with such a window
    assert wrapper.endswith(" hidden>")  # no protocol chosen yet
    assert 'aria-controls="retest-field"' in html  # the protocol select says what it shows or hides
    assert "js/donor-form.js" in html
    script = tech.get("/static/js/donor-form.js")
    assert script.status_code == 200 and b"data-shown-for-rule-sets" in script.data
    script.close()
    # the hint is the rule set's own window, and says the others ignore the value
    assert "AT-DON, adipose tissue: -30 to +7 days" in html and "the others&#39; rules ignore it" in html

    # a refused registration comes back with the field shown or hidden for the protocol it was given
    adipose = register_through_the_form(tech, weight_kg="heavy")
    assert adipose.status_code == 422 and not _retest_wrapper(adipose.get_data(as_text=True)).endswith(" hidden>")
    marrow = register_through_the_form(tech, rule_set_id="marrow_ssc_bm", weight_kg="heavy")
    assert marrow.status_code == 422 and _retest_wrapper(marrow.get_data(as_text=True)).endswith(" hidden>")


def test_the_edit_page_shows_the_retest_field_for_an_adipose_donor_only(app, client_as, db_session):  # noqa: F811
    adipose, marrow = _registered(db_session, "adipose_at_don"), _registered(db_session, "marrow_ssc_bm")
    tech = client_as("technician")
    assert not _retest_wrapper(tech.get(f"/donors/{adipose}/edit").get_data(as_text=True)).endswith(" hidden>")
    assert _retest_wrapper(tech.get(f"/donors/{marrow}/edit").get_data(as_text=True)).endswith(" hidden>")


def test_a_retest_posted_for_a_protocol_without_the_window_is_not_refused(app, client_as, db_session):  # noqa: F811
    """Chosen for an adipose donor, then the protocol changed: the hidden field still posts its value."""
    tech = client_as("technician")
    response = register_through_the_form(tech, rule_set_id="marrow_ssc_bm", donor_type="familial",
                                         relationship="sibling", recipient_code="SSC-BM-001",
                                         retest_180_days_negative="yes")
    assert response.status_code == 302, response.get_data(as_text=True)
    assert count(db_session, Donor) == 1


# ---- 2. a date typed wrong is named, explained and kept ---------------------------------------------------------

def test_a_consent_date_typed_wrong_says_the_format_and_keeps_the_text(app, client_as, db_session):  # noqa: F811
    tech = client_as("technician")
    response = register_through_the_form(tech, consent_date="31/02/2026", date_of_birth="2026-13-45")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert ('id="consent_date-error">Consent date: &#39;31/02/2026&#39; is not a date; type it as YYYY-MM-DD '
            '(e.g. 2026-02-28)<') in html
    assert ('id="date_of_birth-error">Date of birth: &#39;2026-13-45&#39; is not a date; type it as YYYY-MM-DD '
            '(e.g. 2026-02-28)<') in html
    assert "Not a valid date value" not in html
    # the typed text stays in a text input (a date input shows an invalid value as empty)
    consent = re.search(r'<input[^>]*id="consent_date"[^>]*>', html).group(0)
    assert 'type="text"' in consent and 'value="31/02/2026"' in consent
    assert 'type="text"' in re.search(r'<input[^>]*id="date_of_birth"[^>]*>', html).group(0)
    # the summary at the top names the field once, as a link to it
    assert ('<a href="#consent_date" data-field="consent_date">Consent date: &#39;31/02/2026&#39; is not a date;'
            in html)
    # a date typed right is still a date input
    assert 'type="date"' in re.search(r'<input[^>]*id="planned_collection_date"[^>]*>', html).group(0)
    assert count(db_session, Donor) == 0


def test_a_date_typed_wrong_on_the_edit_page_says_the_format(app, client_as, db_session):  # noqa: F811
    donor_id = _registered(db_session, "adipose_at_don")
    response = client_as("technician").post(f"/donors/{donor_id}/edit",
                                            data=_edit_post("adipose_at_don", consent_date="2026-13-45"))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Consent date: &#39;2026-13-45&#39; is not a date; type it as YYYY-MM-DD (e.g. 2026-02-28)" in html
    assert 'value="2026-13-45"' in re.search(r'<input[^>]*id="consent_date"[^>]*>', html).group(0)


def test_a_sample_date_typed_wrong_says_the_format_and_keeps_the_text(app, client_as, db_session):  # noqa: F811
    donor_id = screened_donor(db_session, "adipose_at_don", skip=("hev",))
    db_session.commit()
    before = count(db_session, ScreeningResult)
    tech = client_as("technician")
    response = tech.post(f"/donors/{donor_id}/results", data={
        "result-marker": "hev", "result-result": "negative", "result-sample_date": "31/02/2026",
        "result-lab_reference": "R1"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert ('id="result-sample_date-error">Sample date: &#39;31/02/2026&#39; is not a date; type it as YYYY-MM-DD '
            '(e.g. 2026-02-28)<') in html
    sample = re.search(r'<input[^>]*id="result-sample_date"[^>]*>', html).group(0)
    assert 'type="text"' in sample and 'value="31/02/2026"' in sample
    # an empty date is still asked for in the form's own words
    response = tech.post(f"/donors/{donor_id}/results", data={
        "result-marker": "hev", "result-result": "negative", "result-sample_date": "", "result-lab_reference": "R1"})
    assert response.status_code == 422
    assert 'id="result-sample_date-error">Give the sample date.<' in response.get_data(as_text=True)
    assert count(db_session, ScreeningResult) == before
    # and a date typed right is recorded
    response = tech.post(f"/donors/{donor_id}/results", data={
        "result-marker": "hev", "result-result": "negative", "result-sample_date": DATES["adipose_at_don"][1].isoformat(),
        "result-lab_reference": "R1"})
    assert response.status_code == 302, response.get_data(as_text=True)


# ---- 3. the questionnaire summary names the question ------------------------------------------------------------

def test_a_detail_too_long_is_named_by_its_question_in_the_summary(app, client_as, db_session):  # noqa: F811
    donor_id = _registered(db_session, "marrow_ssc_bm")
    response = client_as("technician").post(f"/donors/{donor_id}/questionnaire", data={
        "q_xylocaine_allergy": "yes", "d_xylocaine_allergy": "x" * 612})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    summary = html[html.index('id="error-summary"'):html.index("</ul>", html.index('id="error-summary"'))]
    assert ('<a href="#d_xylocaine_allergy" data-field="d_xylocaine_allergy">Detail of &#39;History of allergy to '
            'Xylocaine (lidocaine)&#39;</a>: at most 500 characters (you typed 612)') in summary
    assert "Field cannot be longer" not in html
    # the inline error stays by its question, tied to its input
    assert 'id="d_xylocaine_allergy-error">at most 500 characters (you typed 612)<' in html
    assert 'aria-describedby="d_xylocaine_allergy-error"' in html


# ---- 4. the signature hint says how the time is shown ---------------------------------------------------------

def test_the_signature_hint_says_local_time_with_utc(app, client_as, db_session):  # noqa: F811
    donor_id = screened_donor(db_session, "adipose_at_don")
    db_session.commit()
    html = page_of(client_as("qa"), donor_id)
    assert "the time (the site&#39;s local time, with UTC beside it) and its meaning" in html
    assert "the time (UTC)" not in html

