"""The site: its configuration (config/site.toml) and its calendar.

Instants are stored and compared in UTC. Calendar days (the date a weight was measured, a donor sample date,
"not in the future", the day of a planned infusion) are the site's days, in the time zone config/site.toml
names, never the server's: a server kept on UTC starts a Paris day one or two hours late, so it would refuse
a weight measured just after local midnight as "in the future" and accept a weight one day older than the
protocol allows.
"""
from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cache

from mscbatch.core.site_config import SiteConfig, load_site_config
from mscbatch.database import utcnow
from mscbatch.errors import ValidationFailed
from mscbatch.paths import config_dir


@cache
def site_config() -> SiteConfig:
    """config/site.toml, validated once (FIN, lot number format, time zone, storage temperature)."""
    return load_site_config(config_dir() / "site.toml")


def site_day(instant: datetime) -> date:
    """The site's calendar day of an instant (an aware datetime)."""
    return instant.astimezone(site_config().tz).date()


def local_parts(instant: datetime, seconds: bool = False) -> tuple[str, str]:
    """An instant as the pages say it, in two parts: the site's local time with its zone named, and UTC
    ("2026-12-05 21:48 CET", "20:48 UTC"). Read in UTC alone, 23:30 UTC at 00:30 in Paris is the wrong day. When
    the UTC day is not the site's, the UTC part names its date too ("2028-01-01 00:30 CET", "2027-12-31 23:30 UTC"):
    "23:30 UTC" beside 1 January would read as 23:30 UTC on 1 January, a day off. The pages' `local` filter
    (web.templating) marks the parts up; local_and_utc writes them as plain text."""
    fmt = "%H:%M:%S" if seconds else "%H:%M"
    shown = instant.astimezone(site_config().tz)
    in_utc = instant.astimezone(UTC)
    utc_day = f"{in_utc:%Y-%m-%d} " if in_utc.date() != shown.date() else ""
    return f"{shown:%Y-%m-%d} {shown.strftime(fmt)} {shown:%Z}", f"{utc_day}{in_utc.strftime(fmt)} UTC"


def local_and_utc(instant: datetime | None, seconds: bool = False) -> str:
    """An instant in plain text, as the pages show it: "2026-12-05 21:48 CET (20:48 UTC)"; "—" for none. One
    function for the pages, the PDFs and the messages, so that they never say an instant two ways."""
    if instant is None:
        return "—"
    local, utc = local_parts(instant, seconds)
    return f"{local} ({utc})"


def site_time(typed: datetime | None, field: str | None = None, label: str = "Time") -> datetime | None:
    """A wall-clock time typed in a form (naive: the site's time zone) as an aware datetime.

    A time the clocks skipped (spring forward: 02:30 on the last Sunday of March in Paris) is refused, naming the
    field: zoneinfo would read it with the offset before the change and it would be stored, and shown, an hour
    later. An autumn time that comes twice (02:30 on the last Sunday of October in Paris) is refused the same way,
    naming both readings ("type 02:30 CEST or 02:30 CET"): it was read as summer time without a word, an hour off
    if the second was meant. A time typed with the zone's abbreviation (read by zone_reading) comes aware: it says
    which, and is taken as it is."""
    if typed is None:
        return None
    if typed.tzinfo is not None:  # disambiguated by its zone abbreviation (zone_reading)
        return typed
    tz = site_config().tz
    aware = typed.replace(tzinfo=tz)
    # PEP 495: a time in the gap maps to an instant whose wall time, read back, is another (02:30 -> 03:30)
    try:
        shown = aware.astimezone(UTC).astimezone(tz)
    except OverflowError:  # 0001-01-01 00:00 (a date picker's edge) is before year 1 in UTC: no clock change
        return aware  # there; the services refuse such a time naming the field (core.bounds.plausible_instant)
    if shown.replace(tzinfo=None) != typed.replace(tzinfo=None):
        changed = _clock_change(aware)
        clock = "%H:%M" if shown.date() == typed.date() else "%Y-%m-%d %H:%M"  # a day skipped (Apia, 2011)
        raise ValidationFailed(
            f"{label}: {typed:%Y-%m-%d %H:%M} does not exist in {tz}: the clocks went forward at "
            f"{changed:%H:%M}. Type the time as the clock showed it ({shown.strftime(clock)}).", field=field)
    first, second = aware.replace(fold=0), aware.replace(fold=1)
    if happens_twice(aware):
        raise ValidationFailed(
            f"{label}: {typed:%H:%M} {TWICE} on {typed:%Y-%m-%d} in {tz} (the clocks went back): type "
            f"{typed:%H:%M} {first.tzname()} for the first, before the change ({local_parts(first)[1]}), or "
            f"{typed:%H:%M} {second.tzname()} for the second, an hour later ({local_parts(second)[1]}), with the "
            f"zone after the time, as in {typed:%Y-%m-%dT%H:%M} {second.tzname()}.", field=field)
    return aware


TWICE = "happens twice"
"""The words of site_time's refusal of an autumn time that comes twice (a form shows its field as text then, so
that the zone can be typed after the time)."""


def happens_twice(aware: datetime) -> bool:
    """The wall time of an aware time of the site comes twice that day (autumn: the clocks went back over it)."""
    return aware.replace(fold=0).utcoffset() != aware.replace(fold=1).utcoffset()


def zone_reading(typed: datetime, abbreviation: str) -> datetime | None:
    """A wall time typed with the site zone's abbreviation ("02:30 CET") as the aware time it names, None when the
    zone does not use that abbreviation at that time. It tells the two readings of an autumn time apart."""
    tz = site_config().tz
    for fold in (0, 1):
        aware = typed.replace(tzinfo=tz, fold=fold)
        if aware.tzname() != abbreviation.upper():
            continue
        try:  # a time in the spring gap is none (site_time names the time to type)
            shown = aware.astimezone(UTC).astimezone(tz)
        except OverflowError:
            return None
        return aware if shown.replace(tzinfo=None) == typed.replace(tzinfo=None, fold=0) else None
    return None


def _clock_change(skipped: datetime) -> datetime:
    """The wall time, on the old clock, at which the clocks jumped over `skipped` (an aware time in the gap).

    Read with the offset after the change (fold=1) it is an instant before the change; with the offset before it
    (fold=0), an instant after: the change is the first second between them with another offset than the old."""
    old = skipped.replace(fold=0).utcoffset()
    low, high = int(skipped.replace(fold=1).timestamp()), int(skipped.replace(fold=0).timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, skipped.tzinfo).utcoffset() == old:
            low = middle
        else:
            high = middle
    return (datetime.fromtimestamp(high, UTC) + old).replace(tzinfo=None)


def site_today() -> date:
    """Today at the site."""
    return site_day(utcnow())
