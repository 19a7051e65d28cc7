"""How much CPU the rest of the machine left idle: the pool worker may use a spare core between
bursts (`pool.idle_share`) and keeps to `pool.cpu_share` when the machine is busy.

Read from /proc/stat (Linux): the machine's busy time over an interval, less this process's own
CPU time over it, is what everything else used. Elsewhere there is no reading and the worker
keeps to its configured share.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PROC_STAT = Path("/proc/stat")
# cores the others must leave idle beside a full one for this process: room for a request, the
# database and the other bot processes
HEADROOM = 0.5


def _machine_jiffies(stat: Path) -> tuple[int, int] | None:
    """(busy, total) jiffies of all cores since boot, or None off Linux."""
    try:
        first = stat.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    # guest time is already counted in user and nice
    total = sum(values[:8])
    return total - idle, total


class IdleMeter:
    """Whether the others left a spare core idle since the last look (`spare()`)."""

    def __init__(self, stat: Path = PROC_STAT) -> None:
        self.stat = stat
        self.cores = os.cpu_count() or 1
        self._last = (_machine_jiffies(stat), time.process_time())

    def others_cores(self) -> float | None:
        """Cores the rest of the machine kept busy since the last call (None: no reading)."""
        jiffies, own = _machine_jiffies(self.stat), time.process_time()
        (before, own_before), self._last = self._last, (jiffies, own)
        if jiffies is None or before is None or jiffies[1] <= before[1]:
            return None
        busy, total = jiffies[0] - before[0], jiffies[1] - before[1]
        # jiffies of all cores: the interval's length in seconds is total / cores / HZ, so the
        # busy share times the cores is cores kept busy; this process's own seconds over the
        # same interval, turned into cores the same way
        seconds = total / self.cores / os.sysconf("SC_CLK_TCK")
        return max(0.0, busy / total * self.cores - (own - own_before) / seconds)

    def spare(self) -> bool:
        """True when, since the last call, the others left a full core and HEADROOM idle."""
        others = self.others_cores()
        return others is not None and self.cores - others >= 1.0 + HEADROOM
