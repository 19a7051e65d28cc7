"""bench/gpu_run.py, the one-call GPU run, at a tiny size on the CPU; the generator's GPU deps."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from common.corpus import write_corpus
from tests.paths import REPO
from tests.test_generator import bugurts

pytestmark = pytest.mark.slow  # trains four tiny models in child processes

# What the GPU machine has not: the generator must run without the bot's and scraper's packages.
BOT_ONLY = ("telegram", "apscheduler", "vk_api", "matplotlib", "sqlalchemy")


def test_gpu_run_trains_checks_resume_and_torchrun_and_packs_a_loadable_model(tmp_path):
    corpus = tmp_path / "corpus.txt"
    write_corpus(corpus, bugurts(80))
    out = tmp_path / "OUT"
    # The bot's packages are hidden from every child (sitecustomize runs first in each).
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in BOT_ONLY))
    env = {"PYTHONPATH": str(hide), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "bench/gpu_run.py", "run", "--out", str(out), "--corpus", str(corpus),
         "--minutes", "0.05", "--device", "cpu", "--", "--tokenizer", "char", "--layers", "1",
         "--hidden", "16",
         "--embed", "8", "--batch-size", "8", "--seq-len", "16", "--eval-every", "10"],
        cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + (out / "run.log").read_text()[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train"]["ok"] and summary["train"]["chars"] > 0
    assert summary["resume"]["killed_mid_run"] is True
    assert summary["resume"]["bit_identical"] is True  # on the CPU a resume is exact
    assert summary["torchrun"]["ok"]
    parts = sorted(p.name for p in (out / "model").iterdir())
    assert parts == summary["files"] and "model.pt.part00" in parts
    assert len(parts) + 2 <= 8  # what the device tool returns

    model_dir = tmp_path / "unpacked"
    subprocess.run([sys.executable, "bench/gpu_run.py", "unpack", str(out / "model"),
                    str(model_dir)], cwd=REPO, check=True, capture_output=True, timeout=60)
    sample = subprocess.run([sys.executable, "-m", "generator", "sample", "--model",
                             str(model_dir), "-n", "1", "--seed", "1"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    # It loads and samples; a model trained for 3 seconds may write nothing the gate passes.
    assert sample.returncode == 0 or sample.stderr.startswith(
        "error: no sample passed the quality gate"), sample.stderr
    evaluated = subprocess.run([sys.executable, "-m", "generator", "eval", "--model",
                                str(model_dir), "--text", str(corpus)], cwd=REPO,
                               capture_output=True, text=True, timeout=120, check=True)
    assert evaluated.stdout.strip().splitlines()[-1].startswith("bits_per_char: ")


def test_split_and_join_parts_round_trip_files_larger_than_a_part(tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "bench"))
    import gpu_run

    monkeypatch.setattr(gpu_run, "PART_BYTES", 1000)
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.pt").write_bytes(bytes(range(256)) * 9)  # 2304 bytes: three parts
    (src / "metrics.jsonl").write_text("{}\n")
    written = gpu_run.split_parts(src, tmp_path / "parts")
    assert written == ["metrics.jsonl.part00", "model.pt.part00", "model.pt.part01",
                       "model.pt.part02"]
    assert max((tmp_path / "parts" / n).stat().st_size for n in written) <= 1000
    gpu_run.join_parts(tmp_path / "parts", tmp_path / "joined")
    for name in ("model.pt", "metrics.jsonl"):
        assert (tmp_path / "joined" / name).read_bytes() == (src / name).read_bytes()
