"""Session 45: the sign-in throttle counts failures per (client address, user name typed), so one person's mistakes
on a shared ward tablet no longer lock every colleague out of it; the device itself is refused only at a clearly
higher count (password spraying). The bedside second person's password is verified only once the check itself may
be confirmed: wrong passwords at a STOP, confirmed, old or someone else's check lock nobody."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.auth import services
from mscbatch.auth.models import SigninFailure, User
from mscbatch.custody import bedside
from mscbatch.errors import Conflict, PermissionDenied
from tests.conftest import PASSWORD, add_user, login, make_app
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, check, checked_and_confirmed, prescribed_bag

NAME_LIMIT = services.SIGNIN_THROTTLE_LIMIT
DEVICE_LIMIT = services.SIGNIN_THROTTLE_LIMIT * services.SIGNIN_ADDRESS_THROTTLE_FACTOR
TABLET = "10.0.3.21"


@pytest.fixture
def throttled(database_url, app):  # type: ignore[no-untyped-def]
    """The app with the throttle's shipped values (whatever the suite's own), on the database of `app`."""
    made = make_app(database_url, SIGNIN_THROTTLE_LIMIT=services.SIGNIN_THROTTLE_LIMIT, SIGNIN_THROTTLE_MINUTES=15)
    yield made
    made.extensions["mscbatch.db"].engine.dispose()


def _tablet(app, address: str = TABLET):  # type: ignore[no-untyped-def]
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _account(app, username: str) -> User:  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.scalar(select(User).where(User.username == username))


def _text(response) -> str:  # type: ignore[no-untyped-def]
    return response.get_data(as_text=True).replace("&#39;", "'")


def _alert(response) -> str:  # type: ignore[no-untyped-def]
    """The refusal said above the form (role="alert"), not under a field."""
    return _text(response).split('<div class="form-errors" role="alert">', 1)[1].split("</div>", 1)[0]


def test_s45_the_limit_on_the_device_is_clearly_higher_than_per_user_name():
    assert services.SIGNIN_ADDRESS_THROTTLE_FACTOR >= 5 and DEVICE_LIMIT >= 5 * NAME_LIMIT
    policy = services.SessionPolicy(idle=timedelta(minutes=15), absolute=timedelta(hours=12), lockout_threshold=5)
    assert policy.throttle_limit == NAME_LIMIT and policy.device_throttle_limit == DEVICE_LIMIT


def test_s45_one_user_names_failures_refuse_only_that_name_on_that_device(throttled, users):
    tablet = _tablet(throttled)
    for _ in range(NAME_LIMIT):
        assert login(tablet, "nobody", "whatever").status_code == 401
    refused = login(tablet, "nobody", "whatever")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "900"
    text = _text(refused)
    assert ("Too many failed sign-ins with this user name on this device: this user name cannot sign in here for the "
            "next 15 minutes. Other people can still sign in on this device.") in text
    assert "no one can sign in" not in text
    assert "Too many failed sign-ins" in _alert(refused)
    # the same name typed otherwise (case, spaces) is the same name
    assert login(tablet, "  NoBody ", "whatever").status_code == 429
    # colleagues on the same tablet sign in as usual, during a running infusion too
    assert login(_tablet(throttled), "nurse").status_code == 302
    assert login(_tablet(throttled), "nurse2").status_code == 302
    # and the name is checked as usual from another device
    assert login(_tablet(throttled, "10.0.3.22"), "nobody", "whatever").status_code == 401


def test_s45_a_real_and_an_unknown_name_get_the_same_refusal(throttled, users):
    for name in ("nobody", "qa2"):
        for _ in range(NAME_LIMIT):
            login(_tablet(throttled), name, "whatever")
    unknown, real = login(_tablet(throttled), "nobody", "x"), login(_tablet(throttled), "qa2", PASSWORD)
    assert unknown.status_code == real.status_code == 429
    assert _alert(unknown) == _alert(real) and "Too many failed sign-ins with this user name" in _alert(real)


def test_s45_a_nurse_who_locked_herself_out_on_the_tablet_locks_no_colleague(throttled, users, app):
    tablet = _tablet(throttled)
    for n in range(NAME_LIMIT):  # 5 wrong passwords lock her account; the next 5 are refused at the locked account
        assert login(tablet, "nurse2", f"wrong-{n}").status_code == 401
    assert _account(app, "nurse2").locked_out_at is not None
    assert login(tablet, "nurse2").status_code == 429  # her right password too: refused unchecked
    assert login(_tablet(throttled), "nurse").status_code == 302
    assert login(_tablet(throttled), "clinician").status_code == 302
    # the words say an administrator can help, and it is true: unlocking the account ends the wait at once
    assert "an administrator can reset the password or unlock the account, which also ends this wait" in _text(
        login(tablet, "nurse2"))
    nurse2 = _account(app, "nurse2").id
    with throttled.app_context():
        with throttled.extensions["mscbatch.db"].new_session() as session:
            services.unlock(session, user(session, "admin"), nurse2, "locked herself out, seen")
    assert login(_tablet(throttled), "nurse2").status_code == 302


def test_s45_an_administrators_password_reset_ends_the_wait_too(throttled, users, app):
    for n in range(NAME_LIMIT):
        login(_tablet(throttled), "nurse2", f"wrong-{n}")
    assert login(_tablet(throttled), "nurse2").status_code == 429
    temporary, nurse2 = "walnut basalt heron trolley", _account(app, "nurse2").id
    with throttled.app_context():
        with throttled.extensions["mscbatch.db"].new_session() as session:
            services.reset_password(session, user(session, "admin"), nurse2, temporary,
                                    "forgot her password, identity checked on ward 3", hash_profile="fast")
    assert login(_tablet(throttled), "nurse2", temporary).status_code == 302
    # another name's wait is not lifted by it
    for _ in range(NAME_LIMIT):
        login(_tablet(throttled), "nobody", "x")
    assert login(_tablet(throttled), "nobody", "x").status_code == 429


def test_s45_password_spraying_still_locks_the_device(throttled, users, app):
    tablet = _tablet(throttled)
    for n in range(DEVICE_LIMIT - 1):  # one guess at each of many names: each under the per-name limit
        assert login(tablet, f"nobody{n}", "Winter2026!").status_code == 401
    assert login(tablet, "nurse").status_code == 302  # not yet
    assert login(tablet, "nobodyelse", "Winter2026!").status_code == 401
    refused = login(tablet, "nurse")  # even the right password
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "900"
    text = _text(refused)
    assert ("Too many failed sign-ins from this device, under several user names: no one can sign in on this device "
            "for the next 15 minutes. Sign in on another device meanwhile.") in text
    assert "cannot lift this wait" in text and "unlock" not in _alert(refused)  # no promise an admin cannot keep
    assert login(_tablet(throttled, "10.0.3.22"), "nurse").status_code == 302


def test_s45_the_device_limit_is_a_setting(database_url, app, users):
    strict = make_app(database_url, SIGNIN_THROTTLE_LIMIT=10, SIGNIN_ADDRESS_THROTTLE_LIMIT=3)
    try:
        for n in range(3):
            login(_tablet(strict), f"nobody{n}", "x")
        assert login(_tablet(strict), "nurse").status_code == 429
    finally:
        strict.extensions["mscbatch.db"].engine.dispose()


def test_s45_the_name_typed_is_never_kept_whole(throttled, users, app):
    typed = "correct-horse-battery-typo"  # a password typed into the user-name field
    login(_tablet(throttled), typed, "x")
    with app.extensions["mscbatch.db"].new_session() as session:
        keys = list(session.scalars(select(SigninFailure.address)))
    assert len(keys) == 2 and TABLET in keys
    assert all(typed not in key and "horse" not in key for key in keys)


def test_s45_every_worker_counts_one_names_failures(throttled, database_url, users):
    other = make_app(database_url, SIGNIN_THROTTLE_LIMIT=10, SIGNIN_THROTTLE_MINUTES=15)
    try:
        for _ in range(NAME_LIMIT // 2):
            login(_tablet(throttled), "nobody", "x")
            login(_tablet(other), "nobody", "x")
        assert login(_tablet(other), "nobody", "x").status_code == 429
        assert login(_tablet(throttled), "nobody", "x").status_code == 429
        assert login(_tablet(other), "nurse").status_code == 302
    finally:
        other.extensions["mscbatch.db"].engine.dispose()


# ---- the bedside second person: refusals that need no password come first --------------------------------------

def _refusals(session) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(func.count()).select_from(AuditEvent)
                          .where(AuditEvent.action == "second_person_refused")) or 0


def _nobody_counted(session, *names: str) -> None:  # type: ignore[no-untyped-def]
    session.expire_all()
    for name in names:
        account = user(session, name)
        assert account.failed_logins == 0 and account.locked_out_at is None, name
    assert _refusals(session) == 0


def test_s45_wrong_passwords_at_a_stop_check_lock_nobody(app, users, db_session):
    ward, other = prescribed_bag(db_session), prescribed_bag(db_session)
    stop = check(db_session, ward, wristband=other.wristband)
    assert not stop.matches
    nurse = user(db_session, "nurse")
    for n in range(6):
        with pytest.raises(Conflict, match="This check said STOP: it cannot be confirmed"):
            bedside.confirm_second_person(db_session, nurse, stop.check_id, username="nurse2", password=f"bad-{n}",
                                          checker_password=PASSWORD, label_key=KEY)
    _nobody_counted(db_session, "nurse2")
    # nurse2 can still confirm a real check with her password
    checked_and_confirmed(db_session, ward)


def test_s45_wrong_passwords_at_a_confirmed_check_lock_nobody(app, users, db_session):
    ward = prescribed_bag(db_session)
    add_user(app, "nurse3", ["nurse"])
    confirmed = checked_and_confirmed(db_session, ward)
    nurse = user(db_session, "nurse")
    before = _refusals(db_session)
    for name in ("nurse2", "nurse3", "clinician"):
        for n in range(5):
            with pytest.raises(Conflict, match="already confirmed"):
                bedside.confirm_second_person(db_session, nurse, confirmed, username=name, password=f"bad-{n}",
                                              checker_password=PASSWORD, label_key=KEY)
    assert _refusals(db_session) == before == 0
    _nobody_counted(db_session, "nurse2", "nurse3", "clinician")


def test_s45_wrong_passwords_at_an_old_or_someone_elses_check_lock_nobody(app, users, db_session):
    ward = prescribed_bag(db_session)
    result = check(db_session, ward)
    nurse, clinician = user(db_session, "nurse"), user(db_session, "clinician")
    for n in range(5):
        with pytest.raises(Conflict, match="too old"):
            bedside.confirm_second_person(db_session, nurse, result.check_id, username="nurse2", password=f"b{n}",
                                          checker_password=PASSWORD, label_key=KEY, valid_for=timedelta(0))
        with pytest.raises(PermissionDenied, match="Only the person who did the check"):
            bedside.confirm_second_person(db_session, clinician, result.check_id, username="nurse2",
                                          password=f"b{n}", checker_password=PASSWORD, label_key=KEY)
    _nobody_counted(db_session, "nurse2")


def test_s45_the_checker_typing_their_own_name_is_refused_before_any_password(app, users, db_session):
    ward = prescribed_bag(db_session)
    result = check(db_session, ward)
    nurse = user(db_session, "nurse")
    for typed in ("nurse", " NURSE "):
        for n in range(3):
            with pytest.raises(Conflict, match="Second person's user name: that is you") as refused:
                bedside.confirm_second_person(db_session, nurse, result.check_id, username=typed,
                                              password=f"bad-{n}", checker_password=PASSWORD, label_key=KEY)
            assert refused.value.field == "second_username"
    db_session.expire_all()
    account = user(db_session, "nurse")
    assert account.failed_logins == 0 and account.locked_out_at is None  # no lockout of oneself either
    assert _refusals(db_session) == 6  # each refusal audited, as before
    assert db_session.get(bedside.TwoPersonCheck, result.check_id).second_checker_id is None
    # a real second person still confirms it, and a wrong password of theirs still counts
    with pytest.raises(Exception, match="Second person: wrong user name or password"):
        bedside.confirm_second_person(db_session, nurse, result.check_id, username="nurse2", password="bad",
                                      checker_password=PASSWORD, label_key=KEY)
    db_session.expire_all()
    assert user(db_session, "nurse2").failed_logins == 1
    bedside.confirm_second_person(db_session, nurse, result.check_id, username="nurse2", password=PASSWORD,
                                  checker_password=PASSWORD, label_key=KEY)
