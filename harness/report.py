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
    """The CPU with its widest matrix instructions (AMX, AVX-512 bf16, AVX-512 or AVX2: the
    machines here differ in them), torch and its threads, and the load average now."""
    info = Path("/proc/cpuinfo").read_text()
    cpu = next((ln.split(":", 1)[1].strip() for ln in info.splitlines()
                if ln.startswith("model name")), "?")
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines()
                      if ln.startswith("flags")), []))
    widest = next((name for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 bf16"),
                                           ("avx512f", "AVX-512, no bf16"), ("avx2", "AVX2 only"))
                   if flag in flags), "no AVX2")
    return (f"{cpu} ({widest}), torch {torch.__version__}, "
            f"torch threads: {torch.get_num_threads()}, "
            f"load average {open('/proc/loadavg').read().split()[0]} at start")
