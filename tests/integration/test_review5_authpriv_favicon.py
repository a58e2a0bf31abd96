"""Review 5: browsers ask for /favicon.ico on every page; it answered 404 (a line of noise in the logs each time)."""
from __future__ import annotations

import pytest


def test_the_favicon_is_no_content_for_anyone_and_cached(app, caplog: pytest.LogCaptureFixture):  # type: ignore[no-untyped-def]
    response = app.test_client().get("/favicon.ico")
    assert response.status_code == 204 and response.data == b""
    assert response.headers["Cache-Control"] == "public, max-age=86400"
    assert app.test_client().head("/favicon.ico").status_code == 204
    assert app.test_client().get("/favicon.icox").status_code == 404  # nothing else answered
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
