"""Session 36 (QA auditor / administrator walk): the monitoring page names bags and records as users know them, and
tells a lockout once.

A bedside STOP read "bag X999926000005: ..." (the DIN without the check character the label prints); a refused
signature read "on donor 2" (a database id, not the donor code); the wrong password that locked an account read
"wrong password" while each later attempt read "the account is locked after too many wrong passwords", which looked
like several lockouts."""
from __future__ import annotations

import html

from mscbatch.core.identifiers import din_shown
from mscbatch.donors.models import APPROVED, Donor
from mscbatch.lots.models import Bag
from tests.conftest import PASSWORD, login, screening_seen
from tests.integration.test_custody_support import prescribed_bag
from tests.integration.test_donors import screened_donor


def _monitoring(client_as) -> str:  # type: ignore[no-untyped-def]
    answer = client_as("admin").get("/admin/monitoring")
    assert answer.status_code == 200
    return html.unescape(answer.get_data(as_text=True))


def test_a_bedside_stop_names_the_bag_as_its_label_prints_it(app, users, client_as, db_session):
    ward = prescribed_bag(db_session)
    bag = db_session.get(Bag, ward.bag_id)
    shown, bare = din_shown(bag), bag.din
    db_session.close()
    stop = client_as("nurse").post("/ward/check", data={"wristband": "WB-NOT-KNOWN", "bag": ward.token})
    assert stop.status_code == 303
    page = _monitoring(client_as)
    section = page[page.index('id="recent-bedside_refused"'):page.index('id="recent-infusion_start_refused"')]
    assert f"bag {shown}:" in section, section
    assert f"bag {bare}:" not in section


def test_a_refused_signature_names_the_donor_by_its_code(app, users, client_as, db_session):
    donor_id = screened_donor(db_session, "adipose_at_don")
    code = db_session.get(Donor, donor_id).code
    db_session.close()
    qa = client_as("qa")
    refused = qa.post(f"/donors/{donor_id}/decision", data={**screening_seen(qa, donor_id),
                                                             "decision-meaning": APPROVED,
                                                             "decision-password": "wrong-one"})
    assert refused.status_code == 401
    page = _monitoring(client_as)
    assert f"wrong password when signing '{APPROVED}' on donor {code}" in page
    assert f"on donor {donor_id}<" not in page


def test_the_lockout_reads_once_on_the_attempt_that_locked(app, users, client_as, db_session):
    client = app.test_client()
    for n in range(5):  # LOCKOUT_THRESHOLD 5: the fifth locks
        login(client, "nurse", f"wrong-password-{n}")
    login(client, "nurse", "wrong-password-6")  # at a locked account
    login(client, "nurse", PASSWORD)  # the right one, at a locked account
    page = _monitoring(client_as)
    section = page[page.index('id="recent-failed_logins"'):page.index('id="recent-bedside_refused"')]
    rows = [row for row in section.split("<tr>") if "nurse (Nurse)" in row]
    said = [next(words for words in ("wrong password: the account is now locked",
                                     "refused: the account was already locked", "wrong password")
                 if words in row) for row in rows]
    # newest first: two refusals at the locked account, the locking one, four plain wrong passwords
    assert said == ["refused: the account was already locked"] * 2 + ["wrong password: the account is now locked"] \
        + ["wrong password"] * 4, said
    assert "the account is locked after too many wrong passwords" not in section
