"""`mscbatch create-user` and `mscbatch seed-demo` (review 2, r6): an account made from the command line says
why and who (the OS user), and its owner chooses their own password; seed-demo never adds the published demo
password beside real accounts, but `make run` (init, then seed-demo, every time) keeps working."""
from __future__ import annotations

from sqlalchemy import select

from mscbatch import create_app
from mscbatch.audit.models import AuditEvent
from mscbatch.auth.models import User
from tests.conftest import TEST_CONFIG, add_user


def _run(app, *args):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=list(args))


def _create_qa(app, *extra):  # type: ignore[no-untyped-def]
    return _run(app, "create-user", "--username", "qb", "--full-name", "Q Bogus", "--role", "qa",
                "--password", "a-long-password-1", *extra)


def test_create_user_needs_a_reason_and_records_it_with_the_os_user(app):
    refused = _create_qa(app)
    assert refused.exit_code != 0 and "--reason" in refused.output
    blank = _create_qa(app, "--reason", "   ")
    assert blank.exit_code != 0 and "--reason" in blank.output
    done = _create_qa(app, "--reason", "first QA of the new site")
    assert done.exit_code == 0, done.output
    with app.app_context(), app.extensions["mscbatch.db"].new_session() as session:
        user = session.scalar(select(User).where(User.username == "qb"))
        assert user is not None and user.must_change_password  # whoever typed the password is not its owner
        reasons = set(session.scalars(select(AuditEvent.reason).where(
            AuditEvent.entity_type.in_(["user_account", "user_role"]))))
        assert len(reasons) == 1
        reason, = reasons
        assert reason.startswith("first QA of the new site (mscbatch create-user, OS user ") and reason.endswith(")")
        assert reason.removesuffix(")").rsplit("OS user ", 1)[1].strip()


def test_seed_demo_refuses_a_database_with_real_accounts_and_adds_nothing(app):
    add_user(app, "realqa", ["qa"], full_name="Rita Real")
    refused = _run(app, "seed-demo")
    assert refused.exit_code == 2, refused.output
    assert "Refused" in refused.output and "realqa" in refused.output and "mscbatch-demo" in refused.output
    with app.app_context(), app.extensions["mscbatch.db"].new_session() as session:
        assert set(session.scalars(select(User.username))) == {"realqa"}


def test_an_account_named_like_a_demo_one_is_still_real(app):
    add_user(app, "admin", ["admin"], full_name="Real Site Administrator")
    refused = _run(app, "seed-demo")
    assert refused.exit_code == 2 and "admin" in refused.output


def test_seed_demo_twice_on_the_demo_database_still_works(app):
    assert _run(app, "seed-demo").exit_code == 0
    again = _run(app, "seed-demo")
    assert again.exit_code == 0, again.output


def test_make_run_twice_on_the_same_sqlite_file(tmp_path):
    """`make run` runs `mscbatch init` then `mscbatch seed-demo` every time, on the same file."""
    for _ in range(2):
        app = create_app({**TEST_CONFIG, "DATABASE_URL": f"sqlite:///{tmp_path}/instance.sqlite3"})
        try:
            assert _run(app, "init").exit_code == 0
            seeded = _run(app, "seed-demo")
            assert seeded.exit_code == 0, seeded.output
        finally:
            app.extensions["mscbatch.db"].engine.dispose()


def test_an_account_the_demo_admin_made_on_the_users_page_keeps_the_demo_reseedable(app):
    """A newcomer trying the Users page in the demo: that account is the demo's own, `make run` still works."""
    from tests.conftest import login

    assert _run(app, "seed-demo").exit_code == 0
    client = app.test_client()
    assert login(client, "admin", "mscbatch-demo").status_code == 302
    made = client.post("/admin/users", data={"username": "newbie", "full_name": "Nell Newbie",
                                              "password": "long-enough-password", "roles": ["technician"],
                                              "reason": "new technician"})
    assert made.status_code == 302, made.data
    again = _run(app, "seed-demo")
    assert again.exit_code == 0, again.output
