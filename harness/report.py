"""What the scripts of bench/ and tools/ report beside their figures: the machine they ran on,
and the section of BENCHMARKS.md a standing benchmark rewrites."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from common.atomic import write_text_atomic
from harness.paths import REPO

REPORT = REPO / "BENCHMARKS.md"


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section between <!-- name --> markers of BENCHMARKS.md."""
    text = REPORT.read_text(encoding="utf-8") if REPORT.exists() else "# Benchmarks\n"
    block = f"<!-- {name} -->\n{body.strip()}\n<!-- /{name} -->"
    pattern = re.compile(f"<!-- {name} -->.*?<!-- /{name} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text}\n{block}\n"
    write_text_atomic(REPORT, text)
    print(body)


def machine() -> str:
    """The CPU (with or without AMX), torch and its threads, and the load average now."""
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), "?")
    amx = "AMX" if "amx_bf16" in Path("/proc/cpuinfo").read_text() else "no AMX"
    return (f"{cpu} ({amx}), torch {torch.__version__}, torch threads: {torch.get_num_threads()}, "
            f"load average {open('/proc/loadavg').read().split()[0]} at start")
