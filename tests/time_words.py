"""An instant as the pages write it, computed here independently of mscbatch.site: the site's local time with its
zone, then UTC in brackets, the UTC date named when it is not the site's day (in Paris, an instant between 23:00 and
24:00 UTC in winter is the next day locally). A test that wrote "(HH:MM UTC)" alone failed when CI ran at that hour."""
from __future__ import annotations

from datetime import UTC, datetime

from mscbatch.site import site_config


def utc_beside(instant: datetime, seconds: bool = False) -> str:
    """"(23:30 UTC)", or "(2026-12-07 23:30 UTC)" when the site's day is another."""
    clock = "%H:%M:%S" if seconds else "%H:%M"
    local, utc = instant.astimezone(site_config().tz), instant.astimezone(UTC)
    day = f"{utc:%Y-%m-%d} " if utc.date() != local.date() else ""
    return f"({day}{utc.strftime(clock)} UTC)"


def site_then_utc(instant: datetime, seconds: bool = False) -> str:
    """"2026-12-08 00:30 CET (2026-12-07 23:30 UTC)"."""
    clock = "%H:%M:%S" if seconds else "%H:%M"
    local = instant.astimezone(site_config().tz)
    return f"{local:%Y-%m-%d} {local.strftime(clock)} {local:%Z} {utc_beside(instant, seconds)}"
