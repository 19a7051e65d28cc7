"""The steps both kinds of GPU run are made of (gpu_run.py: one stage, gpu_mix.py: two): the
generator as a child process and its result lines, the resume check, and a model packed into
what the device tool returns (and unpacked back here)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PART_BYTES = 15 * 2**20  # under the device tool's 16 MiB a file
MAX_FILES = 8  # the device tool returns at most this many files
MAX_BYTES = 64 * 2**20  # and at most this much in all
BESIDE_MODEL = 3  # files back beside the model's parts: run.log, summary.json, feed.txt
TINY = ["--tokenizer", "char", "--layers", "1", "--hidden", "32", "--embed", "8",
        "--batch-size", "8", "--seq-len", "32", "--eval-every", "20", "--log-every", "10"]


def run_generator(args: list[str], log: Path, timeout: float | None = None,
               launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    """`python -m generator ARGS` from the repository root; output appended to the log."""
    cmd = (launcher or [sys.executable, "-m"]) + ["generator", *args]
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        started = time.monotonic()
        done = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=fh, text=True,
                              timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        fh.write(done.stdout)
        fh.write(f"[exit {done.returncode} after {time.monotonic() - started:.1f} s]\n")
    return done


def resume_check(work: Path, corpus: Path, device: str, log: Path,
                  precision: list[str]) -> dict:
    """Straight run vs killed-and-resumed run at a tiny size: same step, same weights?"""
    from generator.modeldir import ModelDirError, load_checkpoint  # noqa: PLC0415 - torch

    common = ["train", "--device", device, "--corpus", str(corpus), "--max-steps", "60", *TINY,
              *precision]
    straight, killed = work / "straight", work / "killed"
    run_generator([*common, "--out", str(straight)], log, timeout=300)
    cmd = [sys.executable, "-m", "generator", *common, "--out", str(killed)]
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"\n$ {' '.join(cmd)}   (killed after its first checkpoint)\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=fh, stderr=fh)
        deadline = time.monotonic() + 300
        while not (killed / "checkpoint.pt").exists() and proc.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        was_running = proc.poll() is None
        if was_running:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    run_generator([*common, "--out", str(killed), "--resume"], log, timeout=300)
    result: dict = {"killed_mid_run": was_running}
    try:
        a, b = load_checkpoint(straight), load_checkpoint(killed)
    except ModelDirError as exc:
        return {**result, "ok": False, "error": str(exc)[:200]}
    diff = max((a["model"][k].float() - b["model"][k].float()).abs().max().item()
               for k in a["model"])
    result.update(step=[a["step"], b["step"]], max_weight_diff=diff,
                  bit_identical=diff == 0.0)
    # cuDNN's LSTM backward is not bit-deterministic: there the check is that the run carried
    # on from its state (same step count, weights that agree to training noise).
    result["ok"] = a["step"] == b["step"] and (diff == 0.0 or (device == "cuda" and diff < 0.05))
    return result


def pack(model_dir: Path, dest: Path) -> list[str]:
    """The files of model_dir as one tar cut into files of ≤ PART_BYTES, named
    dest/model.tar.partNNofMM (part NN of MM: unpack finds a missing one)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:  # bf16 weights hardly compress
        for path in sorted(p for p in model_dir.iterdir() if p.is_file()):
            tar.add(path, arcname=path.name)
    data = buffer.getvalue()
    pieces = [data[i : i + PART_BYTES] for i in range(0, len(data), PART_BYTES)]
    if len(pieces) + BESIDE_MODEL > MAX_FILES or len(data) > MAX_BYTES - 2**20:
        raise SystemExit(f"the model packs into {len(data) >> 20} MiB, {len(pieces)} parts: more "
                         "than the device tool returns; train a smaller model")
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for n, piece in enumerate(pieces):
        name = f"model.tar.part{n:02d}of{len(pieces):02d}"
        (dest / name).write_bytes(piece)
        written.append(name)
    return written


def unpack(parts: Path, dest: Path) -> None:
    """Inverse of pack: model.tar.part00ofMM, part01ofMM, … joined and unpacked into dest."""
    pieces = sorted(parts.glob("model.tar.part[0-9][0-9]of[0-9][0-9]"))
    if not pieces:
        raise SystemExit(f"error: no model.tar.partNNofMM files in {parts}: pass the folder "
                         "that came back as OUT/model")
    total = int(pieces[0].name[-2:])
    if [p.name for p in pieces] != [f"model.tar.part{n:02d}of{total:02d}" for n in range(total)]:
        raise SystemExit(f"error: the parts in {parts} do not make a whole model (expected "
                         f"{total}, found {len(pieces)}): fetch them all again")
    dest.mkdir(parents=True, exist_ok=True)
    data = b"".join(p.read_bytes() for p in pieces)
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(dest, filter="data")
    except tarfile.TarError as exc:
        raise SystemExit(f"error: the parts in {parts} do not make a whole model ({exc}): "
                         "fetch them all again") from None
