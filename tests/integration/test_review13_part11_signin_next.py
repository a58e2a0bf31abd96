"""Review 13 (Part 11): after signing in, `next` leads to a page of this site only. A tab, a newline or another
control character in it (a link '/login?next=/%09/evil.example') was let through by the check for '/' and '//'
and dropped on the way to the Location header, which became '//evil.example': the browser, with the person just
signed in, was sent to another site (an open redirect, the first step of a phishing page asking for the password
again)."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.conftest import PASSWORD


@pytest.mark.parametrize("target", ["/\t/evil.example", "/\n/evil.example", "/\r/evil.example", "/\t\t/evil.example",
                                    "/\x0b/evil.example", "/\x7f/evil.example", "//evil.example", "https://evil.example",
                                    "/\\evil.example", "/\\/evil.example"])  # a browser reads "\" as "/"
def test_a_next_that_leaves_the_site_goes_home(app, users, target):
    response = app.test_client().post("/login", query_string={"next": target},
                                      data={"username": "qa", "password": PASSWORD})
    assert response.status_code == 302
    location = response.headers["Location"]
    assert not location.startswith("//") and not urlsplit(location).netloc, location
    assert location == "/"


def test_a_next_of_this_site_still_leads_back_to_it(app, users):
    response = app.test_client().post("/login", query_string={"next": "/audit?entity_type=lot&x=a%20b"},
                                      data={"username": "qa", "password": PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/audit?entity_type=lot&x=a%20b"
