"""The site: its configuration (config/site.toml) and its calendar.

Instants are stored and compared in UTC. Calendar days (the date a weight was measured, a donor sample date,
"not in the future", the day of a planned infusion) are the site's days, in the time zone config/site.toml
names, never the server's: a server kept on UTC starts a Paris day one or two hours late, so it would refuse
a weight measured just after local midnight as "in the future" and accept a weight one day older than the
protocol allows.
"""
from __future__ import annotations

from datetime import date, datetime
from functools import cache

from mscbatch.core.site_config import SiteConfig, load_site_config
from mscbatch.database import utcnow
from mscbatch.paths import config_dir


@cache
def site_config() -> SiteConfig:
    """config/site.toml, validated once (FIN, lot number format, time zone, storage temperature)."""
    return load_site_config(config_dir() / "site.toml")


def site_day(instant: datetime) -> date:
    """The site's calendar day of an instant (an aware datetime)."""
    return instant.astimezone(site_config().tz).date()


def site_time(typed: datetime | None) -> datetime | None:
    """A wall-clock time typed in a form (naive: the site's time zone) as an aware datetime."""
    return None if typed is None else typed.replace(tzinfo=site_config().tz)


def site_today() -> date:
    """Today at the site."""
    return site_day(utcnow())
