"""Review 5: environment settings that the application does not know are refused at start, naming the variable and
what it accepts, instead of being read as the safe-looking default: MSCBATCH_ENV=prod ran with the demo keys and
allowed seed-demo, MSCBATCH_HTTPS=true left the cookies without Secure, MSCBATCH_LOCKOUT_THRESHOLD=0 locked an
account at its first wrong password."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from mscbatch.cli import main
from mscbatch.settings import DEMO_SECRET_KEY, SettingsError, check_production_safety, from_environment

NAMES = ("ENV", "HTTPS", "LOCKOUT_THRESHOLD", "IDLE_TIMEOUT_MINUTES", "ABSOLUTE_TIMEOUT_MINUTES", "LABEL_BASE_URL",
         "SECRET_KEY", "AUDIT_KEY", "LABEL_KEY")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for name in NAMES:
        monkeypatch.delenv(f"MSCBATCH_{name}", raising=False)
    monkeypatch.setenv("MSCBATCH_INSTANCE_DIR", str(tmp_path))


@pytest.mark.parametrize("raw", ["prod", "Prod", "staging", "", "production-eu", "dev"])
def test_an_unknown_environment_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("MSCBATCH_ENV", raw)
    with pytest.raises(SettingsError, match="MSCBATCH_ENV must be development or production"):
        from_environment()


@pytest.mark.parametrize("raw", ["Production", " production", "PRODUCTION\n"])
def test_production_however_typed_is_production_and_refuses_the_demo_keys(monkeypatch: pytest.MonkeyPatch,
                                                                         raw: str) -> None:
    monkeypatch.setenv("MSCBATCH_ENV", raw)
    config = from_environment()
    assert config["ENV_NAME"] == "production" and config["SECRET_KEY"] == DEMO_SECRET_KEY
    with pytest.raises(SettingsError, match="MSCBATCH_SECRET_KEY is the demo value"):
        check_production_safety(config)


def test_seed_demo_is_not_run_on_a_misspelt_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSCBATCH_ENV", "prod")
    result = CliRunner().invoke(main, ["seed-demo"])
    assert result.exit_code != 0
    assert "MSCBATCH_ENV must be development or production" in str(result.exception) + result.output


@pytest.mark.parametrize(("raw", "on"), [("1", True), ("0", False), (" 1 ", True)])
def test_https_is_0_or_1(monkeypatch: pytest.MonkeyPatch, raw: str, on: bool) -> None:
    monkeypatch.setenv("MSCBATCH_HTTPS", raw)
    config = from_environment()
    assert config["HTTPS"] is on and config["SESSION_COOKIE_SECURE"] is on


@pytest.mark.parametrize("raw", ["true", "yes", "on", "TRUE", "", "2", "off"])
def test_https_otherwise_is_refused_not_read_as_off(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("MSCBATCH_HTTPS", raw)
    with pytest.raises(SettingsError, match=r"MSCBATCH_HTTPS must be 1 \(on\) or 0 \(off\)"):
        from_environment()


@pytest.mark.parametrize("raw", ["0", "-1", "1", "2", "11", "1000000"])
def test_a_lockout_threshold_outside_3_to_10_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("MSCBATCH_LOCKOUT_THRESHOLD", raw)
    with pytest.raises(SettingsError, match="MSCBATCH_LOCKOUT_THRESHOLD must be from 3 to 10 wrong passwords"):
        from_environment()


@pytest.mark.parametrize("raw", ["3", "5", "10"])
def test_a_lockout_threshold_from_3_to_10_is_read(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("MSCBATCH_LOCKOUT_THRESHOLD", raw)
    assert from_environment()["LOCKOUT_THRESHOLD"] == int(raw)


@pytest.mark.parametrize(("name", "raw"), [("IDLE_TIMEOUT_MINUTES", "0"), ("IDLE_TIMEOUT_MINUTES", "-5"),
                                           ("ABSOLUTE_TIMEOUT_MINUTES", "0")])
def test_a_session_timeout_of_no_minutes_is_refused(monkeypatch: pytest.MonkeyPatch, name: str, raw: str) -> None:
    monkeypatch.setenv(f"MSCBATCH_{name}", raw)
    with pytest.raises(SettingsError, match=f"MSCBATCH_{name} must be from 1 to"):
        from_environment()


def test_a_configuration_naming_another_environment_is_refused() -> None:
    with pytest.raises(SettingsError, match="ENV_NAME must be development or production"):
        check_production_safety({**from_environment(), "ENV_NAME": "prod"})
