"""One seeded site per database for the fuzz sweeps: the demo data (donors, lots, release, patients, a
prescription) plus a custody walk-through (one bag infused, one thawed and ready for a bedside check), a client
signed in per role with its CSRF token (CSRF is ON: a hostile body reaches the form's validation, as a
browser's would), an API token per role, and the row counts of every table to prove a refusal wrote nothing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import create_engine, inspect, select, text

from mscbatch.core.label_token import make_token
from tests.conftest import api_token_for

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


@dataclass
class Site:
    app: Any
    kind: str  # sqlite or postgresql
    ward: Ward
    victim_id: int
    tokens: dict[str, str] = field(default_factory=dict)
    _engine: Any = None
    _tables: list[str] = field(default_factory=list)

    def client(self, role: str) -> tuple[Any, str]:
        """A test client signed in as the role's demo user, and its CSRF token."""
        client = self.app.test_client()
        token = csrf_of(client.get("/login"))
        response = client.post("/login", data={"username": ROLE_USERS[role], "password": DEMO_PASSWORD,
                                               "csrf_token": token})
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return client, csrf_of(client.get("/account"))

    def counts(self) -> dict[str, int]:
        """Row count of every table, in one statement."""
        if self._engine is None:
            self._engine = create_engine(self.app.config["DATABASE_URL"])
            self._tables = sorted(t for t in inspect(self._engine).get_table_names() if t != "alembic_version")
        query = "SELECT " + ", ".join(f'(SELECT count(*) FROM "{t}")' for t in self._tables)
        with self._engine.connect() as connection:
            row = connection.execute(text(query)).one()
        return dict(zip(self._tables, row, strict=True))

    def audit_since(self, seq: int) -> list[tuple[str, str, str | None]]:
        """(action, entity type, field) of the audit events after `seq`."""
        with self._engine.connect() as connection:
            return [tuple(r) for r in connection.execute(text(
                "SELECT action, entity_type, field FROM audit_event WHERE seq > :seq ORDER BY seq"), {"seq": seq})]

    def last_seq(self) -> int:
        with self._engine.connect() as connection:
            return connection.execute(text("SELECT coalesce(max(seq), 0) FROM audit_event")).scalar_one()

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        self.app.extensions["mscbatch.db"].engine.dispose()


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
        finally:
            session.close()
    victim = add_user(app, VICTIM, ["technician"])
    site = Site(app=app, kind=kind, ward=ward, victim_id=victim.id)
    for role, username in ROLE_USERS.items():
        site.tokens[role] = api_token_for(app, username)
    site.counts()
    return site


def _walk_through(session: Any, key: str) -> Ward:
    """The demo prescription's first bag infused (an infusion to end and react to), the second thawed and
    ready at the bedside, the third still at the unit (a genuine label of another bag)."""
    from mscbatch.auth.models import User
    from mscbatch.custody import services
    from mscbatch.lots.models import Bag
    from mscbatch.patients.models import Patient

    def user(name: str) -> User:
        return session.scalar(select(User).where(User.username == name))

    tech, nurse = user("tech"), user("nurse")
    bags = list(session.scalars(select(Bag).where(Bag.status == "allocated").order_by(Bag.id)))
    assert len(bags) >= 3, "the demo prescription allocates three bags"
    wristband = session.scalar(select(Patient.wristband_id).where(Patient.code == "SLE-UC-001"))
    tokens = [make_token(b.din + b.check_character, key) for b in bags]
    for bag, token in zip(bags[:2], tokens, strict=False):
        services.dispatch(session, tech, bag.id, courier="Courier", shipper="DS-1", temperature_logger_id="TL-1")
        services.receive(session, nurse, bag.id, location="Ward 3", scan=token)
        services.thaw(session, nurse, bag.id, location="Ward 3", scan=token)
    check = services.bedside_check(session, nurse, wristband=wristband, bag_scan=tokens[0], label_key=key)
    assert check.matches, check.failures
    services.confirm_second_person(session, nurse, check.check_id, username="nurse2", password=DEMO_PASSWORD,
                                   checker_password=DEMO_PASSWORD, label_key=key)
    infusion = services.start_infusion(session, nurse, bags[0].id, wristband=wristband, label_key=key)
    ready = bags[1]
    return Ward(wristband=wristband, ready_token=tokens[1], ready_din=ready.din + ready.check_character,
                other_token=tokens[2], infusion_id=infusion.id, check_id=check.check_id)
