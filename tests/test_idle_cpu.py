"""bot/idle_cpu.py and the pool worker's share of a core: what the rest of the machine kept busy,
read from /proc/stat (a real spinning process, and stat files of known jiffies), and the worker
taking `pool.idle_share` only while nobody waits and the machine leaves a core and a half idle."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bot.idle_cpu import PROC_STAT, IdleMeter
from bot.model_slot import ModelSlot
from bot.pool import Pool
from bot.settings import RuntimeSettings
from common.cli import UserError
from common.config import config_from_dict
from common.db import open_database, storage_url

HZ = os.sysconf("SC_CLK_TCK")


def _stat(path, busy: int, idle: int) -> None:
    """A /proc/stat whose all-cores line holds `busy` user jiffies and `idle` idle ones."""
    path.write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n")


def test_others_are_the_machines_busy_cores_over_the_interval(tmp_path):
    stat = tmp_path / "stat"
    _stat(stat, 0, 0)
    meter = IdleMeter(stat)
    cores = meter.cores
    seconds = 10
    # over 10 s the cores were busy for 1.5 cores' worth (this process used ~none of it)
    _stat(stat, int(1.5 * seconds * HZ), int((cores - 1.5) * seconds * HZ))
    assert meter.others_cores() == pytest.approx(1.5, abs=0.01)
    _stat(stat, int(1.5 * seconds * HZ), int((cores - 1.5) * seconds * HZ + cores * seconds * HZ))
    assert meter.others_cores() == pytest.approx(0.0, abs=0.01)  # the next 10 s: all idle
    assert meter.others_cores() is None  # no time has passed: no reading


def test_no_reading_leaves_no_spare_core(tmp_path):
    meter = IdleMeter(tmp_path / "absent")
    assert meter.others_cores() is None and not meter.spare()
    (tmp_path / "bad").write_text("intr 1 2 3\n")
    assert not IdleMeter(tmp_path / "bad").spare()


@pytest.mark.skipif(not PROC_STAT.exists(), reason="no /proc/stat: not Linux")
def test_a_spinning_process_counts_as_others():
    meter = IdleMeter()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        meter.others_cores()
        time.sleep(1.5)
        others = meter.others_cores()
    finally:
        spinner.kill()
        spinner.wait()
    assert others is not None and others >= 0.7, others


def test_the_worker_takes_the_idle_share_only_on_an_idle_machine_with_nobody_waiting(
        tmp_path, bot_model):
    config = config_from_dict({"pool": {"cpu_share": 0.25, "idle_share": 1.0}})
    database = open_database(storage_url(str(tmp_path / "pool.sqlite3")))
    slot = ModelSlot(RuntimeSettings(database), str(bot_model), 1)
    try:
        pool = Pool(database, slot, config)
        stat = tmp_path / "stat"
        _stat(stat, 0, 0)
        pool.meter = IdleMeter(stat)
        cores, busy, idle = pool.meter.cores, 0, 0

        def later(others: float) -> None:  # 10 s in which the others kept `others` cores busy
            nonlocal busy, idle
            busy, idle = busy + int(others * 10 * HZ), idle + int((cores - others) * 10 * HZ)
            _stat(stat, busy, idle)

        later(0.0)
        assert pool.pause_after(2.0) == (0.0 if cores >= 2 else pytest.approx(6.0))
        later(cores)  # every core busy: back to cpu_share, 2 s busy → 6 s asleep
        assert pool.pause_after(2.0) == pytest.approx(6.0)
        later(0.0)
        slot.waiting += 1  # someone waits for the sampler: cpu_share, idle or not
        assert pool.pause_after(2.0) == pytest.approx(6.0)
        slot.waiting -= 1
    finally:
        slot.close()
        database.close()


def test_idle_share_below_cpu_share_is_refused():
    with pytest.raises(UserError, match="idle_share"):
        config_from_dict({"pool": {"cpu_share": 0.5, "idle_share": 0.25}})
