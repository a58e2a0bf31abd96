"""The `mscbatch` command: init, create-user, seed-demo, audit verify / checkpoint, backup, restore (and run)."""
from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, NoAppException, ScriptInfo, with_appcontext

from mscbatch.errors import DomainError


def _db():  # type: ignore[no-untyped-def]
    from mscbatch.extensions import db

    return db


def _checkpoint_file() -> Path:
    from mscbatch.audit.checkpoints import configured_file

    return configured_file(current_app.config)


def _initialised(command):  # type: ignore[no-untyped-def]
    """Under @with_appcontext: the command runs only on a database `mscbatch init` made at this version's schema.
    A missing database (a typo in MSCBATCH_DATABASE_URL, a SQLite file that is not there), one never initialised
    or at an older schema is refused, naming it, before anything is read or created."""
    import functools

    @functools.wraps(command)
    def checked(*args, **kwargs):  # type: ignore[no-untyped-def]
        require_initialised(current_app)
        return command(*args, **kwargs)

    return checked


def require_initialised(app: Flask) -> None:
    from mscbatch.migrate import readiness_problem

    problem = readiness_problem(app.extensions["mscbatch.db"].engine, app.config["DATABASE_URL"])
    if problem:
        raise click.ClickException(problem)


def _init_or_refuse(app: Flask) -> None:
    from mscbatch.database import DatabaseNotReady

    try:
        init_database(app)
    except DatabaseNotReady as refused:
        raise click.ClickException(str(refused)) from None


def os_user() -> str:
    """Who runs the command, as the operating system knows them: the operator of a command-line change."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (a bare container)
        return f"uid {os.getuid()}"


def init_database(app: Flask) -> None:
    """Upgrade the schema to the newest migration and start the audit chain: the one step that creates or
    changes a database (`mscbatch init`, `seed-scale`, an app built with AUTO_MIGRATE). DatabaseNotReady, naming
    what to set, when the database cannot be reached, its SQLite folder does not exist (a typo is not created),
    or MSCBATCH_APP_DB_ROLE names no role."""
    from sqlalchemy.exc import DBAPIError

    from mscbatch.audit.verify import ensure_chain_head
    from mscbatch.database import DatabaseNotReady, connection_problem, masked_url, sqlite_file
    from mscbatch.migrate import upgrade_engine

    db = app.extensions["mscbatch.db"]
    url = app.config["DATABASE_URL"]
    path = sqlite_file(url)
    if path is not None and not path.parent.is_dir():
        instance = Path(app.config["INSTANCE_DIR"])
        if path.parent.absolute() != instance.absolute():
            raise DatabaseNotReady(f"Cannot create the database {masked_url(url)}: the folder "
                                   f"{path.parent.absolute()} does not exist. Create it, or check "
                                   "MSCBATCH_DATABASE_URL.")
        instance.mkdir(parents=True, exist_ok=True)  # the default database, in the instance folder
    try:
        db.engine.connect().close()  # a wrong host, port, user or database: said in one line, not a traceback
    except DBAPIError as error:
        raise DatabaseNotReady(connection_problem(url, error)) from error
    upgrade_engine(db.engine)
    with db.new_session() as session:
        ensure_chain_head(session)
    role = app.config.get("APP_DB_ROLE")
    if role and db.engine.dialect.name == "postgresql":
        from mscbatch.audit.ddl import restrict_application_role

        try:
            with db.engine.begin() as connection:
                exists = connection.exec_driver_sql("SELECT 1 FROM pg_roles WHERE rolname = %(role)s",
                                                    {"role": role}).first()
                if exists is None and role.isidentifier() and role == role.lower():  # else: not a plain name
                    raise DatabaseNotReady(
                        f"MSCBATCH_APP_DB_ROLE names the role {role!r}, which does not exist in {masked_url(url)}. "
                        f"Create it first (CREATE ROLE {role} LOGIN ...), or unset MSCBATCH_APP_DB_ROLE. The schema "
                        "is migrated; run `mscbatch init` again to grant the role.")
                restrict_application_role(connection, role)
        except ValueError as error:  # not a plain role name
            raise DatabaseNotReady(str(error)) from error


def register_commands(app: Flask) -> None:
    @app.cli.command("init")
    @with_appcontext
    def init_command() -> None:
        """Create or upgrade the database to the newest schema (the only command that creates or migrates one)."""
        from mscbatch.database import masked_url

        _init_or_refuse(current_app)
        click.echo(f"Database ready: {masked_url(current_app.config['DATABASE_URL'])}")

    @app.cli.command("create-user")
    @click.option("--username", required=True)
    @click.option("--full-name", required=True, help="Printed on signatures.")
    @click.option("--role", "roles", multiple=True, required=True,
                  type=click.Choice(["technician", "qa", "clinician", "nurse", "admin"]))
    @click.option("--reason", required=True, help="Why the account is made here and not by an administrator on "
                  "the Users page (written to the audit trail with your OS user name).")
    @click.password_option()
    @with_appcontext
    @_initialised
    def create_user_command(username: str, full_name: str, roles: tuple[str, ...], reason: str,
                            password: str) -> None:
        """Create a user (the first admin, typically). Its owner must choose their own password at first sign-in:
        whoever ran the command typed this one (also for the first admin: a password typed into a shell may stay
        in its history or a script)."""
        from mscbatch.auth.services import create_user

        if not reason.strip():
            raise click.BadParameter("say why the account is made from the command line", param_hint="--reason")
        session = _db().session
        try:
            user = create_user(session, None, username=username, full_name=full_name, password=password,
                               roles=list(roles), hash_profile=current_app.config["PASSWORD_HASH_PROFILE"],
                               must_change_password=True,
                               reason=f"{reason.strip()} (mscbatch create-user, OS user {os_user()})")
        except DomainError as error:
            raise click.ClickException(error.message) from error
        click.echo(f"Created {user.username} ({', '.join(sorted(user.role_names))}); they choose their own "
                   "password at first sign-in.")

    @app.cli.command("seed-demo")
    @with_appcontext
    @_initialised
    def seed_demo_command() -> None:
        """Load demo users and records (idempotent). Refused in production."""
        from mscbatch.demo import demo_summary, holds_the_demo, not_the_demos, seed_demo

        if current_app.config["ENV_NAME"] == "production":
            raise click.ClickException("seed-demo is refused in production")
        foreign = not_the_demos(_db().session)
        if foreign and not holds_the_demo(_db().session):
            click.echo(f"Refused: this database already holds {foreign}. seed-demo would add accounts whose "
                       "password (mscbatch-demo) is published; run it only on a new database or the demo's own.",
                       err=True)
            sys.exit(2)
        if foreign:
            # The demo's database with something added by hand (`mscbatch create-user`): nothing to refuse, as
            # the demo accounts are there already, but no demo record is added beside records it did not make,
            # and `make run` goes on serving it.
            click.echo(f"This database holds the demo and also {foreign}: seed-demo added nothing (it adds demo "
                       "records only to a new database or the demo's own).")
            for line in demo_summary(_db().session):
                click.echo(line)
            return
        for line in seed_demo(_db().session, current_app.config["PASSWORD_HASH_PROFILE"]):
            click.echo(line)

    @app.cli.command("seed-scale")
    @click.option("--bags", type=click.IntRange(min=4), required=True, help="How many bags (lots of 4-20).")
    @click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same data (on one day).")
    @click.option("--quiet", is_flag=True, help="No progress bar.")
    @with_appcontext
    def seed_scale_command(bags: int, seed: int, quiet: bool) -> None:
        """Fill a new database with scale data (benchmarks). Refused on a database that holds lots, donors or patients."""
        from mscbatch.scale import ScaleRefused, seed_scale

        if current_app.config["ENV_NAME"] == "production":
            raise click.ClickException("seed-scale is refused in production")
        _init_or_refuse(current_app)  # the same migration step as `mscbatch init` (README: it migrates)
        try:
            report = seed_scale(current_app, bags, seed=seed, progress=not quiet)
        except ScaleRefused as refused:
            click.echo(f"Refused: {refused}", err=True)
            sys.exit(2)
        for line in report.lines():
            click.echo(line)

    audit = click.Group("audit", help="The audit trail.")
    app.cli.add_command(audit)

    @audit.command("verify")
    @with_appcontext
    @_initialised
    def audit_verify_command() -> None:
        """Check the whole hash chain; name the first bad event. Check every electronic signature's seal (its
        name, date-time, meaning and record as signed); name the altered ones. With a checkpoint file
        (`audit checkpoint`), also check that the chain still holds every checkpointed event."""
        from mscbatch.audit.checkpoints import read_lines
        from mscbatch.audit.verify import verify_checkpoints, verify_database, verify_signatures

        key = current_app.config["AUDIT_KEY"]
        verdict = verify_database(_db().session, key)
        if not verdict.ok:
            click.echo(f"AUDIT TRAIL BROKEN at event {verdict.first_bad_seq}: {verdict.problem} "
                       f"({verdict.events_checked} events verified before it).", err=True)
            sys.exit(1)
        signed = verify_signatures(_db().session, key)
        if not signed.ok:
            click.echo(f"SIGNATURES BROKEN: {signed.problem()}. {signed.signatures_checked} signatures checked; the "
                       f"audit chain itself is intact ({verdict.events_checked} events). This is a data integrity "
                       "incident: tell QA.", err=True)
        path = _checkpoint_file()
        lines = read_lines(path)
        if lines is None:
            if not signed.ok:
                sys.exit(1)
            click.echo(f"Audit trail intact: {verdict.events_checked} events verified (no checkpoint file); "
                       f"{signed.signatures_checked} signatures verified.")
            _echo_last_restore()
            return
        held = verify_checkpoints(_db().session, key, lines, verdict.events_checked)
        if not held.ok:
            click.echo(f"AUDIT TRAIL BROKEN: {held.problem} (checkpoint file {path}).", err=True)
            sys.exit(1)
        if not signed.ok:
            sys.exit(1)
        click.echo(f"Audit trail intact: {verdict.events_checked} events verified; "
                   f"{held.checkpoints_checked} checkpoints of {path} hold; {signed.signatures_checked} signatures "
                   "verified.")
        _echo_last_restore()

    @audit.command("checkpoint")
    @with_appcontext
    @_initialised
    def audit_checkpoint_command() -> None:
        """Append the chain head (seq, hash), the UTC time and their HMAC to the checkpoint file, outside the
        database (MSCBATCH_AUDIT_CHECKPOINT_FILE). Run it from cron; `audit verify` then catches a trail
        rolled back behind any checkpoint."""
        from mscbatch.audit.checkpoints import append_line, checkpoint_line, utc_stamp
        from mscbatch.audit.verify import CheckpointRefused, checkpoint_head

        key = current_app.config["AUDIT_KEY"]
        try:
            seq, last_hash = checkpoint_head(_db().session, key)
        except CheckpointRefused as refused:
            click.echo(f"Checkpoint refused: {refused}. Run `mscbatch audit verify`.", err=True)
            sys.exit(1)
        at = utc_stamp()
        path = _checkpoint_file()
        default = Path(current_app.config["INSTANCE_DIR"]) / path.name
        if not path.parent.is_dir() and path.absolute() != default.absolute():
            # MSCBATCH_AUDIT_CHECKPOINT_FILE's folder is the off-host mount: missing, the anchors would land on
            # this host's disk, beside the database they are meant to check
            click.echo(f"Checkpoint refused: the folder {path.parent.absolute()} of MSCBATCH_AUDIT_CHECKPOINT_FILE "
                       "does not exist (is its volume mounted?). Mount or create it, or set "
                       "MSCBATCH_AUDIT_CHECKPOINT_FILE; nothing was written.", err=True)
            sys.exit(1)
        append_line(path, checkpoint_line(key.encode() if isinstance(key, str) else key, seq, last_hash, at))
        click.echo(f"Checkpoint {at}: event {seq} appended to {path}.")

    @audit.command("reconcile")
    @with_appcontext
    @_initialised
    def audit_reconcile_command() -> None:
        """Compare every audited table's live rows with their audit trail (replayed insert, update and delete
        events): name each value, row or deletion that differs. Exit status 1 on any difference."""
        from mscbatch.audit.reconcile import reconcile_database

        outcome = reconcile_database(_db().session)
        if outcome.ok:
            click.echo(outcome.lines()[0])
            return
        for line in outcome.lines():
            click.echo(line, err=True)
        sys.exit(1)

    @app.cli.command("backup")
    @click.option("--output", type=click.Path(path_type=Path), required=True)
    @with_appcontext
    @_initialised
    def backup_command(output: Path) -> None:
        """Take a consistent online backup (SQLite backup API / pg_dump)."""
        from mscbatch.backup import BackupError, backup

        try:
            backup(current_app.config["DATABASE_URL"], output)
        except BackupError as error:
            raise click.ClickException(str(error)) from error
        click.echo(f"Backup written to {output}")

    @app.cli.command("restore")
    @click.argument("backup_file", type=click.Path(path_type=Path))
    @click.option("--database-url", required=True, help="Where to restore (a new SQLite file or empty database).")
    @click.option("--force", is_flag=True, help="Overwrite an existing database.")
    @click.option("--accept-lost-events", "accept_lost_events", metavar="REASON",
                  help="Restore although the audit events after the backup are lost (they are named); the reason "
                       "is recorded in the restored trail.")
    def restore_command(backup_file: Path, database_url: str, force: bool, accept_lost_events: str | None) -> None:
        """Restore a backup into a database, then run `mscbatch audit verify` against it (with this instance's
        AUDIT_KEY). Exit status 1 when the restored audit trail does not verify, naming the first bad event; the
        restored database is then left in place for inspection. Refused, nothing changed, when the target's trail
        or (for this instance's own database) its checkpoint file holds events after the backup, or when the
        target's trail cannot be read (a damaged database: the events it held cannot be counted), unless
        --accept-lost-events gives the reason: the restore is then an audit event and the checkpoint file is
        rewritten to the restored trail (the old one is kept beside it)."""
        from sqlalchemy.engine import make_url

        from mscbatch.backup import BackupError, restore, same_database

        live = same_database(database_url, current_app.config["DATABASE_URL"])
        if live:  # this process's own connections to the database being replaced
            current_app.extensions["mscbatch.db"].engine.dispose()
        try:
            done = restore(backup_file, database_url, audit_key=current_app.config["AUDIT_KEY"], force=force,
                           checkpoint_file=_checkpoint_file() if live else None,
                           accept_lost_events=accept_lost_events, operator=os_user())
        except BackupError as error:
            raise click.ClickException(str(error)) from error
        where = make_url(database_url).render_as_string(hide_password=True)
        click.echo(f"Restored {backup_file} into {where}; audit trail intact: {done.verdict.events_checked} events "
                   "verified" + ("; its records match the trail." if done.records_compared else "."))
        if not done.records_compared:
            click.echo("The backup comes from an older version of mscbatch: its records were not compared with the "
                       "trail. Run `mscbatch init` on the restored database (it upgrades the schema), then "
                       "`mscbatch audit reconcile`, before putting it into use.")
        if done.unreadable_trail is not None:
            click.echo(f"The audit trail of the database replaced could not be read ({done.unreadable_trail}): "
                       "whether events were lost is unknown; restored as accepted.")
        if done.lost:
            click.echo(f"Lost, as accepted: audit events {done.lost.start} to {done.lost.stop - 1} "
                       f"({len(done.lost)} events).")
        if done.event_seq is not None:
            click.echo(f"Recorded as audit event {done.event_seq} (database restored).")
        if done.archived_checkpoints is not None:
            click.echo(f"Checkpoint file rewritten to the restored trail; the old one is kept at "
                       f"{done.archived_checkpoints}.")

    evidence = click.Group("evidence", help="Inspectors' evidence bundles.")
    app.cli.add_command(evidence)

    @evidence.command("verify")
    @click.argument("zip_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @with_appcontext
    def evidence_verify_command(zip_file: Path) -> None:
        """Check an evidence ZIP offline (no database): the manifest HMAC under AUDIT_KEY (environment
        MSCBATCH_AUDIT_KEY), then every file's SHA-256. Exit status 1 names the first bad file."""
        from mscbatch.settings import DEMO_AUDIT_KEY

        key = current_app.config["AUDIT_KEY"] or ""
        if key == DEMO_AUDIT_KEY and os.environ.get(AUDIT_KEY_VARIABLE) != DEMO_AUDIT_KEY:
            key = ""  # the demo default, not a key anyone gave
        _verify_evidence(zip_file, key)


AUDIT_KEY_VARIABLE = "MSCBATCH_AUDIT_KEY"


def _verify_evidence(zip_file: Path, key: str | bytes) -> None:
    """`evidence verify`: refused without a key given (never the demo default, silently); says when the key is
    the published demo one. Reads the ZIP only: no database is opened or created."""
    from mscbatch.core.evidence import verify
    from mscbatch.settings import DEMO_AUDIT_KEY

    if not key or not str(key).strip():
        click.echo(f"Refused: no audit key given. Set {AUDIT_KEY_VARIABLE} to the site's audit key (the key the "
                   "bundle's manifest HMAC was made with); nothing was checked. evidence verify needs no database.",
                   err=True)
        sys.exit(2)
    demo = key in (DEMO_AUDIT_KEY, DEMO_AUDIT_KEY.encode())
    verdict = verify(zip_file.read_bytes(), key)
    which = (f" (checked with the published DEMO key, {AUDIT_KEY_VARIABLE}={DEMO_AUDIT_KEY}: only a demo bundle "
             "verifies with it)") if demo else f" (checked with the key in {AUDIT_KEY_VARIABLE})"
    if verdict.valid:
        click.echo(f"{zip_file}: {verdict}{which}")
        return
    click.echo(f"{zip_file}: {verdict}{which}", err=True)
    sys.exit(1)


@click.group("evidence", help="Inspectors' evidence bundles.")
def offline_evidence() -> None:
    """`mscbatch evidence ...` from the command line: found on the `mscbatch` group itself, so that the app (and
    its database, which starting it opens or creates) is never loaded for an offline check."""


@offline_evidence.command("verify")
@click.argument("zip_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def offline_evidence_verify_command(zip_file: Path) -> None:
    """Check an evidence ZIP offline (no database): the manifest HMAC under the key in MSCBATCH_AUDIT_KEY (refused
    when it is not set), then every file's SHA-256. Exit status 1 names the first bad file."""
    _verify_evidence(zip_file, os.environ.get(AUDIT_KEY_VARIABLE, ""))


def _echo_last_restore() -> None:
    """A restore, and the events it gave up, are said on every verify that passes (with or without a checkpoint
    file): the chain is intact, and why it is shorter than it once was is part of the answer."""
    restored = _last_restore(_db().session)
    if restored:
        click.echo(restored)


def _last_restore(session) -> str | None:  # type: ignore[no-untyped-def]
    """Why a trail may be shorter than it once was: the newest "restored" event, in words."""
    import json

    from sqlalchemy import select

    from mscbatch.audit.models import AuditEvent
    from mscbatch.backup import RESTORED_ACTION, RESTORED_ENTITY

    event = session.execute(select(AuditEvent.seq, AuditEvent.occurred_at, AuditEvent.new_value, AuditEvent.reason)
                            .where(AuditEvent.action == RESTORED_ACTION, AuditEvent.entity_type == RESTORED_ENTITY)
                            .order_by(AuditEvent.seq.desc()).limit(1)).first()
    if event is None:
        return None
    details = json.loads(event.new_value or "{}")
    lost = f"events {details['lost_events']} of the trail before it were lost" if details.get("lost_events") \
        else "no event was lost"
    if details.get("unreadable_trail"):
        lost = (f"the trail it replaced could not be read ({details['unreadable_trail']}): whether events were "
                "lost is unknown" + (f"; events {details['lost_events']} at least" if details.get("lost_events")
                                     else ""))
    moved = details.get("checkpoints_moved_to")
    return (f"Restored from a backup (SHA-256 {details.get('backup_sha256')}) at {event.occurred_at:%Y-%m-%d %H:%M} "
            f"UTC, audit event {event.seq}: {lost}; reason: {event.reason}."
            + (f" The checkpoints from before it are kept in {moved}." if moved else ""))


class ConfigurationRefused(NoAppException):
    """A setting the app refuses (SettingsError) or a database URL it cannot use: said as a usage error, one line
    naming what to set, never a traceback."""


def _create_app() -> Flask:
    from mscbatch import create_app
    from mscbatch.database import DatabaseNotReady
    from mscbatch.settings import SettingsError

    try:
        # nothing is created or migrated at start: `init` (and `seed-scale`) migrate, the other commands check
        return create_app({"AUTO_MIGRATE": False})
    except (SettingsError, DatabaseNotReady) as refused:
        raise ConfigurationRefused(str(refused)) from None


class MscbatchGroup(FlaskGroup):
    """Flask's group, but a configuration error is said as such: `mscbatch --help` still lists every command
    (with the error above), and a command says the error and exits 2 instead of "No such command"."""

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        refused = ctx.meta.get("mscbatch.refused")
        if refused is not None and name not in self.commands:  # listing the help: the commands' own words
            return _commands_without_an_app().get_command(ctx, name)
        if name not in self.commands:
            ctx.ensure_object(ScriptInfo).load_app()  # ConfigurationRefused: a usage error, exit 2
        return super().get_command(ctx, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        try:
            ctx.ensure_object(ScriptInfo).load_app()
        except ConfigurationRefused as refused:
            click.secho(f"Error: {refused.format_message()}\n", err=True, fg="red")
            ctx.meta["mscbatch.refused"] = refused
            return sorted(set(self.commands) | set(_commands_without_an_app().commands))
        return super().list_commands(ctx)


def _commands_without_an_app() -> click.Group:
    """The app's commands registered on a bare Flask app, only to list them in the help."""
    bare = Flask("mscbatch")
    register_commands(bare)
    return bare.cli


def _run_initialised(run: click.Command) -> click.Command:
    """Flask's `run`, serving only a database `mscbatch init` made (never creating or migrating one)."""
    import copy
    import functools

    guarded = copy.copy(run)
    assert run.callback is not None

    @functools.wraps(run.callback)
    def callback(*args, **kwargs):  # type: ignore[no-untyped-def]
        app = click.get_current_context().ensure_object(ScriptInfo).load_app()
        with app.app_context():
            require_initialised(app)
        return run.callback(*args, **kwargs)  # type: ignore[misc]

    guarded.callback = callback
    return guarded


main = MscbatchGroup(create_app=_create_app, help="mscbatch: MSC manufacturing, release and traceability.")
main.add_command(_run_initialised(main.commands["run"]))
main.add_command(offline_evidence)  # found before the app's: never loads the app or its database
