"""MSCBATCH_LABEL_BASE_URL: the address printed in the QR code of every bag label (review 11). Read from the
environment, validated at start-up (an absolute http(s) URL; https when MSCBATCH_HTTPS=1), with an error that
names the variable. The print page's use of it is tested in tests/integration/test_label_print_guards.py."""
from __future__ import annotations

import pytest

from mscbatch.settings import SettingsError, check_production_safety, from_environment, label_fallback_allowed


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LABEL_BASE_URL", "HTTPS", "ENV"):
        monkeypatch.delenv(f"MSCBATCH_{name}", raising=False)


def test_unset_it_is_none_and_the_request_fallback_is_for_plain_http_development_only() -> None:
    config = from_environment()
    assert config["LABEL_BASE_URL"] is None
    assert label_fallback_allowed(config)
    assert not label_fallback_allowed({**config, "HTTPS": True})
    assert not label_fallback_allowed({**config, "ENV_NAME": "production"})


@pytest.mark.parametrize(("raw", "expected"), [
    ("https://mscbatch.example.org", "https://mscbatch.example.org"),
    ("https://mscbatch.example.org/", "https://mscbatch.example.org"),
    ("  https://mscbatch.example.org/cell-unit/ ", "https://mscbatch.example.org/cell-unit"),
    ("HTTPS://mscbatch.example.org", "https://mscbatch.example.org"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
])
def test_a_valid_address_is_read_and_normalised(monkeypatch: pytest.MonkeyPatch, raw: str, expected: str) -> None:
    monkeypatch.setenv("MSCBATCH_LABEL_BASE_URL", raw)
    assert from_environment()["LABEL_BASE_URL"] == expected


@pytest.mark.parametrize(("raw", "problem"), [
    ("mscbatch.example.org", "absolute http:// or https://"),
    ("/cell-unit", "absolute http:// or https://"),
    ("ftp://mscbatch.example.org", "absolute http:// or https://"),
    ("https://", "absolute http:// or https://"),
    ("https://mscbatch.example.org/v?x=1", "query"),
    ("https://mscbatch.example.org/#top", "fragment"),
    ("https://ward nurse.example.org", "space"),
    ("https://user:secret@mscbatch.example.org", "user name or password"),
    ("https://mscbatch.example.org:99999", "not a valid URL"),
])
def test_a_malformed_address_stops_the_start_naming_the_variable(monkeypatch: pytest.MonkeyPatch, raw: str,
                                                                   problem: str) -> None:
    monkeypatch.setenv("MSCBATCH_LABEL_BASE_URL", raw)
    with pytest.raises(SettingsError, match="MSCBATCH_LABEL_BASE_URL") as caught:
        from_environment()
    assert problem in str(caught.value)


def test_behind_tls_the_address_must_be_https(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSCBATCH_HTTPS", "1")
    monkeypatch.setenv("MSCBATCH_LABEL_BASE_URL", "http://mscbatch.example.org")
    with pytest.raises(SettingsError, match="MSCBATCH_LABEL_BASE_URL.*MSCBATCH_HTTPS=1.*https://"):
        from_environment()
    monkeypatch.setenv("MSCBATCH_LABEL_BASE_URL", "https://mscbatch.example.org")
    assert from_environment()["LABEL_BASE_URL"] == "https://mscbatch.example.org"


def test_the_start_up_check_also_judges_a_configuration_given_in_code() -> None:
    """create_app runs check_production_safety on the merged configuration (environment + overrides)."""
    check_production_safety({"HTTPS": True, "LABEL_BASE_URL": "https://mscbatch.example.org"})
    check_production_safety({"HTTPS": False, "LABEL_BASE_URL": "http://127.0.0.1:5000"})
    check_production_safety({"HTTPS": True, "LABEL_BASE_URL": None})  # unset: printing refuses, not the start
    with pytest.raises(SettingsError, match="MSCBATCH_LABEL_BASE_URL"):
        check_production_safety({"HTTPS": True, "LABEL_BASE_URL": "http://mscbatch.example.org"})
    with pytest.raises(SettingsError, match="MSCBATCH_LABEL_BASE_URL"):
        check_production_safety({"LABEL_BASE_URL": "mscbatch.example.org"})
