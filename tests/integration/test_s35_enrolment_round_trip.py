"""The enrolment form refilled from the saved check shows exactly what was checked, and re-submitting it as it
is gives the same check (review finding: "never" came back as "False" and the No answers as "Not measured yet",
so a second "Check the criteria" was refused while the result column still offered the signature). The
outcome badges are coloured by what the outcome means for the patient (an exclusion "Not met" passes)."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser

from sqlalchemy import select

from mscbatch.patients.models import EnrolmentCheck
from tests.integration.patient_factories import SLE_OK, SSC, SSC_OK, patient, user


class _FormValues(HTMLParser):
    """The values a browser would post for the enrolment form (the first form of the page with a submit
    'Check the criteria'): inputs by value, selects by their selected option (the first when none is)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, str]] = []
        self._form: dict[str, str] | None = None
        self._select: str | None = None
        self._first: str | None = None
        self._chosen = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self._form = {}
        elif self._form is None:
            return
        elif tag == "input" and a.get("name") and a.get("type") not in ("submit", "checkbox", "radio"):
            self._form[a["name"] or ""] = a.get("value") or ""
        elif tag == "select":
            self._select, self._first, self._chosen = a.get("name"), None, False
        elif tag == "option" and self._select:
            if self._first is None:
                self._first = a.get("value") or ""
                self._form[self._select] = self._first
            if "selected" in a and not self._chosen:
                self._form[self._select], self._chosen = a.get("value") or "", True

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "form" and self._form is not None:
            self.forms.append(self._form)
            self._form = None


def _check_form(client, pid: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    parser = _FormValues()
    parser.feed(client.get(f"/patients/{pid}/enrolment").get_data(as_text=True))
    return next(f for f in parser.forms if "on_date" in f)


def _checks(app, pid: int) -> list[EnrolmentCheck]:  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    try:
        rows = list(session.scalars(select(EnrolmentCheck).where(EnrolmentCheck.patient_id == pid)
                                    .order_by(EnrolmentCheck.id)))
        session.expunge_all()
        return rows
    finally:
        session.close()


def _new_patient(app, protocol_id: str | None = None) -> int:  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    try:
        clinician = user(session, "clinician")
        row = patient(session, clinician, enrol=False, **({"protocol_id": protocol_id} if protocol_id else {}))
        return row.id
    finally:
        session.close()


def _round_trip(app, client, pid: int, values: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    first = client.post(f"/patients/{pid}/enrolment", data=values)
    assert first.status_code == 302, first.get_data(as_text=True)
    shown = _check_form(client, pid)
    for name, value in values.items():  # the form shows what was entered (numbers as the core keeps them)
        assert shown[name].lower() == value.lower(), (name, shown[name], value)
    again = client.post(f"/patients/{pid}/enrolment", data=shown)
    assert again.status_code == 302, again.get_data(as_text=True)  # not a refusal
    one, two = _checks(app, pid)[-2:]
    assert (two.status, json.loads(two.values_json), two.results_json) == (
        one.status, json.loads(one.values_json), one.results_json)


def test_an_eligible_check_comes_back_as_checked_never_stays_never_and_no_stays_no(app, users, client_as):  # type: ignore[no-untyped-def]
    pid = _new_patient(app)
    client = client_as("clinician")
    values = dict(SLE_OK, months_since_b_cell_depletion="never")  # both months-since answers "never"
    _round_trip(app, client, pid, values)
    shown = _check_form(client, pid)
    assert shown["months_since_belimumab"] == shown["months_since_b_cell_depletion"] == "never"
    for answer in ("hiv_positive", "htlv_positive", "hbsag_positive", "hcv_positive", "pregnant"):
        assert shown[answer] == "no", answer
    assert _checks(app, pid)[-1].status == "eligible"


def test_yes_not_measured_and_decimal_answers_come_back_as_checked(app, users, client_as):  # type: ignore[no-untyped-def]
    pid = _new_patient(app)
    client = client_as("clinician")
    values = dict(SLE_OK, pregnant="yes", mean_pap_echo_mmhg="", haemoglobin_g_per_dl="10.5",
                  months_since_belimumab="14")
    _round_trip(app, client, pid, values)
    check = _checks(app, pid)[-1]
    assert check.status == "not_eligible"
    assert json.loads(check.values_json)["mean_pap_echo_mmhg"] is None


def test_the_other_protocol_round_trips_too(app, users, client_as):  # type: ignore[no-untyped-def]
    pid = _new_patient(app, SSC)
    client = client_as("clinician")
    _round_trip(app, client, pid, dict(SSC_OK, chronic_hepatitis_c="yes"))


def _badges(page: str) -> list[tuple[str, str]]:
    rows = page.split('<table class="criteria">')[1].split("</table>")[0]
    return re.findall(r'<span class="status (status-[a-z_]+)"[^>]*>([^<]*)</span>', rows)


def test_outcome_badges_are_coloured_by_what_the_outcome_means(app, users, client_as):  # type: ignore[no-untyped-def]
    pid = _new_patient(app)
    client = client_as("clinician")
    client.post(f"/patients/{pid}/enrolment", data=SLE_OK)
    badges = _badges(client.get(f"/patients/{pid}/enrolment").get_data(as_text=True))
    assert ("status-pass", "Not met") in badges  # an exclusion not met: the patient passes it
    assert ("status-pass", "Met") in badges  # an inclusion met
    assert all(kind == "status-pass" for kind, _ in badges), badges  # eligible: no red badge
    client.post(f"/patients/{pid}/enrolment", data=dict(SLE_OK, pregnant="yes", selena_sledai_points="4"))
    page = client.get(f"/patients/{pid}/enrolment").get_data(as_text=True)
    badges = _badges(page)
    assert badges.count(("status-fail", "Met")) == 1  # pregnancy: an exclusion met fails
    assert ("status-fail", "Not met") in badges  # the SELENA-SLEDAI inclusion not met
    assert sum(kind == "status-fail" for kind, _ in badges) == 2
    client.post(f"/patients/{pid}/enrolment", data=dict(SLE_OK, platelets_g_per_l=""))
    assert ("status-missing", "Missing") in _badges(client.get(f"/patients/{pid}/enrolment").get_data(as_text=True))


def test_the_sign_panel_names_the_check_it_signs_and_a_refused_recheck_offers_no_signature(app, users, client_as):  # type: ignore[no-untyped-def]
    pid = _new_patient(app)
    client = client_as("clinician")
    client.post(f"/patients/{pid}/enrolment", data=SLE_OK)
    check = _checks(app, pid)[-1]
    page = client.get(f"/patients/{pid}/enrolment").get_data(as_text=True)
    assert "Sign the enrolment" in page
    panel = page.split('id="sign-which"')[1].split("</p>")[0]
    assert "the values in the table above" in panel and "not values changed in the form since" in panel
    assert f'name="check_id" type="hidden" value="{check.id}"' in page
    refused = client.post(f"/patients/{pid}/enrolment", data=dict(SLE_OK, platelets_g_per_l="lots"))
    assert refused.status_code == 422
    text = refused.get_data(as_text=True)
    assert "Sign the enrolment" not in text  # the form holds values that were not checked
    assert 'id="not-checked"' in text


def test_after_a_refused_signature_the_sign_form_is_for_the_check_shown(app, users, client_as):  # type: ignore[no-untyped-def]
    from tests.conftest import PASSWORD

    pid = _new_patient(app)
    client = client_as("clinician")
    client.post(f"/patients/{pid}/enrolment", data=SLE_OK)
    client.post(f"/patients/{pid}/enrolment", data=dict(SLE_OK, haemoglobin_g_per_dl="10.5"))
    old, new = _checks(app, pid)[-2:]
    refused = client.post(f"/patients/{pid}/enrol", data={"check_id": str(old.id), "password": PASSWORD})
    assert refused.status_code == 409
    text = refused.get_data(as_text=True)
    assert f'name="check_id" type="hidden" value="{new.id}"' in text  # not the stale id posted
    assert f'name="check_id" type="hidden" value="{old.id}"' not in text
