"""Every scan field fed forged, altered, truncated or arbitrary codes (forgeries.py), against the seeded ward:
a bag thawed and prescribed to the wristband's patient, whose genuine code MATCHES (the control). A forgery:

- bedside check (web form and POST /api/v1/custody/scan-verify): never MATCHES, never 5xx; the STOP is
  recorded as a check (a record by design) but no custody event or infusion is written;
- custody event scan (web /ward/event and POST /api/v1/custody/events): refused, nothing written;
- label verification (/v/<code> and GET /api/v1/labels/verify): refused, never a 200.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, Phase, given, settings

from tests.fuzz.forgeries import forgeries
from tests.fuzz.site import Site

EXAMPLES = {"sqlite": 30, "postgresql": 8}


def _verdict(page: str) -> str:
    return "MATCHES" if '<h1 id="verdict" class="verdict-word">MATCHES</h1>' in page else "STOP"


def _bedside(site: Site, web: tuple[Any, str], api: Any, scan: str) -> list[str]:
    """The verdicts of the web form and of the API for this bag scan (and the wristband of the patient)."""
    client, csrf = web
    page = client.post("/ward/check", data={"csrf_token": csrf, "wristband": site.ward.wristband, "bag": scan})
    assert page.status_code in (200, 422), (page.status_code, scan)
    answer = api.post("/api/v1/custody/scan-verify", json={"wristband": site.ward.wristband, "bag": scan},
                      headers={"Authorization": f"Bearer {site.tokens['nurse']}"})
    assert answer.status_code in (200, 422), (answer.status_code, scan)
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
        event = nurse[0].post("/ward/event", data={"csrf_token": nurse[1], "action": "receive", "bag": scan})
        assert event.status_code == 422, (event.status_code, scan)
        event = api.post("/api/v1/custody/events", json={"kind": "received", "bag": scan}, headers=bearer)
        assert event.status_code == 422, (event.status_code, scan)
        assert site.counts() == after, scan

        # the label verification pages: refused (bad code 400 / 422, unknown bag 404), never genuine
        path = quote(scan, safe="", errors="surrogatepass")
        assert api.get(f"/v/{path}").status_code in (400, 404), scan
        assert api.get(f"/api/v1/labels/verify?token={path}", headers=bearer).status_code in (404, 422), scan

    run()
