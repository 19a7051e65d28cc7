"""Whether the database is within reach: which errors say it is not, and one log line per
outage.

A database restart, a stopped server or a backup holding SQLite's write lock fail every
statement for a while. Each of those errors is the caller's to answer (a short reply, a retry
at the next run); what an operator reads is one line "database unavailable: REASON" when the
first fails and one "database available again after N s" when a write goes through again,
never a traceback per request. Other errors (a bug, a broken constraint) are not outages and
keep their tracebacks.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, OperationalError

log = logging.getLogger("common.db")

# PostgreSQL's SQLSTATE classes of a server out of reach: 08 connection exceptions, 57P admin or
# crash shutdown and "cannot connect now" (starting up); psycopg gives none for a refused socket.
UNREACHABLE_SQLSTATES = ("08", "57P")
# SQLite's codes of a file another process holds locked past the busy timeout (a backup).
UNREACHABLE_SQLITE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN")
SETTLE_SECONDS = 5.0  # a failure this soon after an outage ended belongs to it


def unreachable(exc: BaseException) -> str | None:
    """Why the database cannot be reached, when `exc` says so: its first line; else None."""
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig
    reason = (str(orig or exc).strip().splitlines() or [type(orig).__name__])[0]
    sqlite_code = getattr(orig, "sqlite_errorname", "")
    if exc.connection_invalidated or sqlite_code.startswith(UNREACHABLE_SQLITE):
        return reason
    sqlstate = getattr(orig, "sqlstate", None) or ""
    if isinstance(exc, OperationalError) and not sqlite_code and (
            not sqlstate or sqlstate.startswith(UNREACHABLE_SQLSTATES)):
        return reason
    return None


@dataclass(frozen=True)
class Outage:
    since: float  # unix seconds of the first failure
    reason: str  # the first failure's message


class Reach:
    """The outage in course, if any, as the event loop and the worker threads report it.

    A restarting server answers unevenly for a moment (a commit goes through, the next
    connection is refused while it comes up): a failure within SETTLE_SECONDS of an outage's
    end reopens that outage without a second log line."""

    def __init__(self) -> None:
        self.outage: Outage | None = None
        self._lock = threading.Lock()
        self._last: Outage | None = None  # the last outage that ended
        self._back = -SETTLE_SECONDS  # monotonic time it ended
        self._down = 0.0  # monotonic time the outage in course began (or was reopened)
        self._told_back = False  # its end is logged already (a reopened outage)

    def failed(self, exc: BaseException, began: float | None = None) -> bool:
        """Whether `exc` means the database is out of reach; the first of an outage is logged.
        `began`: when the failed attempt started (monotonic); one that started before the last
        outage ended belongs to that outage (a slow thread's late report), not a new one."""
        reason = unreachable(exc)
        if reason is None:
            return False
        with self._lock:
            now = time.monotonic()
            if self.outage is not None or (began is not None and began < self._back):
                return True
            self._down = now
            if self._last is not None and now - self._back < SETTLE_SECONDS:
                self.outage, self._told_back = self._last, True  # the same outage, unsettled
                return True
            self.outage, self._told_back = Outage(time.time(), reason), False
            log.warning("database unavailable: %s; answering what can be answered and"
                        " trying again", reason)
        return True

    def reached(self, began: float) -> None:
        """A write that started at `began` (monotonic) went through: an outage in course is
        over, unless the write started before it (a slow thread's late report)."""
        if self.outage is None:
            return
        with self._lock:
            if self.outage is None or began < self._down:
                return
            if not self._told_back:
                log.warning("database available again after %.0f s",
                            time.time() - self.outage.since)
            self._last, self.outage = self.outage, None
            self._back = time.monotonic()
