"""s45: the site's year and day around midnight, and a dose refused for bags that expire before the planned day.

- A donor registered at 00:30 on 1 January in Paris (23:30 UTC on 31 December) took the UTC year in its code
  (D-2027-...), while lot numbers and DINs take the site's year.
- "2028-01-01 00:30 CET (23:30 UTC)" read as 23:30 UTC on 1 January: the UTC part names its own date when it is
  not the site's day; the short form stays when the days agree.
- The dose page said "no bag in stock" when bags ARE stored but all expire before the planned infusion day.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

from mscbatch import site
from mscbatch.audit.context import use_case
from mscbatch.donors import services as donor_services
from mscbatch.lots.models import Bag
from mscbatch.site import local_and_utc, local_parts, site_config, site_today
from tests.conftest import api_token_for
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_donors import details

NEW_YEAR_IN_PARIS = datetime(2027, 12, 31, 23, 30, tzinfo=UTC)  # 2028-01-01 00:30 CET


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def test_the_utc_part_names_its_date_only_when_it_is_not_the_site_day() -> None:
    assert local_parts(NEW_YEAR_IN_PARIS) == ("2028-01-01 00:30 CET", "2027-12-31 23:30 UTC")
    assert local_and_utc(NEW_YEAR_IN_PARIS) == "2028-01-01 00:30 CET (2027-12-31 23:30 UTC)"
    assert local_and_utc(NEW_YEAR_IN_PARIS, seconds=True) == "2028-01-01 00:30:00 CET (2027-12-31 23:30:00 UTC)"
    # the same day in both: the short form, as before
    assert local_and_utc(datetime(2026, 12, 5, 20, 48, tzinfo=UTC)) == "2026-12-05 21:48 CET (20:48 UTC)"
    assert local_and_utc(datetime(2026, 12, 5, 22, 59, tzinfo=UTC)) == "2026-12-05 23:59 CET (22:59 UTC)"
    assert local_and_utc(datetime(2026, 12, 5, 23, 0, tzinfo=UTC)) == "2026-12-06 00:00 CET (2026-12-05 23:00 UTC)"
    # summer time: two hours ahead
    assert local_and_utc(datetime(2027, 7, 3, 22, 30, tzinfo=UTC)) == "2027-07-04 00:30 CEST (2027-07-03 22:30 UTC)"


def test_a_donor_registered_after_midnight_on_new_year_takes_the_sites_year(app, users, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(site, "utcnow", lambda: NEW_YEAR_IN_PARIS)
    assert site_today().year == 2028
    session = app.extensions["mscbatch.db"].new_session()
    try:
        registered = donor_services.register_donor(session, user(session, "technician"), details("cord_eu"))
        session.commit()
        assert registered.code.startswith("D-2028-"), registered.code
    finally:
        session.close()


def _expiring_stock(app: Any, expires_at: list[datetime]) -> tuple[int, str]:
    """A patient weighed today and released UC-MSC bags in stock expiring at the given instants."""
    with app.extensions["mscbatch.db"].new_session() as session:
        tech, clin = user(session, "technician"), user(session, "clinician")
        bags = lot_with_bags(session, tech, donor(session, tech), bags=len(expires_at), cells=50_000_000)
        with use_case(session, user(session, "qa"), "test: a short shelf life"):
            for bag, at in zip(bags, expires_at, strict=True):
                session.get(Bag, bag.id).expires_at = at
        row = patient(session, clin, weighed_days_ago=0)
        session.commit()
        return row.id, row.code


def test_the_dose_page_says_the_bags_in_stock_expire_before_the_planned_day(app, users, client_as) -> None:  # type: ignore[no-untyped-def]
    tz = site_config().tz
    today = site_today()
    earliest = datetime.combine(today + timedelta(days=2), datetime.min.time(), tz).replace(hour=9)
    latest = datetime.combine(today + timedelta(days=3), datetime.min.time(), tz).replace(hour=12)
    pid, _code = _expiring_stock(app, [earliest, latest, latest])
    planned = today + timedelta(days=3)  # the day of the latest expiry: planned at its 23:59, after it
    answer = client_as("clinician").get(f"/patients/{pid}/dose?level=2000000&planned_on={planned.isoformat()}")
    assert answer.status_code == 200
    page = _text(answer.get_data(as_text=True))
    assert "no bag in stock" not in page, page
    said = (f"Refused: no usable bag of UC-MSC for this patient: the 3 bags of UC-MSC in stock for this patient all "
            f"expire before the planned infusion on {planned.isoformat()}: the earliest {local_and_utc(earliest)}, "
            f"the latest {local_and_utc(latest)}; plan the infusion earlier, before {local_and_utc(latest)}.")
    assert said in page, page

    # the day before the latest expiry: a bag is usable, no such refusal
    sooner = today + timedelta(days=2)
    page = _text(client_as("clinician").get(f"/patients/{pid}/dose?level=2000000&planned_on={sooner.isoformat()}")
                 .get_data(as_text=True))
    assert "expire before the planned infusion" not in page and "no bag in stock" not in page, page


def test_the_api_dry_run_says_the_only_bag_expires_before_the_planned_instant(app, users) -> None:  # type: ignore[no-untyped-def]
    expiry = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    pid, _code = _expiring_stock(app, [expiry])
    planned_at = expiry + timedelta(days=1)
    dry = app.test_client().post(f"/api/v1/patients/{pid}/dose-calculation",
                                 headers={"Authorization": f"Bearer {api_token_for(app, 'clinician')}"},
                                 json={"dose_level_cells_per_kg": "2000000", "planned_at": planned_at.isoformat()})
    assert dry.status_code == 200, dry.get_json()
    body = dry.get_json()
    assert body["allowed"] is False and body["refusal_code"] == "no_bags", body
    assert body["refusal_reason"] == (
        f"no usable bag of UC-MSC for this patient: the only bag of UC-MSC in stock for this patient expires "
        f"{local_and_utc(expiry)}, before the planned infusion on {local_and_utc(planned_at)}; plan the infusion "
        f"earlier, before {local_and_utc(expiry)}"), body


def test_with_no_bag_at_all_the_refusal_still_says_no_bag_in_stock(app, users, client_as) -> None:  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        pid = patient(session, user(session, "clinician"), weighed_days_ago=0).id
        session.commit()
    planned = site_today() + timedelta(days=2)
    page = _text(client_as("clinician").get(f"/patients/{pid}/dose?level=2000000&planned_on={planned.isoformat()}")
                 .get_data(as_text=True))
    assert "Refused: no usable bag of UC-MSC for this patient (no bag in stock)." in page, page
