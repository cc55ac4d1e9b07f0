"""The one reading of a "when" that `--since`/`--until` take (`cra stats`, `cra sessions`): a date, an ISO
time, or an age such as 7d, as the UTC string form cra stores timestamps in."""

import datetime as dt
import re

# In words, for help texts and error messages.
WHEN_FORMS = "a date (2025-06-01), a UTC time (2025-06-01T14:30), or an age (30m, 12h, 7d, 2w)"

_AGE = re.compile(r"(\d+)([mhdw])")
_AGE_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(value: str, *, end: bool = False, now: dt.datetime | None = None) -> str:
    """`value` as the UTC string form cra stores ('2025-01-31T00:00:00.000Z'). A bare date given as an
    end bound means the end of that day; an age (7d) counts back from `now` (default: the current time).
    Raises ValueError naming the accepted forms."""
    value = value.strip()
    age = _AGE.fullmatch(value)
    try:
        if age:
            when = (now or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(
                **{_AGE_UNITS[age.group(2)]: int(age.group(1))}
            )
        elif len(value) == 10:
            day = dt.date.fromisoformat(value)
            if end:
                day += dt.timedelta(days=1)
            return day.isoformat() + "T00:00:00.000Z"
        else:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not {WHEN_FORMS}") from None
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (when.microsecond // 1000)
