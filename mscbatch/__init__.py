"""mscbatch: manufacturing, batch release and traceability for MSC cell-therapy units.

create_app() is a list of named register steps, each small enough to read on its own.
"""
from __future__ import annotations

import sys
from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter

from mscbatch import settings
from mscbatch.paths import templates_dir

#: gunicorn's exit status for "the application failed to load": its master then stops instead of starting new
#: workers that would refuse in turn
APP_LOAD_ERROR = 4


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """The application. Built from the environment alone (`create_app()`, as gunicorn serves it), it starts only on
    a database that `mscbatch init` made and migrated to this version's schema, and never changes the database: a
    wrong setting or such a database is said in one line on stderr and the process exits with status 4 (no
    traceback). With a `test_config` (tests, benchmarks), errors are raised (SettingsError, DatabaseNotReady) and
    the schema is migrated at start unless it says AUTO_MIGRATE False; the `mscbatch` command passes False and
    each of its commands checks the database itself (mscbatch.cli)."""
    from mscbatch.database import DatabaseNotReady

    try:
        app = Flask(__name__, template_folder=str(templates_dir()), static_folder="static",
                    instance_path=str(settings.default_instance_dir().resolve()))
        for step in REGISTER_STEPS:
            step(app, test_config) if step is register_settings else step(app)
    except (settings.SettingsError, DatabaseNotReady) as refused:
        if test_config is not None:
            raise
        print(f"mscbatch cannot start: {refused}", file=sys.stderr, flush=True)
        raise SystemExit(APP_LOAD_ERROR) from None
    return app


def register_settings(app: Flask, test_config: dict[str, Any] | None) -> None:
    app.config.update(settings.from_environment())
    if test_config is not None:
        app.config["AUTO_MIGRATE"] = True  # a program's own app migrates unless it says otherwise (the benchmarks)
        app.config.update(test_config)
    settings.check_production_safety(app.config)
    # the instance folder is made by `mscbatch init` (mscbatch.cli.init_database), not by every start: a command
    # run from another folder (cron) must not leave an instance/ there
    hops = int(app.config.get("TRUSTED_PROXY_HOPS") or 0)
    if hops:  # behind that many reverse proxies, the client's address is the one they add to X-Forwarded-For
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops)  # type: ignore[method-assign]


def register_database(app: Flask) -> None:
    from mscbatch import models  # noqa: F401  (every table on the metadata)
    from mscbatch.audit.trail import install_hooks
    from mscbatch.database import DatabaseNotReady, check_database_url
    from mscbatch.extensions import db

    check_database_url(app.config["DATABASE_URL"])  # SettingsError, before any engine is made
    install_hooks()
    db.init_app(app)
    app.extensions["mscbatch.db"].session_factory.kw["info"] = {"audit_key": app.config["AUDIT_KEY"]}
    migrate = app.config.get("AUTO_MIGRATE")
    if migrate:  # tests and benchmarks: the schema upgraded at start, as `mscbatch init` does
        from mscbatch.cli import init_database

        init_database(app)
    elif migrate is None:  # served from the environment (gunicorn): only a database `mscbatch init` made
        from mscbatch.migrate import readiness_problem

        problem = readiness_problem(app.extensions["mscbatch.db"].engine, app.config["DATABASE_URL"])
        if problem:
            raise DatabaseNotReady(problem)


def register_observability(app: Flask) -> None:
    """Issue 9: logs (text or JSON) with a request id, security events logged as they are committed.
    Before register_security: its before_request hooks (the access check) must run after the request id."""
    from mscbatch.monitoring import security_log
    from mscbatch.web.logs import configure_logging, init_request_logging

    configure_logging(app)
    init_request_logging(app)
    security_log.install(app.extensions["mscbatch.db"].engine)


def register_security(app: Flask) -> None:
    from mscbatch.web.security import init_security

    init_security(app)


def register_auth(app: Flask) -> None:
    from mscbatch.auth.loading import init_login

    init_login(app)


def register_blueprints(app: Flask) -> None:
    app.url_map.converters["int"] = RowIdConverter  # issue 8: before any route is added
    from mscbatch.audit.views import bp as audit_bp
    from mscbatch.auth.views import bp as auth_bp
    from mscbatch.donors.views import bp as donors_bp
    from mscbatch.lots.reagent_views import bp as reagents_bp
    from mscbatch.lots.storage_views import bp as storage_bp
    from mscbatch.lots.views import bp as lots_bp
    from mscbatch.release.views import bp as release_bp
    from mscbatch.web.views import bp as web_bp

    for blueprint in (web_bp, auth_bp, audit_bp, donors_bp, lots_bp, reagents_bp, storage_bp, release_bp):
        app.register_blueprint(blueprint)
    from mscbatch.patients.dose_views import bp as prescriptions_bp  # issue 6
    from mscbatch.patients.views import bp as patients_bp

    app.register_blueprint(patients_bp)
    app.register_blueprint(prescriptions_bp)
    from mscbatch.custody import bedside_views, infusion_views, return_views  # noqa: F401  (their routes on custody_bp)
    from mscbatch.custody.views import bp as custody_bp  # issue 7: ward scanning, bedside check, infusions

    app.register_blueprint(custody_bp)
    from mscbatch.labelling.views import bp as labelling_bp  # issue 7: labels, verification
    from mscbatch.labelling.views import verify_bp
    from mscbatch.recall.views import bp as recall_bp  # issue 7: recall, traceability
    from mscbatch.recall.views import trace_bp

    for blueprint in (labelling_bp, verify_bp, recall_bp, trace_bp):
        app.register_blueprint(blueprint)

    from mscbatch.interop.views import bp as interop_bp  # issue 8: CSV exports, API docs page

    app.register_blueprint(interop_bp)
    from mscbatch.monitoring.views import bp as monitoring_bp  # issue 9: the admin's monitoring page

    app.register_blueprint(monitoring_bp)


def register_api(app: Flask) -> None:
    from mscbatch.api import init_api

    init_api(app)


def register_errors(app: Flask) -> None:
    from mscbatch.errors import register_error_handlers

    register_error_handlers(app)


def register_templates(app: Flask) -> None:
    from mscbatch.web.templating import init_templating

    init_templating(app)


def register_cli(app: Flask) -> None:
    from mscbatch.cli import register_commands

    register_commands(app)


class RowIdConverter(IntegerConverter):
    """<int:...> in routes: row ids, at most 2**31 - 1 (PostgreSQL INTEGER). A larger number is a 404 like any
    unknown id, instead of an overflow in the database driver (a 500, found by the schemathesis run)."""

    def __init__(self, map: Any, fixed_digits: int = 0, min: int | None = None,  # noqa: A002 (werkzeug's names)
                 max: int | None = 2**31 - 1, signed: bool = False) -> None:  # noqa: A002
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


REGISTER_STEPS = [register_settings, register_database, register_observability, register_security, register_auth,
                  register_blueprints, register_api, register_errors, register_templates, register_cli]
