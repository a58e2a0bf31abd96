"""Flask-Login wiring: browser sessions are checked against the server-side session table on every
request; the JSON API accepts only bearer tokens (so a browser cookie can never drive the API, which is
exempt from CSRF)."""
from __future__ import annotations

from datetime import timedelta

from flask import Flask, Request, current_app, g, request, session

from mscbatch.auth import services
from mscbatch.auth.models import User
from mscbatch.auth.passwords import dummy_hash
from mscbatch.database import reading
from mscbatch.extensions import db, login_manager
from mscbatch.monitoring.security_log import SECURITY
from mscbatch.web.logs import LOADED_USERNAME


def policy() -> services.SessionPolicy:
    config = current_app.config
    return services.SessionPolicy(
        idle=timedelta(minutes=config["IDLE_TIMEOUT_MINUTES"]),
        absolute=timedelta(minutes=config["ABSOLUTE_TIMEOUT_MINUTES"]),
        lockout_threshold=config["LOCKOUT_THRESHOLD"], hash_profile=config["PASSWORD_HASH_PROFILE"],
        password_max_age=timedelta(days=config.get("PASSWORD_MAX_AGE_DAYS", services.DEFAULT_PASSWORD_MAX_AGE_DAYS)),
        throttle_limit=config.get("SIGNIN_THROTTLE_LIMIT", services.SIGNIN_THROTTLE_LIMIT),
        throttle_window=timedelta(minutes=config.get("SIGNIN_THROTTLE_MINUTES",
                                                     services.SIGNIN_THROTTLE_WINDOW.total_seconds() // 60)),
        # unset: services.SIGNIN_ADDRESS_THROTTLE_FACTOR times the per-name limit
        address_throttle_limit=config.get("SIGNIN_ADDRESS_THROTTLE_LIMIT"))


def client_address() -> str | None:
    """The client's address for the sign-in throttle and the session's record: the connection's own, or, behind
    TRUSTED_PROXY_HOPS reverse proxies, the one they forwarded (werkzeug's ProxyFix, installed by create_app, reads
    X-Forwarded-For from the right and trusts only the entries the proxies added)."""
    return request.remote_addr[:64] if request.remote_addr else None


#: endpoints a page's script calls by itself while the page stays open (the running infusion's STOP poll, and its
#: watch once the session has ended, custody.infusion_watch; the ward list's refresh of its running infusions): no
#: person did anything, so they do not slide the session's idle window (an unattended ward tablet still idles out)
PASSIVE_ENDPOINTS = frozenset({"custody.infusion_stop", "custody.infusion_watch", "custody.ward_running"})


def _is_api(req: Request) -> bool:
    return req.path.startswith("/api/")


def init_login(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = None  # the server-side session table does this job
    # made now, not at the first unknown name's sign-in (which would otherwise take two hashes' time)
    dummy_hash(app.config["PASSWORD_HASH_PROFILE"])

    @login_manager.user_loader
    def _load_user(user_id: str) -> User | None:
        if _is_api(request):
            return None
        user = services.load_session_user(db.session, session.get("sid"), user_id, policy(),
                                          activity=request.endpoint not in PASSIVE_ENDPOINTS)
        if user is None:
            # the browser was signed in: say why it no longer is (access.signed_out_redirect), not a bare sign-in
            g.session_ended = services.session_end_reason(db.session, session.get("sid")) or "ended"
            session.clear()
        else:
            g.setdefault(LOADED_USERNAME, user.username)
        return user

    @login_manager.request_loader
    def _load_api_user(req: Request) -> User | None:
        if not _is_api(req):
            return None
        header = req.headers.get("Authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            return None
        with reading(db.session):
            user = services.user_for_api_token(db.session, secret.strip())
            if user is None:  # a genuine token of a locked account is told so (access.enforce_access)
                g.api_token_refusal = services.api_token_refusal(db.session, secret.strip())
        if user is None:
            _log_refused_token(secret.strip())
        else:
            g.setdefault(LOADED_USERNAME, user.username)
        return user


def _log_refused_token(secret: str) -> None:
    """A bearer token that authenticates nobody (unknown, revoked, expired, or its user disabled): a WARNING for
    the security log, with the token's public prefix (what the tokens page shows) to tell which one. Not an audit
    event: a request that proves no identity writes nothing, so a flood of forged tokens cannot fill the trail."""
    prefix = "".join(c for c in secret[:10] if c.isascii() and (c.isalnum() or c == "_"))
    SECURITY.warning("bearer_token_refused: token %s... authenticates nobody", prefix,
                     extra={"action": "bearer_token_refused", "token_prefix": prefix})
