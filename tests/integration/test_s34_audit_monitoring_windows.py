"""The monitoring counters' windows are rolling, back from the moment of the count, never calendar days (neither
UTC's nor the site's): the API document says so, since "last 7 days" alone reads as 7 calendar days."""
from __future__ import annotations


def test_the_counters_document_says_their_windows_are_rolling_not_calendar_days(app):  # type: ignore[no-untyped-def]
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    windows = spec["components"]["schemas"]["Windows"]  # each kind's three counts
    said = {name: field.get("description", "") for name, field in windows["properties"].items()}
    assert said["last_24_hours"] == "in the 24 hours before generated_at"
    assert said["last_7_days"] == "in the 7 x 24 hours before generated_at (not calendar days)"
