"""`gpu_run.py run --mixture`: pretrain on the Russian mixture, fine-tune on the bugurts, in the
base model's units, then measure the result against the base and write a feed from it.

Each step is timed in OUT/summary.json, which is rewritten after every step (a call cut short
still returns what was done), and logged to OUT/run.log:
1. bf16: an LSTM forward and backward under bf16 autocast on the device, against fp32; where it
   fails, both stages train in fp32 (--no-bf16); the torch, CUDA and cuDNN versions are reported;
2. the resume check of gpu_steps.py, in a thread beside step 3 (waited for RESUME_SECONDS at most);
3. the mixture: ru-pretrain upper-cased plus the bugurt training posts repeated (`mixture`),
   tokenized by the base's units in parallel processes;
4. the recipe: a throughput probe of each size in turn, largest first, taking the first whose
   stage one reads the mixture at least MIN_PASSES times and whose bf16 weights come back; the
   dropouts follow the passes each stage makes (awd_dropouts);
5. stage one: a new model in the base's units trained on the mixture for STAGE_ONE_SHARE of
   --minutes, validated on the bugurt validation split. It runs in this process: `generator
   train` would spend minutes building a novelty index of 84M characters that nothing reads;
6. stage two: `generator train --init-from` stage one on the bugurt corpus for the rest;
7. bits per character on the bugurt validation split of the result and of the base;
8. the result exported with bf16 weights and packed into OUT/model (gpu_steps.pack);
9. `generator feed` of the result into OUT/feed.txt (last: the model is back even if it runs out).
"""

from __future__ import annotations

import gc
import json
import lzma
import math
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from common.corpus import format_posts, parse_posts, read_split  # noqa: E402
from generator import modeldir  # noqa: E402
from generator.evaluate import autocast_context, text_bpc  # noqa: E402
from generator.model import LSTMModel, ModelConfig  # noqa: E402
from generator.modeldir import tokenizer_from  # noqa: E402
from generator.result import TRAIN_SUMMARY, read_result  # noqa: E402
from generator.train import Streams, TrainConfig, Trainer, batch_loss  # noqa: E402
from tools.gpu_steps import pack, resume_check, run_generator  # noqa: E402

SIZES = "3x1024x400,3x768x400,2x768x400,2x512x256"  # layers x hidden x embed, largest first
BATCH = "256x128"  # rows x TBPTT window: the single-stage GPU recipe's
STAGE_ONE_SHARE = 0.7  # of --minutes; the CPU probe of ru-pretrain gave 38 of 53 minutes
MIN_PASSES = 1.0  # a size that cannot read the mixture once in stage one is too slow for it
LR = (2e-3, 1e-3)  # peak lr of stage one (the GPU recipe's) and two (generator's warm start)
EVAL_SECONDS = 20  # training seconds between evaluations (each also writes checkpoint.pt)
# Bytes of bf16 weights that come back: the device tool returns 64 MiB; the rest is for the
# novelty index, the metrics, the log, the summary and the feed.
WEIGHT_BYTES = 56 * 2**20
# AWD-LSTM's dropouts, reached at FULL_AWD_PASSES passes over a stage's text, scaled by
# log(1 + passes) below. At the bundle's 16.5 passes that gives weight-drop 0.34 and locked
# dropout 0.27: the bundle's 0.25 and 0.2 there began to overfit (MODEL_CARD.md); one pass
# gives 0.08 and 0.07, since a first pass over a text cannot overfit it.
AWD = {"weight_drop": 0.5, "locked_dropout": 0.4, "embed_dropout": 0.1}
FULL_AWD_PASSES = 64
POOL_MIN_CHARS = 4_000_000  # texts shorter than this are tokenized in this process
RESUME_SECONDS = 120  # the resume check's wait after the mixture; then the run goes on without


@dataclass(frozen=True)
class Size:
    layers: int
    hidden: int
    embed: int

    @classmethod
    def parse(cls, text: str) -> Size:
        layers, hidden, embed = (int(v) for v in text.lower().split("x"))
        return cls(layers, hidden, embed)

    def __str__(self) -> str:
        return f"{self.layers}x{self.hidden}x{self.embed}"


def awd_dropouts(passes: float) -> dict[str, float]:
    share = min(1.0, math.log2(1 + max(0.0, passes)) / math.log2(1 + FULL_AWD_PASSES))
    return {name: round(value * share, 3) for name, value in AWD.items()}


def ema_decay(steps: float) -> float:
    """An average over about a twentieth of the stage's steps (0.9 to 0.999)."""
    return round(min(0.999, max(0.9, 1 - 20 / max(steps, 1))), 4)


def mixture(train: list[str], bugurt_repeats: int, folder: Path) -> list[str]:
    """ru-pretrain's posts (folder's literature.txt.xz and informal.txt.xz), upper-cased as the
    bugurts are (lower-case general units would learn two spellings of every word), and the
    bugurt training posts repeated; shuffled with seed 0."""
    general = []
    for name in ("literature.txt.xz", "informal.txt.xz"):
        with lzma.open(folder / name, "rt", encoding="utf-8") as f:
            general += [p.upper() for p in parse_posts(f.read())]
    mix = general + train * bugurt_repeats
    random.Random(0).shuffle(mix)
    return mix


def run_mixture(out: Path, corpus: Path, pretrain: Path, base: Path, minutes: float,
                device: str, opts: dict) -> dict:
    """The whole call; opts: sizes, batch, bugurt_repeats, feed_posts, feed_searches."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / "run.log"
    summary: dict = {"mode": "mixture", "device": device, "minutes": minutes, "seconds": {},
                     "base": str(base), "ok": False}
    dev = torch.device(device)
    with _Step(summary, out, "bf16"):
        summary["bf16"] = bf16_check(dev)
    bf16 = summary["bf16"]["ok"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        resume = _Background(lambda: resume_check(work / "resume", corpus, device,
                                                  work / "resume.log", [] if bf16 else
                                                  ["--no-bf16"]))
        with _Step(summary, out, "mixture"):
            vocab = modeldir.tokenizer_of(modeldir.read_model(base), base)
            train, val, _ = read_split(corpus)
            mix = mixture(train, opts["bugurt_repeats"], folder=pretrain)
            mix_ids = encode_parallel(vocab.stored(), mix)
            mix_chars = sum(map(len, mix))
            cpt = mix_chars / max(1, len(mix_ids) - 1 - len(mix))  # characters a token
            summary["mixture"] = {"documents": len(mix), "chars": mix_chars,
                                  "tokens": len(mix_ids), "chars_per_token": round(cpt, 3),
                                  "bugurt_chars": sum(map(len, train)) * opts["bugurt_repeats"]}
        summary["resume"] = resume.join(RESUME_SECONDS)
        _append(log, work / "resume.log")
        with _Step(summary, out, "recipe"):
            recipe = choose_recipe(opts["sizes"], opts["batch"], len(vocab), dev, bf16,
                                   minutes, mix_chars, sum(map(len, train)), cpt)
            summary["recipe"] = recipe
        with _Step(summary, out, "stage_one"):
            streams = Streams(mix_ids, vocab.encode_posts(val), len(format_posts(mix)),
                              len(format_posts(val)), vocab.stored(), cpt)
            del mix
            summary["stage_one"] = stage_one(work / "stage1", streams, recipe, dev, bf16)
        with _Step(summary, out, "stage_two"):
            summary["stage_two"] = stage_two(work, corpus, recipe, device, bf16, log)
        if not summary["stage_two"]["ok"]:  # run.log says why; nothing to measure or pack
            return summary
        result = work / "stage2"
        with _Step(summary, out, "bpc"):
            text = format_posts(val)
            summary["bpc"] = {"result": bits_per_char(result, text, dev),
                              "base": bits_per_char(base, text, dev)}
            summary["bpc"]["gain"] = summary["bpc"]["base"] - summary["bpc"]["result"]
        with _Step(summary, out, "export"):
            exported = work / "export"
            run_generator(["export", "--model", str(result), "--out", str(exported)], log)
            summary["units_of_base"] = (modeldir.read_model(exported)["vocab"]
                                        == modeldir.read_model(base)["vocab"])
            summary["files"] = pack(exported, out / "model")
        summary["ok"] = bool(summary["resume"]["ok"] and summary["stage_one"]["ok"]
                             and summary["stage_two"]["ok"] and summary["units_of_base"])
        with _Step(summary, out, "feed"):
            summary["feed"] = write_feed(exported, out / "feed.txt", opts, work, log)
    return summary


class _Step:
    """Times a step into summary["seconds"] and rewrites OUT/summary.json after it."""

    def __init__(self, summary: dict, out: Path, name: str):
        self.summary, self.out, self.name = summary, out, name

    def __enter__(self) -> None:
        self.started = time.monotonic()
        print(f"[gpu_mix] {self.name} ...", file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        self.summary["seconds"][self.name] = round(time.monotonic() - self.started, 1)
        (self.out / "summary.json").write_text(json.dumps(self.summary, indent=1),
                                               encoding="utf-8")


class _Background(threading.Thread):
    """Runs a function beside the main thread; join() returns its result (or its error)."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.result = fn, None
        self.start()

    def run(self) -> None:
        try:
            self.result = self.fn()
        except Exception as exc:  # noqa: BLE001 - reported in the summary, the run goes on
            self.result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}

    def join(self, timeout: float | None = None) -> dict:
        super().join(timeout)
        if self.is_alive():
            return {"ok": False, "error": f"still running {timeout:g} s after the mixture"}
        return self.result


def _append(log: Path, part: Path) -> None:
    if part.exists():
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(part.read_text(encoding="utf-8"))


def bf16_check(device: torch.device) -> dict:
    """What this torch does with an LSTM under bf16 autocast: the dtype cuDNN (or oneDNN) ran it
    in, its error against fp32, and whether a regularised training step's gradients are finite."""
    found: dict = {"torch": torch.__version__}
    if device.type == "cuda":
        found.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                     cudnn=torch.backends.cudnn.version(),
                     bf16_supported=torch.cuda.is_bf16_supported())
    torch.manual_seed(0)
    model = LSTMModel(ModelConfig(vocab_size=256, embed=32, hidden=64, layers=2,
                                  weight_drop=0.2, locked_dropout=0.2)).to(device)
    x = torch.randn(4, 32, 32, device=device)
    tokens = torch.randint(256, (4, 33), device=device)
    try:
        with torch.no_grad():
            ref, _ = model.lstm(x)
            with autocast_context(device, True):
                low, _ = model.lstm(x)
        loss, _ = batch_loss(model, tokens[:, :-1], tokens[:, 1:], None, True)
        loss.backward()
    except RuntimeError as exc:  # a cuDNN without bf16 RNNs
        return {**found, "ok": False, "error": str(exc).splitlines()[0][:300]}
    error = ((low.double() - ref.double()).norm() / ref.double().norm()).item()
    finite = all(bool(p.grad.isfinite().all()) for p in model.parameters() if p.grad is not None)
    # bf16 operands land at 1e-3 to 1e-2 of fp32; beyond 5e-2 the kernel is wrong for training
    return {**found, "lstm_dtype": str(low.dtype), "rel_error_vs_fp32": round(error, 6),
            "grads_finite": finite, "ok": finite and error < 5e-2}


_WORKER_VOCAB = None


def _init_worker(stored) -> None:
    global _WORKER_VOCAB  # noqa: PLW0603 - one tokenizer a worker process
    _WORKER_VOCAB = tokenizer_from(stored)


def _encode_chunk(posts: list[str]) -> np.ndarray:
    return _WORKER_VOCAB.encode_posts(posts).numpy()


def encode_parallel(stored, posts: list[str], workers: int | None = None) -> torch.Tensor:
    """Tokenizer.encode_posts of `posts` (END p1 END … END), in chunks over worker processes."""
    workers = workers or min(16, os.cpu_count() or 1)
    if workers == 1 or sum(map(len, posts)) < POOL_MIN_CHARS:
        return tokenizer_from(stored).encode_posts(posts)
    size = math.ceil(len(posts) / (workers * 4))
    chunks = [posts[i : i + size] for i in range(0, len(posts), size)]
    # spawn, not fork: the parent has CUDA up, which a forked child cannot use or share
    with multiprocessing.get_context("spawn").Pool(workers, _init_worker, (stored,)) as pool:
        parts = pool.map(_encode_chunk, chunks)
    # each chunk starts with END, which the chunk before already ends with
    return torch.from_numpy(np.concatenate([parts[0]] + [p[1:] for p in parts[1:]]))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def probe(size: Size, vocab_size: int, rows: int, seq: int, device: torch.device,
          bf16: bool, steps: int = 8) -> dict:
    """Seconds a training step of `size` takes at rows × seq (random tokens, dropouts on)."""
    torch.manual_seed(0)
    model = LSTMModel(ModelConfig(vocab_size, size.embed, size.hidden, size.layers,
                                  weight_drop=0.2, locked_dropout=0.2, embed_dropout=0.05,
                                  tie_weights=True)).to(device)
    params = model.num_params()
    if params * 2 > WEIGHT_BYTES:
        return {"size": str(size), "params": params, "fits": False}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x = torch.randint(vocab_size, (rows, seq + 1), device=device)
    state, warm = None, 2
    for i in range(warm + steps):
        if i == warm:
            _sync(device)
            started = time.perf_counter()
        loss, state = batch_loss(model, x[:, :-1], x[:, 1:], state, bf16)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    _sync(device)
    seconds = (time.perf_counter() - started) / steps
    del model, optimizer
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"size": str(size), "params": params, "fits": True, "step_seconds": seconds}


def choose_recipe(sizes: list[Size], batch: tuple[int, int], vocab_size: int,
                  device: torch.device, bf16: bool, minutes: float, mix_chars: int,
                  bugurt_chars: int, chars_per_token: float) -> dict:
    """The first size (largest first) that comes back and reads the mixture MIN_PASSES times in
    stage one; the smallest that comes back where none does. Dropouts from each stage's passes."""
    rows, seq = batch
    seconds = (minutes * 60 * STAGE_ONE_SHARE, minutes * 60 * (1 - STAGE_ONE_SHARE))
    probes, chosen = [], None
    for size in sizes:
        found = probe(size, vocab_size, rows, seq, device, bf16)
        probes.append(found)
        if not found["fits"]:
            continue
        chosen = found
        chars_per_sec = rows * seq * chars_per_token / found["step_seconds"]
        if chars_per_sec * seconds[0] / mix_chars >= MIN_PASSES:
            break
    if chosen is None:
        raise SystemExit(f"no size of {','.join(map(str, sizes))} fits the "
                         f"{WEIGHT_BYTES >> 20} MiB that come back: pass smaller --sizes")
    step = chosen["step_seconds"]
    passes = [rows * seq * chars_per_token * s / step / n
              for s, n in zip(seconds, (mix_chars, bugurt_chars), strict=True)]
    return {"size": chosen["size"], "params": chosen["params"], "vocab_size": vocab_size,
            "batch": [rows, seq],
            "step_seconds": round(step, 5), "chars_per_sec": round(rows * seq * chars_per_token
                                                                    / step),
            "minutes": [round(s / 60, 3) for s in seconds], "passes": [round(p, 2) for p in passes],
            "steps": [round(s / step) for s in seconds],
            "eval_every": max(1, round(EVAL_SECONDS / step)),
            "dropouts": [awd_dropouts(p) for p in passes],
            "ema_decay": [ema_decay(s / step) for s in seconds], "probes": probes}


def stage_one(model_dir: Path, streams: Streams, recipe: dict, device: torch.device,
              bf16: bool) -> dict:
    """A new model in the streams' units trained on the mixture; model.pt holds its best."""
    size = Size.parse(recipe["size"])
    rows, seq = recipe["batch"]
    every = recipe["eval_every"]
    config = TrainConfig(minutes=recipe["minutes"][0], batch_size=rows, seq_len=seq,
                         lr=LR[0], eval_every=every, log_every=max(1, every // 10), bf16=bf16,
                         ema_decay=recipe["ema_decay"][0])
    sizes = ModelConfig(recipe["vocab_size"], size.embed, size.hidden, size.layers,
                        tie_weights=True, **recipe["dropouts"][0])
    model_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(config, sizes, streams, model_dir, device)
    result = trainer.run()
    del trainer
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"ok": (model_dir / modeldir.MODEL_FILE).exists(), **result}


def stage_two(work: Path, corpus: Path, recipe: dict, device: str, bf16: bool,
              log: Path) -> dict:
    """`generator train --init-from` stage one on the bugurts; a run past its time is killed
    and keeps the best weights it saved."""
    rows, seq = recipe["batch"]
    every = recipe["eval_every"]
    minutes = recipe["minutes"][1]
    flags = {"--init-from": work / "stage1", "--corpus": corpus, "--out": work / "stage2",
             "--device": device, "--minutes": minutes, "--lr": LR[1], "--batch-size": rows,
             "--seq-len": seq, "--eval-every": every, "--log-every": max(1, every // 10),
             "--ema-decay": recipe["ema_decay"][1],
             **{"--" + k.replace("_", "-"): v for k, v in recipe["dropouts"][1].items()}}
    args = ["train", *(str(a) for kv in flags.items() for a in kv),
            *([] if bf16 else ["--no-bf16"])]
    try:
        done = run_generator(args, log, timeout=minutes * 60 * 1.5 + 120)
        result = {"exit": done.returncode, **read_result(done.stdout, TRAIN_SUMMARY)}
    except subprocess.TimeoutExpired:
        result = {"exit": "killed after its time"}
    result["ok"] = (work / "stage2" / modeldir.MODEL_FILE).exists()
    return result


def bits_per_char(model_dir: Path, text: str, device: torch.device) -> float:
    model, vocab, _ = modeldir.load_model(model_dir)
    return round(text_bpc(model.to(device), vocab, text), 6)


def write_feed(model_dir: Path, dest: Path, opts: dict, work: Path, log: Path) -> dict:
    """`generator feed -n feed_posts --seed 1` of the model, each post the best of feed_searches
    searches (config.yaml's, otherwise), into dest."""
    config = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    config["pool"]["channel_searches"] = opts["feed_searches"]
    (work / "feed.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    args = ["feed", "--model", str(model_dir), "-n", str(opts["feed_posts"]), "--seed", "1",
            "--config", str(work / "feed.yaml")]
    try:
        done = run_generator(args, log, timeout=opts["feed_seconds"])
    except subprocess.TimeoutExpired:
        return {"ok": False, "posts": 0, "error": f"past {opts['feed_seconds']} s"}
    dest.write_text(done.stdout, encoding="utf-8")
    posts = done.stdout.count("#neurobugurt")
    return {"ok": done.returncode == 0 and posts == opts["feed_posts"], "posts": posts,
            "searches": opts["feed_searches"], "exit": done.returncode}
