"""Standard 5-field crontab lines → APScheduler CronTriggers (weekday 0 and 7 = Sunday).

Shared by the config loader (schedule.cron is checked once, at load time) and the bot's
/schedule command, so a line is accepted or refused for the same reason in both places.
"""

from __future__ import annotations

import datetime as dtm
import re

from apscheduler.triggers.cron import CronTrigger

_WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]  # crontab 0..7


class CrontabError(ValueError):
    """A crontab line that cannot be scheduled; the message says why, `reason` and `fields`
    say it again for the bot to put into its reader's language (bot/texts.py)."""

    def __init__(self, message: str, reason: str, **fields: object) -> None:
        super().__init__(message)
        self.reason = reason  # fields | field | never | weekday
        self.fields = fields


def parse_crontab(line: str, timezone: str) -> CronTrigger:
    """A CronTrigger for a crontab line in `timezone` (a valid IANA name, checked by the caller)."""
    fields = line.split()
    if len(fields) != 5:
        raise CrontabError(
            f"a crontab line has 5 fields (minute hour day month weekday), got {len(fields)}",
            "fields", count=len(fields),
        )
    # APScheduler counts weekdays from Monday = 0; crontab from Sunday = 0: use names.
    fields[4] = re.sub(r"\d+", lambda m: _weekday_name(m.group()), fields[4])
    names = ("minute", "hour", "day", "month", "day_of_week")
    for name, value, shown in zip(names, fields, line.split(), strict=True):
        try:
            CronTrigger(**{name: value}, timezone=timezone)
        except ValueError as exc:
            raise CrontabError(f"{name.replace('_', ' ')} field {shown!r}: {exc}", "field",
                               field=names.index(name), value=shown) from None
    trigger = CronTrigger(**dict(zip(names, fields, strict=True)), timezone=timezone)
    if trigger.get_next_fire_time(None, dtm.datetime.now(trigger.timezone)) is None:
        raise CrontabError("this crontab line never fires", "never")
    return trigger


def _weekday_name(number: str) -> str:
    if int(number) > 7:
        raise CrontabError(f"weekday {number} is out of range 0-7 (0 and 7 are Sunday)",
                           "weekday", value=number)
    return _WEEKDAYS[int(number)]
