"""Session 42b (ward nurses at night): a nurse who pressed Sign out while an infusion they had started still ran was
signed out without a word, and the next shift found an infusion nobody knew was theirs. Sign out now first says
which of their infusions still run, with their page one tap away ("Back to the ward") and "Sign out anyway"
(confirmed=1, CSRF-protected): never a trap. Nothing running, or another role: one click, as before. Through the web
client, on SQLite and PostgreSQL."""
from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.core.identifiers import din_shown
from mscbatch.custody import infusions
from mscbatch.custody.models import Infusion
from mscbatch.lots.models import Bag
from mscbatch.patients.models import Allocation, Patient
from mscbatch.site import local_parts
from tests.conftest import PASSWORD, add_user, login, make_app
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag

REMINDER = "Hand it over to a colleague (tell them) or record its end before you leave."


def _text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _running(app: Any, starter: str = "nurse") -> tuple[int, str, str, str]:
    """An infusion started by `starter`, still running: its id, the bag's DIN as shown, the patient's code and its
    start as the pages say an instant, with its day (an infusion left running since another day: "2026-12-05 21:48
    CET")."""
    with app.extensions["mscbatch.db"].new_session() as session:
        ward = prescribed_bag(session)
        checked_and_confirmed(session, ward)
        started = infusions.start_infusion(session, user(session, starter), ward.bag_id, wristband=ward.wristband,
                                           bag_scan=ward.token, label_key=KEY)
        local, _utc = local_parts(started.started_at)
        return (started.id, din_shown(session.get(Bag, ward.bag_id)), session.get(Patient, ward.patient_id).code,
                local)


def _end(app: Any, infusion_id: int) -> None:
    with app.extensions["mscbatch.db"].new_session() as session:
        infusion = session.get(Infusion, infusion_id)
        volume = session.scalar(select(Allocation.volume_ml).where(Allocation.bag_id == infusion.bag_id))
        infusions.end_infusion(session, user(session, "nurse"), infusion_id, volume_ml=str(volume))


def _signed_in(client: Any) -> bool:
    return client.get("/ward").status_code == 200


def _logouts(app: Any) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "logout"))


@pytest.mark.usefixtures("users")
def test_sign_out_with_an_infusion_you_started_running_asks_first_then_signs_out_anyway(app, client_as):  # type: ignore[no-untyped-def]
    infusion_id, din, code, since = _running(app)
    nurse = client_as("nurse")
    before = _logouts(app)
    answer = nurse.post("/logout")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200, page[:500]
    shown = _text(page)
    assert (f"An infusion you started is still running: bag {din} for patient {code} since {since}") in shown, shown
    assert REMINDER in shown
    assert re.search(rf'<a class="button primary big" id="back-to-infusion" href="/ward/infusions/{infusion_id}">'
                     r"Back to the ward</a>", page)
    form = re.search(r'<form method="post" action="/logout">(.*?)</form>', page, re.S)
    assert form and 'name="confirmed" value="1"' in form.group(1) and 'name="csrf_token"' in form.group(1)
    assert "Sign out anyway</button>" in form.group(1)
    assert _signed_in(nurse) and _logouts(app) == before  # nothing ended yet: the nurse may go back

    anyway = nurse.post("/logout", data={"confirmed": "1"})
    assert anyway.status_code == 302 and anyway.headers["Location"].endswith("/login")
    assert not _signed_in(nurse) and _logouts(app) == before + 1


@pytest.mark.usefixtures("users")
def test_nothing_running_of_yours_signs_out_in_one_click(app, client_as):  # type: ignore[no-untyped-def]
    infusion_id, *_ = _running(app)
    other = client_as("nurse2")  # the infusion is not theirs: no reminder
    assert other.post("/logout").status_code == 302 and not _signed_in(other)
    for role in ("qa", "technician"):  # roles that start no infusion
        client = client_as(role)
        assert client.post("/logout").status_code == 302
    _end(app, infusion_id)  # once ended, its starter signs out in one click too
    nurse = client_as("nurse")
    answer = nurse.post("/logout")
    assert answer.status_code == 302 and not _signed_in(nurse)


@pytest.mark.usefixtures("users")
def test_several_running_are_each_listed_with_their_page(app, client_as):  # type: ignore[no-untyped-def]
    first, din1, _code1, _s1 = _running(app)
    second, din2, _code2, _s2 = _running(app)
    page = client_as("nurse").post("/logout").get_data(as_text=True)
    shown = _text(page)
    assert "2 infusions you started are still running" in shown
    assert din1 in shown and din2 in shown
    assert "Hand them over to a colleague (tell them) or record their end before you leave." in shown
    assert f'href="/ward/infusions/{first}"' in page and f'href="/ward/infusions/{second}"' in page
    assert 'href="/ward#h-running">Back to the ward</a>' in page


def test_sign_out_anyway_needs_the_pages_csrf_token(database_url):  # type: ignore[no-untyped-def]
    app = make_app(database_url, WTF_CSRF_ENABLED=True)
    try:
        for role in ("nurse", "nurse2", "technician", "clinician"):
            add_user(app, role, ["nurse" if role == "nurse2" else role])
        _running(app)
        client = app.test_client()
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                          client.get("/login").get_data(as_text=True)).group(1)
        assert login(client, "nurse", PASSWORD).status_code == 400  # no token: refused, as every form
        client.post("/login", data={"username": "nurse", "password": PASSWORD, "csrf_token": token})
        assert _signed_in(client)
        token = re.search(r'name="csrf_token" value="([^"]+)"',  # the signed-in session's: the layout's Sign out
                          client.get("/ward").get_data(as_text=True)).group(1)
        forged = client.post("/logout", data={"confirmed": "1"})  # another site's form, without the token
        assert forged.status_code == 400 and _signed_in(client)
        page = client.post("/logout", data={"csrf_token": token}).get_data(as_text=True)
        assert REMINDER in _text(page) and _signed_in(client)
        again = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        answer = client.post("/logout", data={"csrf_token": again, "confirmed": "1"})
        assert answer.status_code == 302 and not _signed_in(client)
    finally:
        app.extensions["mscbatch.db"].engine.dispose()
