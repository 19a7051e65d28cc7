"""`python -m generator train|sample|feed|eval|export`. Stdout carries only results: posts
(`sample`, `feed`), `train_summary: chars=… seconds=… chars_per_sec=… best_val_bpc=…` (`train`) and
`bits_per_char: …` (`eval`, which the bot's retrain reads), both through generator/result.py;
logs and progress go to stderr."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import time
from dataclasses import fields
from pathlib import Path

import torch
import torch.distributed as dist

from common.cli import UserError, run_cli
from common.config import Config, load_config
from common.corpus import VAL_FRACTION, format_posts, read_split, split_paths
from common.log import setup_logging
from generator import modeldir
from generator.model import ModelConfig
from generator.novelty import NoveltyIndex
from generator.plan import KINDS, plan_run
from generator.result import BITS_PER_CHAR, TRAIN_SUMMARY, result_line
from generator.sampling import TEMPERATURE
from generator.tokenizer import Tokenizer
from generator.train import WARM_START_LR, Streams, TrainConfig, Trainer, leave_process_group
from generator.unigram import DEFAULT_VOCAB_SIZE

log = logging.getLogger("generator")


def main() -> int:
    args = _parser().parse_args()
    setup_logging()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = _config(args.config)
    commands = {"train": train, "sample": sample, "feed": feed, "eval": evaluate,
                "export": export}
    return commands[args.command](args, config)


def _config(path: str | None) -> Config:
    """--config must exist when given; the default config.yaml is optional."""
    if path is None:
        return load_config("config.yaml") if Path("config.yaml").exists() else Config()
    return load_config(path)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m generator", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model directory on a corpus")
    t.add_argument("--corpus", help="corpus file (default: corpus.path of the config)")
    t.add_argument("--out", help="model directory to write (default: runs/<date-time>)")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    t.add_argument("--resume", action="store_true", help="continue --out from checkpoint.pt")
    t.add_argument("--init-from", metavar="DIR",
                   help="start from the weights of this model directory (a new run: fresh "
                        f"optimizer and schedule, --lr {WARM_START_LR:g} unless given; the "
                        "corpus may add or drop characters; a subword model keeps its units)")
    t.add_argument("--tokenizer", choices=KINDS,
                   help="units the model reads and writes: sentencepiece unigram subwords "
                        "learned from the training posts (the default: 0.15 bpc ahead of "
                        "characters at equal compute, BENCHMARKS.md#decisions) or characters")
    t.add_argument("--vocab-size", type=int,
                   help=f"subword units of --tokenizer unigram (default "
                        f"{DEFAULT_VOCAB_SIZE})")
    for f in fields(ModelConfig):
        if f.name == "vocab_size":
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):  # --tie-weights / --no-tie-weights; absent: the default
            t.add_argument(flag, action=argparse.BooleanOptionalAction)
        else:
            t.add_argument(flag, type=type(f.default))
    for f in fields(TrainConfig):
        if f.name not in ("bf16", "init_from"):
            kind = int if f.name == "max_steps" else type(f.default)
            t.add_argument("--" + f.name.replace("_", "-"), type=kind)
    t.add_argument("--no-bf16", action="store_true", help="train in fp32")
    s = sub.add_parser("sample", help="print finished posts")
    s.add_argument("--model", help="model directory (default: generator.model_dir)")
    s.add_argument("-n", type=int, default=1)
    s.add_argument("--temperature", type=float,
                   help=f"default: the model's ({TEMPERATURE['unigram']:g} for unigram units, "
                        f"{TEMPERATURE['char']:g} for characters)")
    s.add_argument("--top-k", type=int)
    s.add_argument("--top-p", type=float)
    s.add_argument("--prime", help="text the posts start with (any case)")
    s.add_argument("--seed", type=int)
    s.add_argument("--candidates", type=int, default=16, help="samples drawn per round")
    f = sub.add_parser("feed", help="print posts as the bot makes and hands them out in a row")
    f.add_argument("--model", help="model directory (default: generator.model_dir)")
    f.add_argument("-n", type=int, default=10)
    f.add_argument("--seed", type=int, help="the same seed gives the same feed (default: random)")
    f.add_argument("--kind", choices=["channel", "reply"], default="channel",
                   help="the channel's posts (pool.channel_searches searches each) or the "
                        "replies' (pool.reply_searches)")
    f.add_argument("--save", action="store_true",
                   help="also write the posts into the model directory as its starter feed, "
                        "which a bot's pool hands out first")
    e = sub.add_parser("eval", help="bits per character of a model on a corpus file")
    e.add_argument("--model", help="model directory (default: generator.model_dir)")
    e.add_argument("--text", required=True, help="corpus file to score")
    x = sub.add_parser("export", help="copy a model directory with bf16 weights (for bundling)")
    x.add_argument("--model", required=True, help="trained model directory")
    x.add_argument("--out", required=True, help="directory to write (e.g. generator/bundled)")
    x.add_argument("--base", action="store_true",
                   help="a base model to fine-tune from (--init-from): model.pt and metrics "
                        "only, no novelty index (that of a pretraining mixture is tens of MB "
                        "and no use to a served model)")
    for sp in (t, s, f, e, x):
        sp.add_argument("--config", help="config file (default: config.yaml if present)")
        sp.add_argument("--threads", type=int, help="torch CPU threads")
    return p


def _read_corpus(path: Path) -> tuple[list[str], list[str]]:
    if not path.is_file():
        raise UserError(f"corpus {path} not found: run `python -m scraper` or pass --corpus FILE")
    try:
        train_posts, val_posts, from_files = read_split(path)
    except UnicodeDecodeError:
        raise UserError(f"corpus {path} is not UTF-8 text: pass a corpus file") from None
    if not from_files and all(p.is_file() for p in split_paths(path)):
        log.warning("the split files of %s do not hold its posts (stale?): splitting %s itself, "
                    "newest %d%% of posts for validation", path, path.name, VAL_FRACTION * 100)
    if not train_posts or not val_posts:
        raise UserError(f"corpus {path} holds fewer than 2 posts: scrape more before training")
    return train_posts, val_posts


def train(args, config: Config) -> int:
    corpus = Path(args.corpus or config.corpus.path)
    out = Path(args.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S"))
    train_posts, val_posts = _read_corpus(corpus)
    plan = plan_run(args, train_posts, corpus, out)
    if plan.checkpoint is None:  # progress lines of a run killed before its first checkpoint
        modeldir.clear_metrics(out)
    rank = _init_distributed(plan.device)
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        modeldir.save_novelty(out, NoveltyIndex.build(train_posts + val_posts))
    vocab = plan.tokenizer
    streams = _streams(vocab, train_posts, val_posts)
    try:
        trainer = Trainer(plan.train_config, plan.model_config, streams, out, plan.device)
    except ValueError as exc:
        raise UserError(f"cannot train on {corpus}: {exc}") from None
    if plan.source is not None:
        mine, theirs = vocab.shared_ids(modeldir.tokenizer_of(plan.source, args.init_from))
        trainer.warm_start(plan.source["model"], mine, theirs)
        log.info("starting from %s: %d of this corpus's %d symbols carry its weights",
                 args.init_from, len(mine), len(vocab))
    if plan.checkpoint is not None:
        trainer.resume(plan.checkpoint)
        if rank == 0:
            modeldir.trim_metrics(out, trainer.step)
    cfg = plan.train_config
    log.info("training %s params on %s tokens (%s characters), batch %d×%d, %s -> %s",
             f"{trainer.model.num_params():,}", f"{len(streams.train):,}",
             f"{sum(map(len, train_posts)):,}", cfg.batch_size, cfg.seq_len, corpus, out)
    summary = trainer.run()
    del trainer  # its DDP wrapper holds the process group
    leave_process_group()
    if rank == 0:  # the last stdout line, which the benchmarks read
        print(result_line(TRAIN_SUMMARY, summary))
    return 0


def _streams(vocab: Tokenizer, train_posts: list[str], val_posts: list[str]) -> Streams:
    train_ids = vocab.encode_posts(train_posts)
    # characters per non-END token of the training stream: exactly 1 for characters
    chars_per_token = sum(map(len, train_posts)) / max(1, len(train_ids) - 1 - len(train_posts))
    return Streams(train_ids, vocab.encode_posts(val_posts), len(format_posts(train_posts)),
                   len(format_posts(val_posts)), vocab.stored(), chars_per_token)


def _init_distributed(device: torch.device) -> int:
    """Join the torchrun process group when WORLD_SIZE > 1; returns this process's rank."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank()


def _model_dir(args, config: Config) -> Path:
    return Path(args.model or config.generator.model_dir)


def sample(args, config: Config) -> int:
    from generator.sample import Generator  # noqa: PLC0415 - keeps `train` start-up lean

    if args.n < 1 or args.candidates < 1:
        raise UserError("-n and --candidates must be at least 1")
    if args.temperature is not None and args.temperature <= 0:
        raise UserError("--temperature must be positive (e.g. 0.6)")
    gen = Generator.load(_model_dir(args, config))
    posts = []
    while len(posts) < args.n:
        batch = gen.generate(n=args.n - len(posts), prime=args.prime,
                             temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                             seed=None if args.seed is None else args.seed + len(posts),
                             candidates=args.candidates)
        if not batch:
            break
        posts.extend(batch)
    for post in posts:
        print(post + "\n", flush=True)
    if not posts:
        raise UserError("no sample passed the quality gate: try again or another --temperature")
    if len(posts) < args.n:
        log.warning("only %d of %d posts passed the quality gate", len(posts), args.n)
    return 0


def feed(args, config: Config) -> int:
    from generator import feed as feeds  # noqa: PLC0415
    from generator.sample import Generator  # noqa: PLC0415

    if args.n < 1:
        raise UserError("-n must be at least 1")
    if config.pool.search != "lines":
        raise UserError("generator feed makes posts by the line search: set pool.search: lines")
    seed = args.seed if args.seed is not None else secrets.randbits(31)
    searches = config.pool.channel_searches if args.kind == "channel" else \
        config.pool.reply_searches
    gen = Generator.load(_model_dir(args, config))
    log.info("feed of %d %s posts, best of %d searches each, seed %d", args.n, args.kind,
             searches, seed)
    rules = feeds.FeedRules(memory=config.pool.memory)
    posts = []
    for post in feeds.feed(gen, args.n, max(1, searches), config.bot.temperatures, rules, seed):
        print(post + "\n", flush=True)
        posts.append(post)
    if not posts:
        raise UserError("no search finished a post: try another --seed or model")
    if args.save:
        modeldir.save_starter(_model_dir(args, config), posts)
    if len(posts) < args.n:
        log.warning("only %d of %d posts were finished", len(posts), args.n)
    return 0


def evaluate(args, config: Config) -> int:
    from generator.evaluate import text_bpc  # noqa: PLC0415

    path = Path(args.text)
    if not path.is_file():
        raise UserError(f"--text {path} not found: pass a corpus file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"--text {path} is not UTF-8 text: pass a corpus file") from None
    if not text:
        raise UserError(f"--text {path} is empty: pass a corpus file with posts")
    model, vocab, _ = modeldir.load_model(_model_dir(args, config))
    print(result_line(BITS_PER_CHAR, {BITS_PER_CHAR: text_bpc(model, vocab, text)}))
    return 0


def export(args, config: Config) -> int:
    """model.pt with bf16 weights (half the size) + the novelty index and metrics beside
    it (only the metrics for --base)."""
    src, out = Path(args.model), Path(args.out)
    model, vocab, info = modeldir.load_model(src)
    primer = info.pop("primer")
    modeldir.save_model(out, model, vocab.stored(), info, primer=primer, dtype=torch.bfloat16)
    modeldir.copy_extras(src, out, modeldir.BASE_EXTRAS if args.base else modeldir.SERVING_EXTRAS)
    log.info("exported %s -> %s", src, out)
    return 0


if __name__ == "__main__":
    run_cli(main)
