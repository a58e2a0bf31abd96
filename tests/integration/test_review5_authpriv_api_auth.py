"""Review 5: a 401 of the JSON API for want of a valid token carries the RFC 6750 challenge
(`WWW-Authenticate: Bearer realm="mscbatch"`, with error="invalid_token" when a token was sent and authenticates
nobody). A 401 to a valid token is a refused e-signature (a wrong password typed to sign): no challenge, its own
words, so that a client does not throw its token away for a typo."""
from __future__ import annotations

import pytest

from tests.conftest import PASSWORD, api_token_for
from tests.integration.test_custody_support import check, prescribed_bag

pytestmark = pytest.mark.usefixtures("users")


def test_no_token_is_challenged(app):  # type: ignore[no-untyped-def]
    response = app.test_client().get("/api/v1/me")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="mscbatch"'
    assert "Send a valid API token" in response.get_json()["detail"]


@pytest.mark.parametrize("header", ["Bearer msc_forged0000000000", "bearer nothing-like-a-token"])
def test_an_unknown_token_is_challenged_as_invalid(app, header: str):  # type: ignore[no-untyped-def]
    response = app.test_client().get("/api/v1/me", headers={"Authorization": header})
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="mscbatch", error="invalid_token"')
    assert "This API token is not valid" in response.get_json()["detail"]


def test_another_scheme_is_challenged_without_an_error_code(app):  # type: ignore[no-untyped-def]
    response = app.test_client().get("/api/v1/me", headers={"Authorization": "Basic bnVyc2U6eA=="})
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == 'Bearer realm="mscbatch"'


def test_a_wrong_signature_password_with_a_valid_token_is_a_401_without_challenge(app, db_session):  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session)
    check_id = check(db_session, ward).check_id
    db_session.rollback()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}
    response = app.test_client().post(f"/api/v1/custody/checks/{check_id}/confirm", headers=headers,
                                      json={"username": "nurse2", "password": PASSWORD,
                                            "checker_password": "not-my-password"})
    assert response.status_code == 401 and "WWW-Authenticate" not in response.headers
    assert "Signature refused: wrong password" in response.get_json()["detail"]
    assert app.test_client().get("/api/v1/me", headers=headers).status_code == 200  # the token still works


def test_a_web_page_is_never_challenged(app):  # type: ignore[no-untyped-def]
    response = app.test_client().post("/login", data={"username": "nurse", "password": "wrong"})
    assert response.status_code == 401 and "WWW-Authenticate" not in response.headers
