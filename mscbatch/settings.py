"""Settings from the environment (MSCBATCH_*), with SQLite under instance/ the embedded default.

A production run (MSCBATCH_ENV=production) refuses to start with the demo secret key or the demo audit /
label keys: those keys sign sessions, the audit hash chain and the QR tokens on bag labels. Any run refuses to
start with an MSCBATCH_LABEL_BASE_URL that is not an absolute http(s) URL, or not https when MSCBATCH_HTTPS=1:
it is the address printed in the QR code of every bag label.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEMO_SECRET_KEY = "demo-only-secret-key-change-me"
DEMO_AUDIT_KEY = "demo-only-audit-key-change-me"
DEMO_LABEL_KEY = "demo-only-label-key-change-me"


class SettingsError(RuntimeError):
    pass


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"MSCBATCH_{name}", default)


def _int(name: str, default: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"MSCBATCH_{name} must be a whole number, got {raw!r}") from exc


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = _env(name) or default
    for value in allowed:  # case does not matter: json, JSON, Warning...
        if value.lower() == raw.strip().lower():
            return value
    raise SettingsError(f"MSCBATCH_{name} must be one of {', '.join(allowed)}, got {raw!r}")


def label_base_url(raw: str | None, *, https: bool, name: str = "MSCBATCH_LABEL_BASE_URL") -> str | None:
    """The validated address the QR code of a label opens (<it>/v/<token>), without its trailing "/"; None when
    unset. An absolute http(s) URL with a host, no user, query or fragment; https when the site runs on TLS."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    problem = _url_problem(text)
    if problem is None and https and not text.lower().startswith("https://"):
        problem = "MSCBATCH_HTTPS=1 (the site runs behind TLS), so the labels must point to https://"
    if problem:
        raise SettingsError(f"{name} must be the site's address for the labels' QR codes, such as "
                            f"https://mscbatch.example.org, got {raw!r}: {problem}")
    scheme, rest = text.split(":", 1)
    return f"{scheme.lower()}:{rest}".rstrip("/")


def _url_problem(text: str) -> str | None:
    if any(c.isspace() for c in text):
        return "it holds a space"
    try:
        parts = urlsplit(text)
        _ = parts.port  # a non-numeric or out-of-range port raises ValueError
    except ValueError as exc:
        return f"it is not a valid URL ({exc})"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "it is not an absolute http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "it holds a user name or password"
    if parts.query or parts.fragment or "?" in text or "#" in text:
        return "it holds a query (?) or a fragment (#)"
    return None


def label_fallback_allowed(config: dict[str, Any]) -> bool:
    """Whether the QR code may point to the print request's own address when MSCBATCH_LABEL_BASE_URL is unset:
    only on a plain-HTTP, non-production run (the `make run` demo on 127.0.0.1). Behind TLS or in production the
    Host header of a request decides nothing that is printed."""
    return not config.get("HTTPS") and config.get("ENV_NAME") != "production"


def default_instance_dir() -> Path:
    return Path(_env("INSTANCE_DIR") or Path.cwd() / "instance")


def from_environment() -> dict[str, Any]:
    instance = default_instance_dir()
    env = _env("ENV", "development")
    https = _env("HTTPS", "0") == "1"
    return {
        "ENV_NAME": env,
        "INSTANCE_DIR": str(instance),
        "DATABASE_URL": _env("DATABASE_URL") or f"sqlite:///{instance / 'mscbatch.sqlite3'}",
        "SECRET_KEY": _env("SECRET_KEY", DEMO_SECRET_KEY),
        "AUDIT_KEY": _env("AUDIT_KEY", DEMO_AUDIT_KEY),
        # append-only file outside the database where `mscbatch audit checkpoint` anchors the chain head
        "AUDIT_CHECKPOINT_FILE": _env("AUDIT_CHECKPOINT_FILE") or str(instance / "audit-checkpoints.jsonl"),
        "LABEL_KEY": _env("LABEL_KEY", DEMO_LABEL_KEY),
        # the address printed in the labels' QR codes (<it>/v/<token>); unset: the request's own address, on a
        # plain-HTTP development run only (label_fallback_allowed)
        "LABEL_BASE_URL": label_base_url(_env("LABEL_BASE_URL"), https=https),
        "IDLE_TIMEOUT_MINUTES": _int("IDLE_TIMEOUT_MINUTES", 15),
        "ABSOLUTE_TIMEOUT_MINUTES": _int("ABSOLUTE_TIMEOUT_MINUTES", 12 * 60),
        "LOCKOUT_THRESHOLD": _int("LOCKOUT_THRESHOLD", 5),
        "HTTPS": https,
        # logs on stderr: "text" for a person at a terminal, "json" (one object per line) for a log collector
        "LOG_FORMAT": _choice("LOG_FORMAT", "text", ("text", "json")),
        "LOG_LEVEL": _choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
        "SESSION_COOKIE_SECURE": https,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_NAME": "mscbatch_session",
        "PREFERRED_URL_SCHEME": "https" if https else "http",
        "PASSWORD_HASH_PROFILE": "standard",
        "WTF_CSRF_TIME_LIMIT": None,  # the CSRF token lives as long as the (server-checked) session
        "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
        # PostgreSQL role the application connects as in production, when migrations run as another role:
        # `mscbatch init` revokes UPDATE / DELETE / TRUNCATE on append-only tables from it.
        "APP_DB_ROLE": _env("APP_DB_ROLE"),
        # flask-smorest / OpenAPI
        "API_TITLE": "mscbatch API",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
    }


def check_production_safety(config: dict[str, Any]) -> None:
    """Refuse to serve patients' data with keys that are printed in the README, or to print labels whose QR
    code points to a malformed or (behind TLS) plain-HTTP address."""
    label_base_url(config.get("LABEL_BASE_URL"), https=bool(config.get("HTTPS")))
    if config.get("ENV_NAME") != "production":
        return
    demo = {"SECRET_KEY": DEMO_SECRET_KEY, "AUDIT_KEY": DEMO_AUDIT_KEY, "LABEL_KEY": DEMO_LABEL_KEY}
    for key, demo_value in demo.items():
        value = config.get(key)
        if not value or value == demo_value or len(str(value)) < 32:
            raise SettingsError(
                f"MSCBATCH_{key} is the demo value or too short: a production run needs a secret of "
                "at least 32 characters (e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')."
            )
