"""`python -m scraper` as a real process: a refused token is one line, without the token.

Killed mid-run and resumed: test_faults.py.
"""

from __future__ import annotations

import pytest

from common.config import load_config
from harness.fakes.vk import FakeVk, make_item
from harness.pipeline import process_config, run, secrets
from scraper.run import scrape
from scraper.vk import VkError

pytestmark = pytest.mark.slow


def test_refused_token_is_a_vk_error_and_one_line_without_the_token(tmp_path, monkeypatch):
    with FakeVk([make_item(1, 1_600_000_000, "А\n@\nБ")]) as vk:
        config = process_config(tmp_path, vk)
        env = {**secrets(), "VK_TOKEN": "stolen-or-expired"}
        done = run("scraper", "--config", str(config), env=env, timeout=60)
        monkeypatch.setenv("VK_TOKEN", "stolen-or-expired")
        with pytest.raises(VkError, match="vk.token was refused"):  # the library's own error
            scrape(load_config(config))
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: vk.token was refused"), done.stderr
    assert "Traceback" not in done.stderr and "stolen-or-expired" not in done.stderr
    assert done.stdout == ""
