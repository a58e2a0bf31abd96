"""A refused form leaves its POST-only address in the browser's address bar (/ward/check,
/ward/checks/3/confirm): opening it again (a reload, a restored tab) showed a bare "405 Method Not Allowed" to a
nurse. It now leads to the page the form lives on, saying why (tablet walkthrough, session 33)."""
from __future__ import annotations

from tests.integration.test_custody_support import ward_bag


def test_a_post_only_ward_address_opened_again_leads_to_the_ward_page(app, users, client_as):
    nurse = client_as("nurse")
    reopened = nurse.get("/ward/check")
    assert reopened.status_code == 303 and reopened.headers["Location"].endswith("/ward"), reopened.status_code
    page = nurse.get("/ward").get_data(as_text=True)
    assert "That address only receives a form" in page


def test_the_confirm_address_of_a_check_leads_to_the_check(app, users, client_as):
    ward = ward_bag(app)
    nurse = client_as("nurse")
    checked = nurse.post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token})
    check_page = checked.headers["Location"]
    reopened = nurse.get(check_page + "/confirm")
    assert reopened.status_code == 303 and reopened.headers["Location"].endswith(check_page), reopened.headers
    assert "Scan" in nurse.get(check_page).get_data(as_text=True)


def test_the_api_keeps_its_405_problem(app, users, client_as):
    answer = client_as("nurse").get("/api/v1/custody/scan-verify")
    assert answer.status_code == 405 and answer.mimetype == "application/problem+json"
