"""The API docs page in a real browser: the vendored Swagger UI renders the OpenAPI document under the
application's CSP (scripts and styles from 'self' only), with no CSP violation."""
from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser


def test_swagger_ui_renders_the_api_under_the_csp(page: Any, live_server: Any) -> None:
    from playwright.sync_api import expect

    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/api/v1/docs")
    page.wait_for_url(f"{live_server.url}/docs/api")
    expect(page.locator("#swagger-ui .opblock").first).to_be_visible()
    expect(page.get_by_text("/api/v1/fhir/BiologicallyDerivedProduct/{bag_id}")).to_be_visible()
    expect(page.get_by_role("button", name="Authorize")).to_be_visible()
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
