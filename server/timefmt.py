"""Human-readable times for the reader pages, in the house style of a news live blog.

The API speaks RFC 3339 UTC ("2023-07-27T04:43:00Z"); readers see "12:43 a.m. ET, July 27, 2023" in the
blog's own time zone. Only the standard library's zoneinfo is used, so a stamp never depends on the host's
locale or local time zone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["format_stamp", "parse_utc", "post_count_label", "zone_label"]

# US newsrooms label their zones without the daylight-saving letter: "ET" all year, never "EDT"/"EST".
_US_LABELS: dict[str, str] = {
    "America/New_York": "ET",
    "America/Chicago": "CT",
    "America/Denver": "MT",
    "America/Phoenix": "MT",
    "America/Los_Angeles": "PT",
    "America/Anchorage": "AKT",
    "Pacific/Honolulu": "HT",
}

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def parse_utc(value: str) -> datetime:
    """Parse an RFC 3339 timestamp ("...Z", optionally with fractional seconds) into an aware UTC datetime.

    A timestamp without an offset is taken to be UTC, which is what the API always means.
    Raises ValueError when *value* is not a timestamp.
    """
    moment = datetime.fromisoformat(value.strip())
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _zone(tz_name: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        # A page must still render if a blog carries a zone this host's tz database lacks.
        return ZoneInfo("UTC")


def _gmt_offset(offset: timedelta | None) -> str:
    minutes = round((offset or timedelta()).total_seconds() / 60)
    if minutes == 0:
        return "GMT"
    sign = "+" if minutes > 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"GMT{sign}{hours}:{rest:02d}" if rest else f"GMT{sign}{hours}"


def zone_label(moment: datetime, tz_name: str) -> str:
    """The short zone label shown after the clock time, e.g. "ET", "BST", "GMT+4"."""
    if tz_name in _US_LABELS:
        return _US_LABELS[tz_name]
    local = _as_utc(moment).astimezone(_zone(tz_name))
    abbreviation = local.tzname() or ""
    # tzdata spells zones without a customary abbreviation as bare offsets ("+04", "-0530").
    if not abbreviation or abbreviation[0] in "+-" or abbreviation[0].isdigit():
        return _gmt_offset(local.utcoffset())
    return abbreviation


def format_stamp(moment: datetime | str, tz_name: str) -> str:
    """Format *moment* in *tz_name* as "12:43 a.m. ET, July 27, 2023".

    *moment* is an aware datetime or an RFC 3339 string; a naive datetime is taken to be UTC.
    An unknown *tz_name* falls back to UTC rather than failing the page.
    """
    when = parse_utc(moment) if isinstance(moment, str) else _as_utc(moment)
    local = when.astimezone(_zone(tz_name))
    hour = local.hour % 12 or 12
    meridiem = "a.m." if local.hour < 12 else "p.m."
    label = zone_label(when, tz_name)
    return f"{hour}:{local.minute:02d} {meridiem} {label}, {_MONTHS[local.month - 1]} {local.day}, {local.year}"


def post_count_label(n: int) -> str:
    """Label a post count: "1 Post", "9 Posts", "0 Posts"."""
    return f"{n} Post" if n == 1 else f"{n} Posts"
