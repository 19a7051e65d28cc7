"""Generator benchmarks, measured side by side in one run; each writes its section of BENCHMARKS.md.

    .venv/bin/python bench/bench_generator.py train-speed [--seconds 60]
    .venv/bin/python bench/bench_generator.py generate [--model DIR ...]
    .venv/bin/python bench/bench_generator.py quality --model DIR --corpus data/bugurt/corpus.txt
    .venv/bin/python bench/bench_generator.py shakespeare --minutes 10

Training speed compares this trainer (bf16 autocast, fused AdamW, 128×128 batches) with a beginner's
loop (batch 1, fp32) and plain fp32 `nn.LSTM` training at the same batch; generation compares the
hand-written cell (FastLSTM) with calling `nn.LSTM` once per character. Data-driven sections skip
with a message when ../shared/data is absent.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from bench.ngram import corpus_bpc, kneser_ney_probs  # noqa: E402
from common.atomic import write_text_atomic  # noqa: E402
from common.corpus import format_posts, parse_posts  # noqa: E402
from generator.model import FastLSTM, LSTMModel, ModelConfig  # noqa: E402
from generator.modeldir import load_model  # noqa: E402
from generator.result import BITS_PER_CHAR, TRAIN_SUMMARY, read_result  # noqa: E402
from generator.sample import Generator  # noqa: E402
from generator.tokenizer import END, UNK  # noqa: E402
from harness.paths import SHARED_DATA  # noqa: E402
from harness.report import machine, write_section  # noqa: E402

COMMAND = "    .venv/bin/python bench/bench_generator.py "


# ----- training speed -----
def _train_rate(model: LSTMModel, batch: int, seq: int, seconds: float, bf16: bool,
                fused: bool) -> float:
    """Characters per second of full training steps (forward, backward, clip, Adam)."""
    V = model.config.vocab_size
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=fused, foreach=not fused)
    x, y = torch.randint(0, V, (batch, seq)), torch.randint(0, V, (batch, seq))
    state, chars, spent, step = None, 0, 0.0, 0
    while spent < seconds:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, state = model(x, state)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        state = tuple(s.detach() for s in state)
        if step >= 2:  # the first steps create oneDNN primitives
            spent += time.perf_counter() - started
            chars += batch * seq
        step += 1
    return chars / spent


def _train_flops_per_char(cfg: ModelConfig) -> float:
    """Multiply-add FLOPs of one training character: forward products ×3 (forward + backward)."""
    H, D, L, V = cfg.hidden, cfg.embed, cfg.layers, cfg.vocab_size
    forward = 2 * (4 * H * (D + H) + (L - 1) * 4 * H * 2 * H + H * V)
    return 3.0 * forward


def _bf16_gemm_rate(m: int, k: int, n: int, seconds: float = 3.0) -> float:
    """FLOP/s of a bf16 (m×k)·(k×n) product on this machine (oneDNN/AMX), best of a few runs."""
    a, b = torch.randn(m, k).bfloat16(), torch.randn(k, n).bfloat16()
    best, spent = math.inf, 0.0
    while spent < seconds:
        started = time.perf_counter()
        a @ b
        took = time.perf_counter() - started
        best, spent = min(best, took), spent + took
    return 2 * m * k * n / best


def train_speed(args) -> None:
    where = machine()  # the load average before the run
    cfg = ModelConfig(vocab_size=160, embed=64, hidden=512, layers=2, dropout=0.1)
    threads = torch.get_num_threads()
    # (name, batch, seq, bf16, fused AdamW, one thread, dropout)
    runs = [("this trainer: bf16 autocast, fused AdamW, batch 128×128", 128, 128, True, True, 0,
             cfg.dropout),
            ("the same without dropout", 128, 128, True, True, 0, 0.0),
            ("the same on 1 thread", 128, 128, True, True, 1, cfg.dropout),
            ("the same, batch 256×64", 256, 64, True, True, 0, cfg.dropout),
            ("the same, batch 1024×16", 1024, 16, True, True, 0, cfg.dropout),
            ("plain fp32 nn.LSTM, batch 128×128, foreach AdamW", 128, 128, False, False, 0,
             cfg.dropout),
            ("beginner loop: batch 1×128, fp32", 1, 128, False, False, 0, cfg.dropout)]
    rows = []
    for name, batch, seq, bf16, fused, one_thread, dropout in runs:
        torch.set_num_threads(1 if one_thread else threads)
        torch.manual_seed(0)
        model = LSTMModel(dataclasses.replace(cfg, dropout=dropout))
        rate = _train_rate(model, batch, seq, args.seconds, bf16, fused)
        rows.append((name, rate))
        print(f"{name}: {rate:,.0f} chars/s", file=sys.stderr)
    base = rows[0][1]
    table = "\n".join(f"| {n} | {r:,.0f} | {base / r:.1f}× |" for n, r in rows)
    torch.set_num_threads(threads)
    flops = _train_flops_per_char(cfg)
    step_rate = _bf16_gemm_rate(128, 512, 2048)  # one recurrent step of batch 128
    big_rate = _bf16_gemm_rate(16384, 1024, 2048)  # a whole window's input products at once
    ceiling = f"""A training character is {flops / 1e6:.1f} MFLOP of matrix products (3 × forward).
Measured bf16 matrix-product rates here ({threads} threads): {step_rate / 1e9:,.0f} GFLOP/s for the
recurrent step's 128×512·512×2048, {big_rate / 1e9:,.0f} GFLOP/s for a large 16384×1024·1024×2048.
If every FLOP ran at the large product's rate the ceiling would be {big_rate / flops:,.0f} chars/s;
this trainer reaches {base * flops / 1e9:,.0f} GFLOP/s ({base * flops / big_rate:.0%} of it)."""
    write_section("train-speed", f"""
## Training speed, 2×512 LSTM (V=160, D=64, dropout {cfg.dropout:g}), CPU

{COMMAND}train-speed --seconds {args.seconds:g}

Machine: {where}. Each variant trains {args.seconds:g} s (after 2 warm-up steps), one after
another in one process; all but "1 thread" use {threads} threads. More rows a batch make the
recurrent products bigger and faster, but a batch of more characters is one update: in a fixed
time the small-batch recipe learns more (the bugurt recipe below uses 32×64).

| variant | chars/s | this trainer is faster by |
|---|---:|---:|
{table}

{ceiling}
""")


# ----- generation speed -----
def _nn_lstm_post(model: LSTMModel, rows: int, steps: int) -> float:
    """Seconds to sample `steps` tokens for `rows` streams calling nn.LSTM once per token."""
    token = torch.full((rows, 1), END)
    state = None
    started = time.perf_counter()
    with torch.inference_mode():
        for _ in range(steps):
            logits, state = model(token, state)
            logits[:, -1, END] = -1e9  # run the full length, like the FastLSTM measurement
            token = torch.multinomial(logits[:, -1].softmax(-1), 1)
    return time.perf_counter() - started


def _generation_times(model_dir: str, repeats: int) -> tuple[list[str], str]:
    """Table rows (one post, best-of-16) and the end-to-end line for one model directory."""
    gen = Generator.load(model_dir)  # sets 1 torch thread: both variants run on one core
    model = gen.model
    gen.cell = FastLSTM(model, banned=(UNK, END))  # every sample runs to the 500-character cap
    gen.start_logits = gen.start_logits.clone()
    gen.start_logits[:, END] = -math.inf
    rng = torch.Generator().manual_seed(0)
    cfg, rows_out = model.config, []
    for rows, task in ((1, "one post"), (16, "best-of-16 (16 in parallel)")):
        with torch.inference_mode():
            gen.sample(rows, "", gen.temperature, None, None, rng)  # warm-up
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                texts, _ = gen.sample(rows, "", gen.temperature, None, None, rng)
                times.append(time.perf_counter() - started)
        # nn.LSTM takes as many steps as the sampler did: 500 for characters, ~180 for subwords
        steps = max(len(gen.vocab.encode(text)) for text in texts)
        _nn_lstm_post(model, rows, 20)
        fast, med = min(times), sorted(times)[len(times) // 2]
        slow = min(_nn_lstm_post(model, rows, steps) for _ in range(2))
        size = (f"{cfg.layers}×{cfg.hidden} {gen.vocab.kind}, {steps} steps"
                + ("" if gen.cell.int8 else " (fp32: no fbgemm)"))
        rows_out.append(f"| {size} | {task} | {fast:.3f} | {med:.3f} "
                        f"| {slow:.3f} | {slow / fast:.1f}× |")
    full = Generator.load(model_dir)
    took, returned = [], 0
    for seed in range(1, repeats + 1):
        started = time.perf_counter()
        returned += len(full.generate(n=1, seed=seed, candidates=16))
        took.append(time.perf_counter() - started)
    median = sorted(took)[len(took) // 2]
    line = (f"- {cfg.layers}×{cfg.hidden} {gen.vocab.kind} (`{model_dir}`): median {median:.3f} s, "
            f"best {min(took):.3f} s over seeds 1–{repeats}; {returned} of {repeats} calls "
            "returned a post")
    return rows_out, line


def generate(args) -> None:
    where = machine()  # the load average before the run
    rows, lines = [], []
    for model_dir in args.model:
        model_rows, line = _generation_times(model_dir, args.repeats)
        rows += model_rows
        lines.append(line)
    table, ends = "\n".join(rows), "\n".join(lines)
    write_section("generate", f"""
## Generation time, 500 characters

{COMMAND}generate --model {' '.join(args.model)} --repeats {args.repeats}

Machine: {where}. FastLSTM (hand-written cell, int8 matrix products, one thread) vs `nn.LSTM`
called once per token (a character, or a subword unit) over the same weights, for as many steps
as the sampler took; END is masked so every sample runs the full 500 characters. Each model
samples at its default temperature.

| model | task | FastLSTM best s | FastLSTM median s | nn.LSTM per token s | speed-up |
|---|---|---:|---:|---:|---:|
{table}

`Generator.generate(n=1, candidates=16)` end to end (sampling until END, quality gate, ranking):
{ends}
""")


# ----- quality -----
def quality(args) -> None:
    corpus = Path(args.corpus)
    if not corpus.exists():
        print(f"skip: {corpus} not found (build it with tools/bugurt_corpus.py)")
        return
    val = corpus.with_suffix(".val.txt")
    out = subprocess.run([sys.executable, "-m", "generator", "eval", "--model", args.model,
                          "--text", str(val)], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    lstm = read_result(out, BITS_PER_CHAR)[BITS_PER_CHAR]
    ngram = corpus_bpc(corpus, args.orders)
    best_order = min(ngram, key=ngram.get)
    mix = _interpolated(args.model, corpus, best_order)
    orders = " ".join(map(str, args.orders))
    rows = "\n".join(f"| character {n}-gram, interpolated modified Kneser–Ney | {b:.4f} | "
                     f"{lstm / b:.3f} |" for n, b in ngram.items())
    write_section("quality", f"""
## Validation bits per character, bugurt corpus ({val}, newest 10% of posts)

{COMMAND}quality --model {args.model} --corpus {args.corpus} --orders {orders}

| model | val bpc | LSTM / this |
|---|---:|---:|
| LSTM {args.model} (`python -m generator eval`) | {lstm:.4f} | 1.000 |
{rows}

Ratio to the best n-gram (order {best_order}): **{lstm / ngram[best_order]:.3f}** (target ≤ 0.90).

Not the shipped model, for reference: the per-character mixture λ·LSTM + (1−λ)·{best_order}-gram
(λ chosen on the first half of the validation stream, scored on the second half) gives
{mix[1]:.4f} bpc on that half against {mix[2]:.4f} for the LSTM and {mix[3]:.4f} for the n-gram
alone there (λ = {mix[0]:.1f}; ratio to the n-gram {mix[1] / mix[3]:.3f}).
""")


def _interpolated(model_dir: str, corpus: Path, order: int) -> tuple[float, ...]:
    """(λ, mixture bpc, LSTM bpc, n-gram bpc) on the second half of the validation stream."""
    import numpy as np  # noqa: PLC0415

    from common.corpus import read_posts  # noqa: PLC0415

    model, vocab, _ = load_model(model_dir)
    train_posts = read_posts(corpus.with_suffix(".train.txt"))
    val_posts = read_posts(corpus.with_suffix(".val.txt"))
    val = vocab.encode_posts(val_posts)
    kn = kneser_ney_probs(vocab.encode_posts(train_posts).numpy(), val.numpy(), order, len(vocab))
    with torch.inference_mode():  # one sequential row, so positions line up with the n-gram's
        probs, state = [], None
        for s in range(0, len(val) - 1, 512):
            logits, state = model(val[None, s : min(s + 512, len(val) - 1)], state)
            target = val[s + 1 : s + 1 + logits.shape[1]]
            probs.append(logits[0].softmax(-1).gather(1, target[:, None])[:, 0])
        lstm = torch.cat(probs).double().numpy()
    half = len(lstm) // 2
    chars = len(format_posts(val_posts)) / len(lstm)  # characters per predicted symbol

    def bpc(p: np.ndarray) -> float:
        return float(-np.log2(p).sum() / (len(p) * chars))

    lam = min(np.arange(0.1, 1.0, 0.1),
              key=lambda w: bpc(w * lstm[:half] + (1 - w) * kn[:half]))
    return (lam, bpc(lam * lstm[half:] + (1 - lam) * kn[half:]), bpc(lstm[half:]),
            bpc(kn[half:]))


# ----- tiny shakespeare -----
def shakespeare(args) -> None:
    where = machine()  # the load average before the run
    source = SHARED_DATA / "tinyshakespeare" / "input.txt"
    if not source.exists():
        print(f"skip: {source} not found (shared data is present in CI only)")
        return
    text = source.read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)
    work = REPO / "runs" / "shakespeare"
    work.mkdir(parents=True, exist_ok=True)
    # Blank lines separate speeches: they become the END symbol like post separators do.
    for name, part in (("corpus.train.txt", text[:cut]), ("corpus.val.txt", text[cut:])):
        write_text_atomic(work / name, format_posts(parse_posts(part)))
    write_text_atomic(work / "corpus.txt", format_posts(parse_posts(text)))
    out = work / time.strftime("model-%H%M%S")
    cmd = [sys.executable, "-m", "generator", "train", "--corpus", str(work / "corpus.txt"),
           "--out", str(out), "--minutes", str(args.minutes), *args.train_args]
    summary = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
    line = summary.stdout.strip().splitlines()[-1]
    bpc = read_result(summary.stdout, TRAIN_SUMMARY)["best_val_bpc"]
    extra = " ".join(args.train_args)
    write_section("shakespeare", f"""
## tiny-shakespeare, first 90% train / last 10% validation, CPU

{COMMAND}shakespeare --minutes {args.minutes:g} -- {extra}

Machine: {where}.
`{line}`

Validation: **{bpc:.4f} bits/char = {bpc * 0.693147:.4f} nats/char** after {args.minutes:g}
minutes of training steps (nanoGPT's Transformer: 1.4697 nats on an A100; target 1.40 after
30 CPU minutes).
Blank lines count as one END symbol spread over their characters (the contract's eval rule).
""")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("train-speed")
    s.add_argument("--seconds", type=float, default=60)
    g = sub.add_parser("generate")
    g.add_argument("--model", nargs="+", default=["generator/bundled"], help="model directories")
    g.add_argument("--repeats", type=int, default=5)
    q = sub.add_parser("quality")
    q.add_argument("--model", default="generator/bundled")
    q.add_argument("--corpus", default="data/bugurt/corpus.txt")
    q.add_argument("--orders", type=int, nargs="+", default=[5, 7, 9, 11])
    t = sub.add_parser("shakespeare")
    t.add_argument("--minutes", type=float, default=10)
    t.add_argument("train_args", nargs="*", help="extra `generator train` options after --")
    args = p.parse_args()
    {"train-speed": train_speed, "generate": generate, "quality": quality,
     "shakespeare": shakespeare}[args.command](args)


if __name__ == "__main__":
    main()
