"""What every fuzzed request must satisfy, and the refusals that are audited on purpose.

- never a 5xx, never a stack trace, never our script marker unescaped in HTML, never a Jinja expression
  evaluated;
- a refused request (4xx, or a form re-shown with its errors: the views answer 422 for those, a 200 with
  errors would be refused too), and any GET, writes nothing: the content of every table is unchanged (site.State:
  every row, so an UPDATE is seen as well as an INSERT or a DELETE), except for the refusals listed in
  AUDITED_REFUSALS, which are records by design: their audit events, the audit chain's head that moves with them,
  and the account's wrong-password count when those events record it.
"""
from __future__ import annotations

from typing import Any

from tests.fuzz.hostile import SCRIPT, TEMPLATE_EVALUATED
from tests.fuzz.site import USER_COUNT_KEY, WRONG_PASSWORD_COUNT, State

SIGNIN_FAILURE_KEY = "signin_failure"

_SIGNATURE_REFUSED = frozenset({("signature_refused", None)})
_FAILED_LOGIN_COUNT = frozenset({("update", "failed_logins"), ("update", "locked_out_at")})

# endpoint -> the (audit action, field) pairs a refused request may append, nothing else and no other row.
# (A bedside check that says STOP is no refusal: a 200 whose check row is the record of the STOP, by design;
# test_scan_fuzz.py checks that it writes no custody event.) Why each is written although refused:
AUDITED_REFUSALS: dict[str, frozenset[tuple[str, str | None]]] = {
    # 21 CFR 11.300(d): failed sign-ins are recorded, and the wrong-password count is kept (lockout after 5)
    "auth.login": frozenset({("login_failed", None), ("login_refused", None)}) | _FAILED_LOGIN_COUNT,
    # the second person of the bedside check types a password: a failure is audited and counts to the lockout
    # and both people sign: a wrong password of the person who scanned is a refused signature, counted too
    "custody.confirm": frozenset({("second_person_refused", None)}) | _SIGNATURE_REFUSED | _FAILED_LOGIN_COUNT,
    "custody_api.confirm": frozenset({("second_person_refused", None)}) | _SIGNATURE_REFUSED | _FAILED_LOGIN_COUNT,
    # a wrong current password at a password change, or a wrong password when making an API token, from a screen
    # left signed in: audited and counted to the lockout like one at sign-in, else it could be guessed without end
    "auth.change_password": frozenset({("password_change_refused", None)}) | _FAILED_LOGIN_COUNT,
    "auth.create_token": frozenset({("api_token_refused", None)}) | _FAILED_LOGIN_COUNT,
    # an infusion start the system stops (wrong patient, STOP at the start, no confirmed check, already infused) is
    # recorded for the admin's monitoring: someone was about to give a bag that must not be given
    **{endpoint: frozenset({("infusion_start_refused", None)})
       for endpoint in ("custody.start", "custody.event", "custody_api.start_infusion")},
    # an e-signature with a wrong password creates no signature, but the refusal is audited (README, Part 11) and the
    # wrong password counted towards the lockout (signatures.services.sign), as at sign-in
    **{endpoint: _SIGNATURE_REFUSED | _FAILED_LOGIN_COUNT for endpoint in (
        "donors.decide", "patients.enrol", "patients.decide", "prescriptions.prescribe", "patients_api.prescribe",
        "prescriptions.cancel", "patients_api.cancel_prescription",  # stopping a course is signed (S42b)
        "recall.start", "recall.end", "recall.complete", "release.release_lot", "release.close_oos", "release.exceptional",
        "release.assess_deviation")},
    # the withdrawal's signature: its refusal is audited and the wrong password counted to the lockout
    "patients.withdraw": _SIGNATURE_REFUSED | _FAILED_LOGIN_COUNT,
}


def refused(response: Any) -> bool:
    if response.status_code >= 400:
        return True
    if response.status_code == 200 and response.mimetype == "text/html":
        body = response.get_data().decode("utf-8", "replace")
        return 'aria-invalid="true"' in body or 'class="form-errors"' in body
    return False


def problems(site: Any, endpoint: str, response: Any, before: State, after: State,
             read_only: bool = False) -> list[str]:
    """What is wrong with this answer to a hostile request (empty: nothing), given the database's state before and
    after it. `read_only`: a GET, which must write nothing whatever its answer."""
    found = []
    body = response.get_data().decode("utf-8", "replace")  # PDFs and images too
    if response.status_code >= 500:
        found.append(f"status {response.status_code}")
    if "Traceback" in body:
        found.append("a stack trace in the body")
    if response.mimetype == "text/html" and SCRIPT in body:
        found.append("the <script> marker came back unescaped")
    if TEMPLATE_EVALUATED in body:
        found.append("a template expression was evaluated")
    if (read_only or refused(response)) and after is not before:
        found += [f"{'read' if read_only else 'refused'} with {response.status_code} but {change}"
                  for change in writes(site, endpoint, before, after)]
    return found


def writes(site: Any, endpoint: str, before: State, after: State) -> list[str]:
    """What was written between the two states that the endpoint's audited refusals do not explain."""
    found = []
    events = site.audit_since(before.seq) if after.seq != before.seq else []
    if after.events != before.events + len(events):
        found.append(f"the audit trail went from {before.events} to {after.events} events, {len(events)} appended")
    allowed = AUDITED_REFUSALS.get(endpoint, frozenset())
    unexpected = [e for e in events if (e[0], e[2]) not in allowed and (e[0], None) not in allowed]
    if unexpected:
        found.append(f"audited {unexpected}")
    for key, text in after.tables.items():
        if text == before.tables[key]:
            continue
        if key == "audit_head" and events:
            continue  # the chain's head names its newest event
        if key == USER_COUNT_KEY and any(e[1] == "user_account" and e[2] in WRONG_PASSWORD_COUNT for e in events):
            continue  # the wrong-password count, written (and audited) with the refusal
        if key == SIGNIN_FAILURE_KEY and endpoint == "auth.login" and any(e[0] == "login_failed" for e in events):
            continue  # the sign-in throttle's count of the address's failures, written with the audited failure
        found.append(f"{key} changed: {_difference(before.tables[key], text)}")
    return found


def _difference(before: str, after: str) -> str:
    old, new = before.splitlines(), after.splitlines()
    gone, added = [r for r in old if r not in set(new)], [r for r in new if r not in set(old)]
    text = f"rows {gone[:3]} became {added[:3]}" if gone and added else f"-{gone[:3]} +{added[:3]}"
    return text if len(text) < 600 else text[:600] + "..."
