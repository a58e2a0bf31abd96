"""Settings from the environment (MSCBATCH_*), with SQLite under instance/ the embedded default.

A production run (MSCBATCH_ENV=production) refuses to start with the demo secret key or the demo audit /
label keys: those keys sign sessions, the audit hash chain and the QR tokens on bag labels. Any run refuses to
start with an MSCBATCH_LABEL_BASE_URL that is not an absolute http(s) URL, or not https when MSCBATCH_HTTPS=1:
it is the address printed in the QR code of every bag label.

A value that is not one the application knows is refused at start, naming the variable and what it accepts: a
misspelt MSCBATCH_ENV (`prod`) would otherwise run a production site with the demo keys and `seed-demo` allowed,
an MSCBATCH_HTTPS=true would leave the cookies without Secure, a lockout threshold of 0 would lock an account at its
first wrong password.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEMO_SECRET_KEY = "demo-only-secret-key-change-me"
DEMO_AUDIT_KEY = "demo-only-audit-key-change-me"
DEMO_LABEL_KEY = "demo-only-label-key-change-me"


#: wrong passwords in a row before a lockout: at least 3 (a typo or two must not lock a nurse out at the bedside),
#: at most 10 (NIST SP 800-63B allows up to 100; an account unlocked by an administrator needs no more)
LOCKOUT_RANGE = (3, 10)


class SettingsError(RuntimeError):
    pass


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"MSCBATCH_{name}", default)


def _int(name: str, default: int, low: int | None = None, high: int | None = None, unit: str = "") -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"MSCBATCH_{name} must be a whole number, got {raw!r}") from exc
    if (low is not None and value < low) or (high is not None and value > high):
        raise SettingsError(f"MSCBATCH_{name} must be from {low} to {high}{unit}, got {raw!r}")
    return value


ENVIRONMENTS = ("development", "production")


def _environment() -> str:
    """development or production, exactly: any other value (prod, staging, an empty value) is refused rather than
    run as development, which starts with the demo keys and allows seed-demo."""
    raw = _env("ENV")
    if raw is None:
        return "development"
    if raw.strip().lower() in ENVIRONMENTS:
        return raw.strip().lower()
    raise SettingsError(f"MSCBATCH_ENV must be development or production, got {raw!r} (unset means development)")


def _switch(name: str, default: str) -> bool:
    """A 0/1 setting: 1 on, 0 off; anything else (true, yes, on, an empty value) is refused, not read as off."""
    raw = _env(name, default) or ""
    if raw.strip() in ("0", "1"):
        return raw.strip() == "1"
    raise SettingsError(f"MSCBATCH_{name} must be 1 (on) or 0 (off), got {raw!r}")


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
    env = _environment()
    https = _switch("HTTPS", "0")
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
        "IDLE_TIMEOUT_MINUTES": _int("IDLE_TIMEOUT_MINUTES", 15, 1, 24 * 60, " minutes"),
        "ABSOLUTE_TIMEOUT_MINUTES": _int("ABSOLUTE_TIMEOUT_MINUTES", 12 * 60, 1, 7 * 24 * 60, " minutes"),
        # wrong passwords in a row before the account locks: 1 would lock at the first typo, 0 or less at none
        "LOCKOUT_THRESHOLD": _int("LOCKOUT_THRESHOLD", 5, LOCKOUT_RANGE[0], LOCKOUT_RANGE[1], " wrong passwords"),
        # days a password may be used: an older one must be changed at the next sign-in (21 CFR 11.300(b))
        "PASSWORD_MAX_AGE_DAYS": _int("PASSWORD_MAX_AGE_DAYS", 180, 1, 3650, " days"),
        # reverse proxies in front of the application that add the client's address to X-Forwarded-For (the
        # README's production runs behind one: 1); 0 (no proxy): the connection's own address. The sign-in
        # throttle counts failures per client address (and per user name from it): behind a proxy left at 0,
        # every client is the proxy
        "TRUSTED_PROXY_HOPS": _int("TRUSTED_PROXY_HOPS", 0, 0, 5, " proxies"),
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
    if config.get("ENV_NAME", "development") not in ENVIRONMENTS:  # a caller's configuration, not the environment
        raise SettingsError(f"ENV_NAME must be development or production, got {config.get('ENV_NAME')!r}")
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
