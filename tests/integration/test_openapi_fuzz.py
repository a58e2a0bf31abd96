"""schemathesis against /api/v1/openapi.json, in process (WSGI), with a token of a user holding every role so
that every operation is reachable: no 5xx, every response of a documented status with a documented content
type and matching its schema.

SQLite only (one throw-away database for the module, seeded with the demo donors and lots so that small ids
hit real rows); the behaviour it checks does not depend on the database, and PostgreSQL runs every other
API test. Bounded for CI: FUZZ_EXAMPLES examples per operation (MSCBATCH_FUZZ_EXAMPLES to change it).
"""
from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import PASSWORD, ROLES, add_user, api_token_for, make_app

FUZZ_EXAMPLES = int(os.environ.get("MSCBATCH_FUZZ_EXAMPLES", "15"))
# positive: valid requests (must succeed or be refused with a documented status); negative: invalid ones (must
# be refused with a documented 4xx, never a 5xx)
MODES = [schemathesis.GenerationMode(m) for m in os.environ.get("MSCBATCH_FUZZ_MODES", "positive,negative").split(",")]
# Failures in operations this issue may not edit (their owners are building them now), reported to them; they
# are shown as warnings instead of failing the run. Remove an entry once fixed.
KNOWN_FAILURES: dict[str, str] = {}  # operation label -> why it still fails (empty: none known)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_app(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from mscbatch.demo import seed_users
    from mscbatch.donors import demo as donor_demo
    from mscbatch.donors.demo import seed_donors
    from mscbatch.lots.demo import seed_lots

    path = tmp_path_factory.mktemp("fuzz") / "fuzz.sqlite3"
    shutil.copyfile(sqlite_template, path)
    app = make_app(f"sqlite:///{path}")
    for role in ROLES:  # the demo's QA decisions are signed by the conftest users
        add_user(app, role, [role])
    add_user(app, "qa2", ["qa"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(donor_demo, "DEMO_PASSWORD", PASSWORD)
        session = app.extensions["mscbatch.db"].new_session()
        try:
            seed_users(session, hash_profile="fast")
            seed_donors(session)
            seed_lots(session)
        finally:
            session.close()
    # every role between two accounts: the administrator's is held alone (auth.services)
    add_user(app, "fuzzer", [role for role in ROLES if role != "admin"])
    add_user(app, "fuzzadmin", ["admin"])
    yield app
    app.extensions["mscbatch.db"].engine.dispose()


@pytest.fixture(scope="module")
def fuzz_token(fuzz_app: Any) -> dict[bool, str]:
    """{admin only: token}: an operation only the administrator may call is fuzzed with the administrator's token,
    every other with the token holding all the other roles."""
    return {False: api_token_for(fuzz_app, "fuzzer"), True: api_token_for(fuzz_app, "fuzzadmin")}


def _admin_only(fuzz_app: Any, operation: Any) -> bool:
    """The operation's view admits the administrator role only (its access rule, auth.access)."""
    from mscbatch.auth.access import access_rule

    path = operation.path.replace("{", "<").replace("}", ">")
    for rule in fuzz_app.url_map.iter_rules():
        if rule.rule.replace("<int:", "<") == path and operation.method.upper() in rule.methods:
            access = access_rule(fuzz_app, rule.endpoint, operation.method.upper())
            return access is not None and access.roles == frozenset({"admin"})
    return False


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_app: Any) -> Any:
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzz_app)


def _fuzz(operation: Any, mode: Any, token: str) -> None:
    @given(case=operation.as_strategy(mode))
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)

    run()


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_api_conforms_to_its_openapi_document(fuzz_app: Any, fuzz_schema: Any, fuzz_token: dict[bool, str],
                                              mode: Any) -> None:
    """Every operation in turn (schemathesis' own pytest plugin does not load under pytest 9); the failures
    of all operations are reported together, each with the smallest example Hypothesis found."""
    failures, known = [], []
    operations = [result.ok() for result in fuzz_schema.get_all_operations()]
    assert len(operations) > 30
    assert any(_admin_only(fuzz_app, operation) for operation in operations)  # the counters: admin's token
    for operation in operations:
        try:
            _fuzz(operation, mode, fuzz_token[_admin_only(fuzz_app, operation)])
        except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001 - collected, reported below
            (known if operation.label in KNOWN_FAILURES else failures).append(f"{operation.label}: {error}")
    for failure in known:
        warnings.warn(f"known, not fixed yet: {failure[:400]}", stacklevel=1)
    assert not failures, "\n\n".join(failures)
