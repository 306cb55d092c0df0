"""How long a cron schedule can leave between two runs: what "a backup is overdue" means.

`longest_gap` reads 5-field schedules (minute hour day-of-month month day-of-week, the form
offen/docker-volume-backup takes), a 6-field form with seconds first (the seconds are ignored,
which can only lengthen the gap), and the descriptors `@daily`, `@every 6h`, ...
Day-of-month and day-of-week follow cron's rule: when both are restricted, either matches.
"""

from __future__ import annotations

import datetime
import functools
import re

MINUTES_PER_DAY = 24 * 60
# A whole 28-year cycle of weekdays and leap years (the Gregorian century rule aside).
_WINDOW_DAYS = 28 * 365 + 7
_EPOCH = datetime.date(2001, 1, 1)


@functools.cache
def _window() -> tuple[tuple[int, int, int], ...]:
    """(month, day of month, weekday with Sunday 0) of every day of the window, made once."""
    days = (_EPOCH + datetime.timedelta(days=offset) for offset in range(_WINDOW_DAYS))
    return tuple((day.month, day.day, day.isoweekday() % 7) for day in days)


_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {name: i + 1 for i, name in enumerate(_MONTH_NAMES)}
_WEEKDAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_GO_DURATION = re.compile(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")  # fullmatch


class ScheduleError(ValueError):
    """The schedule cannot be read, or it never runs."""


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int]:
    def number(token: str) -> int:
        value = (names or {}).get(token.lower()) if not token.isdigit() else int(token)
        if value is None or not low <= value <= high:
            raise ScheduleError(f"{token!r} is not in {low}-{high}")
        return value

    values: set[int] = set()
    for item in text.split(","):
        body, _, step_text = item.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ScheduleError(f"{item!r}: the step must be a positive number")
        if body in ("*", "?"):
            start, end = low, high
        elif "-" in body:
            first, _, last = body.partition("-")
            start, end = number(first), number(last)
            if start > end:
                raise ScheduleError(f"{item!r}: the range runs backwards")
        else:
            start = number(body)
            end = high if step else start
        values.update(range(start, end + 1, step or 1))
    return values


@functools.lru_cache(maxsize=256)
def longest_gap(schedule: str) -> int:
    """The longest time between two consecutive runs of `schedule`, in seconds.

    A pure function of the text, remembered (a refused schedule raises again): one program run
    asks for the same schedule more than once."""
    text = schedule.strip()
    if text.startswith("@every"):
        match = _GO_DURATION.fullmatch(text.removeprefix("@every").strip())
        if not match or not any(match.groups()):
            raise ScheduleError(f"{schedule!r}: '@every' takes a duration like 6h or 90m")
        h, m, sec = (int(g or 0) for g in match.groups())
        return h * 3600 + m * 60 + sec
    text = _DESCRIPTORS.get(text.lower(), text)
    fields = text.split()
    if len(fields) == 6:
        _field(fields[0], 0, 59)  # seconds: checked, then ignored
        fields = fields[1:]
    if len(fields) != 5:
        raise ScheduleError(f"{schedule!r} is not a cron schedule (5 or 6 fields, or a descriptor)")
    minute_text, hour_text, dom_text, month_text, dow_text = fields
    minutes = _field(minute_text, 0, 59)
    hours = _field(hour_text, 0, 23)
    doms = _field(dom_text, 1, 31)
    months = _field(month_text, 1, 12, _MONTHS)
    dows = {d % 7 for d in _field(dow_text, 0, 7, _WEEKDAYS)}
    either = dom_text[0] not in "*?" and dow_text[0] not in "*?"

    times = sorted(h * 60 + m for h in hours for m in minutes)
    window = _window()
    if either:
        days = [i for i, (mo, d, w) in enumerate(window) if mo in months and (d in doms or w in dows)]
    else:
        days = [i for i, (mo, d, w) in enumerate(window) if mo in months and d in doms and w in dows]
    if len(days) < 2:
        raise ScheduleError(f"{schedule!r} runs less than twice in 28 years")
    gap = max((b - a for a, b in zip(times, times[1:], strict=False)), default=0)
    for a, b in zip(days, days[1:], strict=False):
        gap = max(gap, (b - a) * MINUTES_PER_DAY - times[-1] + times[0])
    return gap * 60
