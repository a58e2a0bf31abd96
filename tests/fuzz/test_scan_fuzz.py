"""Every scan field fed forged, altered, truncated or arbitrary codes (forgeries.py), against the seeded ward:
a bag thawed and prescribed to the wristband's patient, whose genuine code MATCHES (the control). A forgery:

- bedside check (web form and POST /api/v1/custody/scan-verify): never MATCHES, never 5xx; the STOP is
  recorded as a check (a record by design) but no custody event or infusion is written;
- custody event scan (web /ward/event and POST /api/v1/custody/events): refused, nothing written;
- label verification (/v/<code> and GET /api/v1/labels/verify): refused, never a 200.

And the wristband field fed another patient's wristband, the genuine one altered or truncated, arbitrary text and
bytes, NUL, a lone surrogate and huge values (forgeries.wristbands), with the genuine bag or a forged one: never
MATCHES, never a 5xx, no custody event or infusion written.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tests.fuzz.forgeries import forgeries, wristbands
from tests.fuzz.site import Site

EXAMPLES = {"sqlite": 30, "postgresql": 8}


def _verdict(page: str) -> str:
    # the heading may carry the focus-on-load attributes (js/verdict-focus.js)
    return "MATCHES" if re.search(r'<h1 id="verdict" class="verdict-word"[^>]*>MATCHES</h1>', page) else "STOP"


def _bedside(site: Site, web: tuple[Any, str], api: Any, scan: str, wristband: str | None = None) -> list[str]:
    """The verdicts of the web form and of the API for this bag scan and wristband (default: the patient's).
    A value no scanner types (NUL, a lone surrogate) is refused with a 400 (web/input_guard.py)."""
    client, csrf = web
    wristband = site.ward.wristband if wristband is None else wristband
    body = urlencode({"csrf_token": csrf, "wristband": wristband, "bag": scan}, errors="surrogatepass")
    # a check the form accepts is recorded and answered 303 to its page (GET /ward/checks/<id>), read here
    page = client.post("/ward/check", data=body, content_type="application/x-www-form-urlencoded",
                       follow_redirects=True)
    assert page.status_code in (200, 400, 422), (page.status_code, scan, wristband)
    assert [r.status_code for r in page.history] == ([303] if page.status_code == 200 else []), (scan, wristband)
    answer = api.post("/api/v1/custody/scan-verify", json={"wristband": wristband, "bag": scan},
                      headers={"Authorization": f"Bearer {site.tokens['nurse']}"})
    assert answer.status_code in (200, 400, 422), (answer.status_code, scan, wristband)
    verdicts = [_verdict(page.get_data(as_text=True)) if page.status_code == 200 else "refused"]
    verdicts.append(answer.get_json()["result"] if answer.status_code == 200 else "refused")
    return verdicts


def test_the_genuine_code_matches_so_the_sweep_below_means_something(site: Site) -> None:
    web, api = site.client("nurse"), site.app.test_client()
    assert _bedside(site, web, api, site.ward.ready_token) == ["MATCHES", "MATCHES"]
    assert _bedside(site, web, api, site.ward.ready_din) == ["MATCHES", "MATCHES"]  # typed DIN + K
    assert api.get(f"/v/{site.ward.ready_token}").status_code == 200


def test_a_forged_or_damaged_code_never_passes_any_scan_field(site: Site) -> None:
    nurse, api = site.client("nurse"), site.app.test_client()
    bearer = {"Authorization": f"Bearer {site.tokens['nurse']}"}

    @given(scan=forgeries(site.ward.ready_token, site.ward.other_token))
    @settings(max_examples=EXAMPLES[site.kind], deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(scan: str) -> None:
        before = site.counts()
        assert "MATCHES" not in _bedside(site, nurse, api, scan), scan
        after = site.counts()
        assert after["two_person_check"] - before["two_person_check"] <= 2  # the STOPs (or none: refused)
        assert (after["custody_event"], after["infusion"]) == (before["custody_event"], before["infusion"])

        # a hand-over of the bag by scan: refused, and nothing at all is written
        event = nurse[0].post("/ward/event", content_type="application/x-www-form-urlencoded", data=urlencode(
            {"csrf_token": nurse[1], "action": "receive", "bag": scan}, errors="surrogatepass"))
        assert event.status_code in (400, 422), (event.status_code, scan)
        event = api.post("/api/v1/custody/events", json={"kind": "received", "bag": scan}, headers=bearer)
        assert event.status_code in (400, 422), (event.status_code, scan)
        assert site.counts() == after, scan

        # the label verification pages: refused (bad code 400 / 422, unknown bag 404), never genuine
        path = quote(scan, safe="", errors="surrogatepass")
        assert api.get(f"/v/{path}").status_code in (400, 404), scan
        assert api.get(f"/api/v1/labels/verify?token={path}", headers=bearer).status_code in (400, 404, 422), scan

    run()


def test_a_wrong_or_hostile_wristband_never_matches(site: Site) -> None:
    nurse, api = site.client("nurse"), site.app.test_client()
    with site.engine.connect() as connection:
        others = list(connection.scalars(text("SELECT wristband_id FROM patient WHERE wristband_id <> :w"),
                                         {"w": site.ward.wristband}))
    assert others, "the demo has a second patient"
    genuine = st.sampled_from([site.ward.ready_token, site.ward.ready_din])

    @given(wristband=wristbands(site.ward.wristband, others),
           scan=genuine | forgeries(site.ward.ready_token, site.ward.other_token))
    @settings(max_examples=EXAMPLES[site.kind], deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @example(wristband=others[0], scan=site.ward.ready_token).via("another patient's wristband, the right bag")
    @example(wristband=site.ward.wristband + "\x00", scan=site.ward.ready_token).via("a NUL after the wristband")
    @example(wristband=site.ward.wristband[:-1], scan=site.ward.ready_token).via("the wristband truncated")
    @example(wristband=site.ward.wristband + "7", scan=site.ward.ready_token).via("a character appended")
    @example(wristband="\ud800", scan=site.ward.ready_token).via("a lone surrogate")
    @example(wristband="W" * 100_000, scan=site.ward.ready_din).via("a huge wristband")
    def run(wristband: str, scan: str) -> None:
        before = site.counts()
        assert "MATCHES" not in _bedside(site, nurse, api, scan, wristband), (wristband[:80], scan)
        after = site.counts()
        assert after["two_person_check"] - before["two_person_check"] <= 2  # the STOPs (or none: refused)
        assert (after["custody_event"], after["infusion"]) == (before["custody_event"], before["infusion"])

    run()
