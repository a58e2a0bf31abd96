"""Review 13 (donors): a page opened before a colleague's change no longer puts the old values back.

The questionnaire, a result's correction page and the donor's edit page post every value they show. One opened
before a colleague recorded a change (a "yes" to lithium, a result corrected to positive, a consent recorded as
withdrawn) put the old value back on its next save, silently (the audit trail named the change as the second
person's, under a reason about something else): an excluded donor read eligible again and QA could approve it.
Each page now carries a fingerprint of what it showed; a save on a page that no longer shows the record is refused
(409), nothing is written, and the page is shown again with the values as recorded now.
"""
from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from sqlalchemy import select

from mscbatch.donors import services
from mscbatch.donors.models import Donor, QuestionnaireAnswer, ScreeningResult
from mscbatch.donors.queries import evaluate_donor, get_donor
from tests.conftest import add_user
from tests.integration.test_donors import (
    db_session,  # noqa: F401 (fixture)
    screened_donor,
    user,
)


class _Form(HTMLParser):
    """The values a browser posts for the form whose action contains `action` (checked radios, inputs, selects)."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action, self.inside, self.values, self.select, self.textarea = action, False, {}, None, None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = self.action in a.get("action", "") or (self.action == "" and "action" not in a)
        elif not self.inside:
            return
        elif tag == "input" and a.get("name") and a.get("type") not in ("submit", "button"):
            if a.get("type") in ("radio", "checkbox"):
                if "checked" in a:
                    self.values[a["name"]] = a.get("value", "")
            else:
                self.values[a["name"]] = a.get("value", "")
        elif tag == "select":
            self.select = a.get("name")
        elif tag == "option" and self.select and "selected" in a:
            self.values[self.select] = a.get("value", "")
        elif tag == "textarea":
            self.textarea = a.get("name")
            self.values[self.textarea] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self.select = None
        elif tag == "textarea":
            self.textarea = None

    def handle_data(self, data: str) -> None:
        if self.inside and self.textarea:
            self.values[self.textarea] += data


def form_of(html: str, action: str = "") -> dict[str, str]:
    parser = _Form(action)
    parser.feed(html)
    return dict(parser.values)


def _answer(session: Any, donor_id: int, question_id: str) -> str | None:
    value = session.scalar(select(QuestionnaireAnswer.answer).where(QuestionnaireAnswer.donor_id == donor_id,
                                                                    QuestionnaireAnswer.question_id == question_id))
    session.rollback()
    return value


def test_a_questionnaire_opened_before_a_colleagues_yes_does_not_put_it_back_to_no(app, users, client_as,
                                                                                  db_session):  # noqa: F811
    add_user(app, "tech2", ["technician"])
    donor_id = screened_donor(db_session, "adipose_at_don")
    db_session.commit()
    tech = client_as("technician")
    page = tech.get(f"/donors/{donor_id}").get_data(as_text=True)
    shown = form_of(page, f"/donors/{donor_id}/questionnaire")
    assert shown["q_lithium"] == "no" and shown["q_icterus"] == "no"

    # meanwhile a colleague records that the donor takes lithium (excludes)
    services.answer_questionnaire(db_session, user(db_session, "tech2"), donor_id,
                                  {"lithium": ("yes", "lithium carbonate since 2019")}, "donor told the nurse")
    db_session.commit()
    assert evaluate_donor(db_session, get_donor(db_session, donor_id)).status == "ineligible"
    db_session.rollback()

    # the first page, still showing "no" to lithium, saves a detail on another question
    response = tech.post(f"/donors/{donor_id}/questionnaire",
                         data={**shown, "d_icterus": "none seen at the visit", "reason": "detail added"})
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "changed since you opened this page" in html and "nothing was saved" in html
    assert _answer(db_session, donor_id, "lithium") == "yes"  # the colleague's "yes" stands
    assert evaluate_donor(db_session, get_donor(db_session, donor_id)).status == "ineligible"
    db_session.rollback()
    again = form_of(html, f"/donors/{donor_id}/questionnaire")  # shown again as recorded now
    assert again["q_lithium"] == "yes" and again["d_lithium"] == "lithium carbonate since 2019"

    # the page read again saves
    response = tech.post(f"/donors/{donor_id}/questionnaire",
                         data={**again, "d_icterus": "none seen at the visit", "reason": "detail added"})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert _answer(db_session, donor_id, "lithium") == "yes"


def test_a_correction_page_opened_before_a_colleagues_correction_does_not_put_the_old_result_back(
        app, users, client_as, db_session):  # noqa: F811
    add_user(app, "tech2", ["technician"])
    donor_id = screened_donor(db_session, "adipose_at_don")
    row = db_session.scalar(select(ScreeningResult).where(ScreeningResult.donor_id == donor_id,
                                                          ScreeningResult.marker == "anti_hcv"))
    result_id, sample, reference = row.id, row.sample_date, row.lab_reference
    db_session.commit()
    tech = client_as("technician")
    shown = form_of(tech.get(f"/donors/results/{result_id}/correct").get_data(as_text=True))
    assert shown["result"] == "negative"

    # meanwhile a colleague corrects the result to what the report says: positive
    services.correct_result(db_session, user(db_session, "tech2"), result_id, reason="report says reactive",
                            marker="anti_hcv", result="positive", sample_date=sample, lab_reference=reference)
    db_session.commit()

    # the first page, still showing "negative", corrects the report reference
    response = tech.post(f"/donors/results/{result_id}/correct",
                         data={**shown, "lab_reference": "LAB-NEW-REF", "reason": "reference mistyped"})
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "changed since you opened this page" in html
    assert db_session.scalar(select(ScreeningResult.result).where(ScreeningResult.id == result_id)) == "positive"
    assert evaluate_donor(db_session, get_donor(db_session, donor_id)).status == "ineligible"
    db_session.rollback()
    again = form_of(html)
    assert again["result"] == "positive" and again["lab_reference"] == reference

    response = tech.post(f"/donors/results/{result_id}/correct",
                         data={**again, "lab_reference": "LAB-NEW-REF", "reason": "reference mistyped"})
    assert response.status_code == 302, response.get_data(as_text=True)
    stored = db_session.execute(select(ScreeningResult.result, ScreeningResult.lab_reference)
                                .where(ScreeningResult.id == result_id)).one()
    assert tuple(stored) == ("positive", "LAB-NEW-REF")
    db_session.rollback()


def test_an_edit_page_opened_before_a_colleagues_correction_does_not_put_the_old_details_back(
        app, users, client_as, db_session):  # noqa: F811
    add_user(app, "tech2", ["technician"])
    donor_id = screened_donor(db_session, "adipose_at_don")
    db_session.commit()
    tech = client_as("technician")
    shown = form_of(tech.get(f"/donors/{donor_id}/edit").get_data(as_text=True))
    assert shown["consent_signed"] == "yes" and shown["weight_kg"] == "70.0"

    # meanwhile a colleague records that the donor withdrew the consent
    donor = get_donor(db_session, donor_id)
    details = services.DonorDetails(**{k: getattr(donor, k) for k in services.DonorDetails.__dataclass_fields__})
    services.update_donor(db_session, user(db_session, "tech2"), donor_id,
                          services.DonorDetails(**{**details.__dict__, "consent_signed": False}), "consent withdrawn")
    db_session.commit()

    # the first page, still showing the consent signed, corrects the initials
    response = tech.post(f"/donors/{donor_id}/edit", data={**shown, "initials": "JDX", "reason": "initials"})
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "changed since you opened this page" in html
    donor = db_session.get(Donor, donor_id)
    assert (donor.consent_signed, donor.initials) == (False, "JD")
    assert evaluate_donor(db_session, donor).status == "ineligible"
    db_session.rollback()
    again = form_of(html)
    assert again["consent_signed"] == "no"

    response = tech.post(f"/donors/{donor_id}/edit", data={**again, "initials": "JDX", "reason": "initials"})
    assert response.status_code == 302, response.get_data(as_text=True)
    donor = db_session.get(Donor, donor_id)
    assert (donor.consent_signed, donor.initials) == (False, "JDX")
    db_session.rollback()
