"""One seeded site per database for the fuzz sweeps: the demo data (donors, lots, release, patients, a
prescription) plus a custody walk-through (one bag infused, one thawed and ready for a bedside check), a client
signed in per role with its CSRF token (CSRF is ON: a hostile body reaches the form's validation, as a
browser's would), an API token per role, and the content of every table (snapshot) to prove a refusal wrote nothing.
"""
from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import create_engine, inspect, select, text

from mscbatch.core.label_token import make_token
from tests.conftest import api_token_for
from tests.reliability.support import TABLES

DEMO_PASSWORD = "mscbatch-demo"  # mscbatch.demo.DEMO_USERS
# role -> demo user signed in for it (mscbatch.demo.DEMO_USERS)
ROLE_USERS = {"technician": "tech", "qa": "qa", "clinician": "clinician", "nurse": "nurse", "admin": "admin"}
# The admin's user actions (disable, roles...) and the login fuzz aim at this account, never at a signed-in one.
VICTIM = "victim"
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@dataclass
class Ward:
    wristband: str
    ready_token: str  # a thawed bag, prescribed to the wristband's patient: its bedside check MATCHES
    ready_din: str  # that bag's DIN + K
    other_token: str  # another bag of the same prescription, still allocated at the unit
    infusion_id: int
    check_id: int


@dataclass(frozen=True)
class State:
    """The content of every table, as tests/reliability/support.table_digests reads it (every row of every table of
    the metadata, in primary-key order) but serialised by the database in one statement (table_digests costs 15 ms
    on SQLite, as much as the request, and the sweeps send thousands): two equal states = nothing was written. Left
    out or apart, each for a reason (checks.py says what may change with what):
    - auth_session.last_seen_at: the sliding idle window, moved by any signed-in request at most every 30 s
      (auth/services.load_session_user), whatever the request; the rest of the session row is compared (a refused
      request must not end or create a session);
    - api_token.last_used_at: the token's last use, stamped by any API request at most every 5 minutes
      (auth/services.user_for_api_token), whatever the request; the rest of the token row is compared;
    - audit_event: append-only and hash-chained: compared by count and newest seq, each new event checked against
      the refusals that are audited on purpose (checks.py), and the whole chain verified at the end of each module
      (conftest.py), which an UPDATE of an old event would break. audit_head moves with it and only with it;
    - user_account's wrong-password count (failed_logins, locked_out_at) apart from the rest of the row: an audited
      refusal (a wrong password, at sign-in or at a signature) writes it, and nothing else of the account."""

    marker: Any
    tables: dict[str, str]
    events: int
    seq: int


@dataclass
class Site:
    app: Any
    kind: str  # sqlite or postgresql
    ward: Ward
    victim_id: int
    tokens: dict[str, str] = field(default_factory=dict)
    _engine: Any = None
    _tables: list[str] = field(default_factory=list)
    _snapshot_sql: str | None = None
    _marker_connection: Any = None

    def client(self, role: str, username: str | None = None, password: str = DEMO_PASSWORD) -> tuple[Any, str]:
        """A test client signed in as the role's demo user (or `username`), and its CSRF token."""
        client = self.app.test_client()
        token = csrf_of(client.get("/login"))
        response = client.post("/login", data={"username": username or ROLE_USERS[role], "password": password,
                                               "csrf_token": token})
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return client, csrf_of(client.get("/account"))

    @property
    def engine(self) -> Any:
        """An engine of the test's own on the site's database (the app's is the app's)."""
        if self._engine is None:
            self._engine = create_engine(self.app.config["DATABASE_URL"])
            self._tables = sorted(t for t in inspect(self._engine).get_table_names() if t != "alembic_version")
        return self._engine

    def counts(self) -> dict[str, int]:
        """Row count of every table, in one statement."""
        engine = self.engine
        query = "SELECT " + ", ".join(f'(SELECT count(*) FROM "{t}")' for t in self._tables)
        with engine.connect() as connection:
            row = connection.execute(text(query)).one()
        return dict(zip(self._tables, row, strict=True))

    def state(self, previous: State | None = None) -> State:
        """What the database holds now: `previous` itself when the database says nothing was written since it was
        taken (a request that writes nothing costs no snapshot), else a new snapshot."""
        marker = self._write_marker()
        if previous is not None and previous.marker == marker:
            return previous
        if self._snapshot_sql is None:
            self._snapshot_sql = _snapshot_sql(self.engine.dialect.name)
        with self.engine.connect() as connection:
            row = connection.execute(text(self._snapshot_sql)).one()
        *tables, events, seq = row
        return State(marker, dict(zip(SNAPSHOT_KEYS, tables, strict=True)), events, seq)

    def _write_marker(self) -> Any:
        """A value that changes whenever a transaction that wrote (committed or rolled back) ends: PostgreSQL's
        first unfinished transaction id (read-only transactions take none), SQLite's data_version, which a
        connection sees change when another one commits (a rolled-back write left nothing). Another database's
        activity on the same PostgreSQL server moves it too: a snapshot is taken for nothing, never one missed."""
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as connection:
                return connection.execute(text("SELECT pg_snapshot_xmax(pg_current_snapshot())")).scalar_one()
        if self._marker_connection is None:  # one connection: data_version is counted per connection
            path = self.app.config["DATABASE_URL"].removeprefix("sqlite:///")
            self._marker_connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        return self._marker_connection.execute("PRAGMA data_version").fetchone()[0]

    def audit_since(self, seq: int) -> list[tuple[str, str, str | None]]:
        """(action, entity type, field) of the audit events after `seq`."""
        with self.engine.connect() as connection:
            return [tuple(r) for r in connection.execute(text(
                "SELECT action, entity_type, field FROM audit_event WHERE seq > :seq ORDER BY seq"), {"seq": seq})]

    def last_seq(self) -> int:
        with self.engine.connect() as connection:
            return connection.execute(text("SELECT coalesce(max(seq), 0) FROM audit_event")).scalar_one()

    def dispose(self) -> None:
        if self._marker_connection is not None:
            self._marker_connection.close()
        if self._engine is not None:
            self._engine.dispose()
        self.app.extensions["mscbatch.db"].engine.dispose()


# what a State leaves out or keeps apart, and why: see State
IGNORED_COLUMNS = {"auth_session": {"last_seen_at"}, "api_token": {"last_used_at"}}
WRONG_PASSWORD_COUNT = ("failed_logins", "locked_out_at")
USER_COUNT_KEY = "user_account.wrong_password_count"
AUDIT_KEY = "audit_event"


def _row_text(dialect: str, columns: list[str]) -> str:
    quoted = [f'"{c}"' for c in columns]
    if dialect == "postgresql":
        return f"ROW({', '.join(quoted)})::text"
    return " || '|' || ".join(f"quote({c})" for c in quoted)


def _table_text(dialect: str, table: str, columns: list[str], key: list[str]) -> str:
    order = ", ".join(f'"{c}"' for c in key)
    if dialect == "postgresql":
        return (f"(SELECT coalesce(string_agg({_row_text(dialect, columns)}, E'\\n' ORDER BY {order}), '') "
                f'FROM "{table}")')
    return (f"(SELECT coalesce(group_concat(r, char(10)), '') FROM "
            f'(SELECT {_row_text(dialect, columns)} AS r FROM "{table}" ORDER BY {order}))')


def _snapshot_parts() -> list[tuple[str, str, list[str], list[str]]]:
    """(entry name, table, columns, primary key) of every snapshot entry but the audit trail's."""
    parts = []
    for table in TABLES:
        key = [c.name for c in table.primary_key.columns]
        columns = [c.name for c in table.columns if c.name not in IGNORED_COLUMNS.get(table.name, ())]
        if table.name == AUDIT_KEY:
            continue
        if table.name == "user_account":
            parts.append((USER_COUNT_KEY, table.name, key + list(WRONG_PASSWORD_COUNT), key))
            columns = [c for c in columns if c not in WRONG_PASSWORD_COUNT]
        parts.append((table.name, table.name, columns, key))
    return parts


SNAPSHOT_KEYS = [name for name, *_ in _snapshot_parts()]


def _snapshot_sql(dialect: str) -> str:
    entries = [_table_text(dialect, table, columns, key) for _, table, columns, key in _snapshot_parts()]
    entries += [f'(SELECT count(*) FROM "{AUDIT_KEY}")', f'(SELECT coalesce(max(seq), 0) FROM "{AUDIT_KEY}")']
    return "SELECT " + ",\n".join(entries)


def csrf_of(response: Any) -> str:
    match = CSRF_RE.search(response.get_data(as_text=True))
    assert match, "no CSRF token on the page"
    return match.group(1)


def build_site(app: Any, kind: str) -> Site:
    from mscbatch.demo import seed_demo
    from tests.conftest import add_user

    with app.app_context():
        session = app.extensions["mscbatch.db"].new_session()
        try:
            seed_demo(session, hash_profile="fast")
            ward = _walk_through(session, app.config["LABEL_KEY"])
            _lots_at_each_step(session)
        finally:
            session.close()
    victim = add_user(app, VICTIM, ["technician"])
    site = Site(app=app, kind=kind, ward=ward, victim_id=victim.id)
    for role, username in ROLE_USERS.items():
        site.tokens[role] = api_token_for(app, username)
    site.counts()
    return site


def _lots_at_each_step(session: Any) -> None:
    """Beside the demo's (released, in culture, in quarantine): a lot just collected (its isolation to record) and
    a harvested one (its cryopreservation to record), so that an edge value in those forms reaches the checks
    behind the lot's state (a freezing time is compared with the harvest's)."""
    from datetime import datetime, time, timedelta
    from decimal import Decimal

    from mscbatch.auth.models import User
    from mscbatch.donors.models import Donor
    from mscbatch.lots import services, steps
    from mscbatch.site import site_config, site_today

    tech = session.scalar(select(User).where(User.username == "tech"))
    donor = session.scalar(select(Donor).where(Donor.tissue_source == "adipose_tissue", Donor.status == "approved"))
    day = site_today() - timedelta(days=6)
    at = datetime.combine(day, time(9), site_config().tz)
    lots = [services.create_lot(session, tech, services.LotDetails(
        donor_id=donor.id, product_id="AT-MSC", collection_at=at, collection_site="Fuzz theatre",
        tissue_amount=Decimal("20"), tissue_unit="g",
        same_collection_as_existing=True)) for _ in range(2)]  # two lots of one collection, said deliberate
    steps.record_isolation(session, tech, lots[1].id, performed_on=day, notes="")
    steps.record_passage(session, tech, lots[1].id, steps.PassageDetails(
        passage_number=0, performed_on=day + timedelta(days=3), seeded_cells=2 * 10**6, harvested_cells=20 * 10**6,
        viability_percent="95.0", days_in_culture=Decimal(3)))
    steps.record_harvest(session, tech, lots[1].id, harvested_at=at + timedelta(days=4), total_cells=20 * 10**6,
                         viability_percent="95.0")


def _walk_through(session: Any, key: str) -> Ward:
    """The demo prescription's first bag infused and ended (an infusion to react to; while it ran, the next bag of
    the patient was a STOP), the second thawed and ready at the bedside, the third still at the unit (a genuine
    label of another bag)."""
    from mscbatch.auth.models import User
    from mscbatch.custody import bedside, handover, infusions
    from mscbatch.lots.models import Bag
    from mscbatch.patients.models import Allocation, Patient

    def user(name: str) -> User:
        return session.scalar(select(User).where(User.username == name))

    tech, nurse = user("tech"), user("nurse")
    bags = list(session.scalars(select(Bag).where(Bag.status == "allocated").order_by(Bag.id)))
    assert len(bags) >= 3, "the demo prescription allocates three bags"
    wristband = session.scalar(select(Patient.wristband_id).where(Patient.code == "SLE-UC-001"))
    tokens = [make_token(b.din + b.check_character, key) for b in bags]
    for bag, token in zip(bags[:2], tokens, strict=False):
        handover.dispatch(session, tech, bag.id, courier="Courier", shipper="DS-1", temperature_logger_id="TL-1")
        handover.receive(session, nurse, bag.id, location="Ward 3", scan=token)
        handover.thaw(session, nurse, bag.id, location="Ward 3", scan=token)
    check = bedside.bedside_check(session, nurse, wristband=wristband, bag_scan=tokens[0], label_key=key)
    assert check.matches, check.failures
    bedside.confirm_second_person(session, nurse, check.check_id, username="nurse2", password=DEMO_PASSWORD,
                                  checker_password=DEMO_PASSWORD, label_key=key)
    infusion = infusions.start_infusion(session, nurse, bags[0].id, wristband=wristband, bag_scan=tokens[0],
                                        label_key=key)
    # ended as prescribed: while it runs, the patient's next bag is a STOP (s41: one bag at a time)
    volume = session.scalar(select(Allocation.volume_ml).where(Allocation.bag_id == bags[0].id))
    infusions.end_infusion(session, nurse, infusion.id, volume_ml=str(volume), reason="fuzz site: ended at once")
    ready = bags[1]
    return Ward(wristband=wristband, ready_token=tokens[1], ready_din=ready.din + ready.check_character,
                other_token=tokens[2], infusion_id=infusion.id, check_id=check.check_id)
