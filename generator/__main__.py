"""`python -m generator train|ranker|sample|eval|export`. Stdout carries only results: posts
(`sample`), `train_summary: chars=… seconds=… chars_per_sec=… best_val_bpc=…` (`train`) and
`bits_per_char: …` (`eval`), which the bot's retrain parses, and `ranker_summary:
held_out_accuracy=… posts=… seconds=…` (`train`, `ranker`); logs and progress go to stderr."""

from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import fields
from pathlib import Path

import torch
import torch.distributed as dist

from common.cli import UserError, run_cli
from common.config import Config, load_config
from common.corpus import VAL_FRACTION, read_split, split_paths
from common.log import setup_logging
from generator import judge, modeldir, ranker, tokenizer
from generator.gate import NoveltyIndex
from generator.model import ModelConfig
from generator.train import (
    BATCH_BY_DEVICE,
    WARM_START_LR,
    Streams,
    TrainConfig,
    Trainer,
    leave_process_group,
)
from generator.vocab import Tokenizer

log = logging.getLogger("generator")


def main() -> int:
    args = _parser().parse_args()
    setup_logging()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = _config(args.config)
    commands = {"train": train, "judge": judge_command, "ranker": ranker_command,
                "sample": sample, "eval": evaluate, "export": export}
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
    t.add_argument("--tokenizer", choices=tokenizer.KINDS,
                   help="units the model reads and writes: sentencepiece unigram subwords "
                        "learned from the training posts (the default: 0.15 bpc ahead of "
                        "characters at equal compute, BENCHMARKS.md) or characters")
    t.add_argument("--vocab-size", type=int,
                   help=f"subword units of --tokenizer unigram (default "
                        f"{tokenizer.DEFAULT_VOCAB_SIZE})")
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
    t.add_argument("--ranker", action="store_true",
                   help="also train the ranker after the model (see `ranker`; off by default: "
                        "a blind reading found its picks no better, BENCHMARKS.md)")
    t.add_argument("--no-judge", action="store_true",
                   help="skip training the coherence judge after the model (see `judge`)")
    j = sub.add_parser("judge", help="(re)train the coherence judge of a model directory: real "
                                     "posts against real posts made incoherent")
    j.add_argument("--model", help="model directory (default: generator.model_dir)")
    j.add_argument("--corpus", help="corpus file (default: corpus.path; its split is used)")
    for sp in (t, j):
        sp.add_argument("--judge-posts", type=int, default=JUDGE_POSTS,
                        help="training posts the judge learns from (and as many corrupted)")
    r = sub.add_parser("ranker", help="(re)train the ranker of a model directory: a classifier "
                                      "of training posts against the model's samples")
    r.add_argument("--model", help="model directory (default: generator.model_dir)")
    r.add_argument("--corpus", help="corpus file of the real posts (default: corpus.path; its "
                                    "training split is used)")
    for sp in (t, r):
        sp.add_argument("--ranker-samples", type=_ranker_samples, default=2000,
                        help="model samples (and as many training posts) the ranker learns from")
    s = sub.add_parser("sample", help="print finished posts")
    s.add_argument("--model", help="model directory (default: generator.model_dir)")
    s.add_argument("-n", type=int, default=1)
    s.add_argument("--temperature", type=float,
                   help="default: the model's (0.6 for unigram units, 0.85 for characters)")
    s.add_argument("--top-k", type=int)
    s.add_argument("--top-p", type=float)
    s.add_argument("--prime", help="text the posts start with (any case)")
    s.add_argument("--seed", type=int)
    s.add_argument("--candidates", type=int, default=16, help="samples drawn per round")
    e = sub.add_parser("eval", help="bits per character of a model on a corpus file")
    e.add_argument("--model", help="model directory (default: generator.model_dir)")
    e.add_argument("--text", required=True, help="corpus file to score")
    x = sub.add_parser("export", help="copy a model directory with bf16 weights (for bundling)")
    x.add_argument("--model", required=True, help="trained model directory")
    x.add_argument("--out", required=True, help="directory to write (e.g. generator/bundled)")
    for sp in (t, j, r, s, e, x):
        sp.add_argument("--config", help="config file (default: config.yaml if present)")
        sp.add_argument("--threads", type=int, help="torch CPU threads")
    return p


def _ranker_samples(value: str) -> int:
    if not value.isdigit() or int(value) < ranker.MIN_POSTS:
        raise argparse.ArgumentTypeError(f"must be an integer of at least {ranker.MIN_POSTS} "
                                         "(a held-out fifth to test on)")
    return int(value)


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
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
                 if getattr(args, f.name, None) is not None}
    if args.no_bf16:
        overrides["bf16"] = False
    payload = source = None
    device = _device(args.device)
    if args.resume and args.init_from:
        raise UserError("--resume continues a run, --init-from starts a new one: pass only one")
    if args.resume:
        payload = modeldir.load_checkpoint(out)
        vocab = modeldir.tokenizer_of(payload, out / modeldir.CHECKPOINT_FILE)
        _check_tokenizer(args, vocab, f"--resume {out}")
        model_cfg = ModelConfig(**payload["model_config"])
        train_cfg = TrainConfig(**{**payload["train_config"], **overrides})
    else:
        if modeldir.holds_training(out):
            raise UserError(f"{out} already holds a model: pass --resume to continue it, "
                            "or choose a new --out")
        sizes = {f.name: getattr(args, f.name) for f in fields(ModelConfig)
                 if f.name != "vocab_size" and getattr(args, f.name) is not None}
        if args.init_from:
            source = modeldir.read_model(args.init_from)
            source_vocab = modeldir.tokenizer_of(source, Path(args.init_from))
            _check_tokenizer(args, source_vocab, f"--init-from {args.init_from}")
            # Characters follow the new corpus (shared_ids maps the rows); learned units are
            # the source's own: its weights mean nothing under other units.
            vocab = (_build_tokenizer(args, train_posts, corpus, default="char")
                     if source_vocab.kind == "char" else source_vocab)
            sizes = _sizes_of(source, sizes, args.init_from)
            overrides["init_from"] = str(args.init_from)
            overrides.setdefault("lr", WARM_START_LR)
        else:
            vocab = _build_tokenizer(args, train_posts, corpus)
            model_recipe, train_recipe = NEW_RUN_RECIPE[vocab.kind]
            sizes = {**model_recipe, **sizes}
            overrides = {**train_recipe, **overrides}
        model_cfg = ModelConfig(vocab_size=len(vocab), **sizes)
        rows, window = BATCH_BY_DEVICE[device.type]
        overrides.setdefault("batch_size", rows)
        overrides.setdefault("seq_len", window)
        train_cfg = TrainConfig(**overrides)
        # Progress lines of a run killed before its first checkpoint: not this run's.
        modeldir.clear_metrics(out)
    rank = _init_distributed(device)
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        modeldir.save_novelty(out, NoveltyIndex.build(train_posts + val_posts))
    val_text_chars = sum(len(p) + 2 for p in val_posts)  # each post + its blank-line separator
    train_ids = vocab.encode_posts(train_posts)
    train_chars = sum(map(len, train_posts))
    # characters per non-END token of the training stream: exactly 1 for characters
    chars_per_token = train_chars / max(1, len(train_ids) - 1 - len(train_posts))
    streams = Streams(train_ids, vocab.encode_posts(val_posts), val_text_chars, vocab.stored(),
                      chars_per_token)
    try:
        trainer = Trainer(train_cfg, model_cfg, streams, out, device)
    except ValueError as exc:
        raise UserError(f"cannot train on {corpus}: {exc}") from None
    if source is not None:
        mine, theirs = vocab.shared_ids(source_vocab)
        trainer.warm_start(source["model"], mine, theirs)
        log.info("starting from %s: %d of this corpus's %d symbols carry its weights",
                 args.init_from, len(mine), len(vocab))
    if payload is not None:
        trainer.resume(payload)
        if rank == 0:
            modeldir.trim_metrics(out, trainer.step)
    log.info("training %s params on %s tokens (%s characters), batch %d×%d, %s -> %s",
             f"{trainer.model.num_params():,}", f"{len(streams.train):,}",
             f"{train_chars:,}", train_cfg.batch_size, train_cfg.seq_len,
             corpus, out)
    summary = trainer.run()
    del trainer  # its DDP wrapper holds the process group
    leave_process_group()
    if rank == 0:
        if args.ranker:  # on CPU, after the group: the other ranks need not wait
            _train_ranker(out, train_posts, args.ranker_samples)
        if not args.no_judge:
            _train_judge(out, train_posts, val_posts, args.judge_posts)
        # the last stdout line, which the bot's retrain and the benches read
        print(f"train_summary: chars={summary['chars']} seconds={summary['seconds']:.3f} "
              f"chars_per_sec={summary['chars_per_sec']:.1f} "
              f"best_val_bpc={summary['best_val_bpc']:.4f}")
    return 0


def judge_command(args, config: Config) -> int:
    model_dir = _model_dir(args, config)
    modeldir.read_model(model_dir)  # a clear error before reading a corpus for nothing
    train_posts, val_posts = _read_corpus(Path(args.corpus or config.corpus.path))
    if not _train_judge(model_dir, train_posts, val_posts, args.judge_posts):
        raise UserError("too few posts of two or more lines in the corpus to train a judge")
    return 0


def _train_judge(model_dir: Path, train_posts: list[str], val_posts: list[str],
                 max_posts: int) -> bool:
    """Train the coherence judge of the model saved in `model_dir` and save it; False (with a
    warning, nothing written) when the corpus has too few posts to learn from."""
    from generator.sample import Generator  # noqa: PLC0415 - as in `sample`

    threads = torch.get_num_threads()
    gen = Generator.load(model_dir)  # one thread: the reads are many small sequences
    made = judge.train_judge(judge.LineReader(gen.model, gen.vocab, judge.lstm_state(
        gen.start_state)), train_posts, val_posts, max_posts)
    torch.set_num_threads(threads)
    if made is None:
        log.warning("no judge for %s: too few posts of two or more lines; the search goes by "
                    "fluency alone", model_dir)
        return False
    net, info = made
    modeldir.save_judge(model_dir, net, info)
    print(f"judge_summary: held_out_accuracy={info['held_out_accuracy']['all']:.4f} "
          f"posts={info['train_posts']} seconds={info['read_seconds'] + info['seconds']:.1f}")
    return True


def ranker_command(args, config: Config) -> int:
    model_dir = _model_dir(args, config)
    modeldir.read_model(model_dir)  # a clear error before reading a corpus for nothing
    corpus = Path(args.corpus or config.corpus.path)
    train_posts, _ = _read_corpus(corpus)
    if not _train_ranker(model_dir, train_posts, args.ranker_samples):
        raise UserError(f"too few posts of the gate's forms in {corpus} or among the samples of "
                        f"{model_dir} to train a ranker")
    return 0


def _train_ranker(model_dir: Path, train_posts: list[str], samples: int) -> bool:
    """Train the ranker of the model saved in `model_dir` against `train_posts`, and save it;
    False (with a warning, nothing written) when there are too few posts to learn from."""
    from generator.sample import Generator  # noqa: PLC0415 - as in `sample`

    threads = torch.get_num_threads()
    generator = Generator.load(model_dir)  # sets one thread: sampling is fastest so
    scorer = ranker.train(generator, train_posts, samples)
    torch.set_num_threads(threads)
    if scorer is None:
        log.warning("no ranker for %s: too few posts of the gate's forms, real or sampled; "
                    "candidates are ranked by likelihood", model_dir)
        return False
    modeldir.save_ranker(model_dir, scorer)
    print(f"ranker_summary: held_out_accuracy={scorer.info['held_out_accuracy']:.4f} "
          f"posts={scorer.info['real'] + scorer.info['generated']} "
          f"seconds={scorer.info['seconds']}")
    return True


# Training posts the judge reads (and as many corrupted copies): reading is most of its cost,
# about a minute a thousand posts on one thread at the bundled model's size.
JUDGE_POSTS = 1500
# Units of a new model when --tokenizer is not given: unigram read 1.5x the characters a second
# and was 0.148 bpc ahead of characters after 45 minutes side by side (BENCHMARKS.md).
DEFAULT_TOKENIZER = "unigram"
# What a new run of each unit takes for the options it is not given: (ModelConfig, TrainConfig)
# fields. Subword models learn 4k rows, so a wider embedding tied to the output layer; and they
# overfit the corpus within minutes on CPU (train 1.96 vs validation 2.26 bpc after 16 minutes),
# which weight-drop and locked dropout hold off (2.20 at the same step, still falling);
# BENCHMARKS.md "Subword units on CPU". A character model underfits: switches off (measured there).
NEW_RUN_RECIPE: dict[str, tuple[dict, dict]] = {
    "unigram": ({"embed": 256, "tie_weights": True, "weight_drop": 0.25, "locked_dropout": 0.2},
                {"ema_decay": 0.999}),
    "char": ({}, {}),
}
# ModelConfig fields that only act in training: a warm start may change them.
REGULARISERS = ("dropout", "weight_drop", "locked_dropout", "embed_dropout")


def _build_tokenizer(args, train_posts: list[str], corpus: Path,
                     default: str = DEFAULT_TOKENIZER) -> Tokenizer:
    kind = args.tokenizer or default
    if kind == "char" and args.vocab_size is not None:
        raise UserError("--vocab-size sizes --tokenizer unigram: drop it, or pass "
                        "--tokenizer unigram")
    vocab_size = args.vocab_size or tokenizer.DEFAULT_VOCAB_SIZE
    started = time.perf_counter()
    try:
        vocab = tokenizer.build(kind, train_posts, vocab_size)
    except tokenizer.VocabSizeError as exc:
        raise UserError(f"cannot learn subword units from {corpus}: {exc}") from None
    log.info("%s tokenizer of %d symbols built in %.1f s", kind, len(vocab),
             time.perf_counter() - started)
    return vocab


def _check_tokenizer(args, vocab: Tokenizer, source: str) -> None:
    """A resumed or warm-started run reads the units of its source: --tokenizer and
    --vocab-size may only repeat them."""
    if args.tokenizer not in (None, vocab.kind):
        raise UserError(f"--tokenizer {args.tokenizer} differs from the {vocab.kind} units of "
                        f"{source}: drop --tokenizer (the units come from it)")
    if vocab.kind != "char" and args.vocab_size not in (None, len(vocab)):
        raise UserError(f"--vocab-size {args.vocab_size} differs from the {len(vocab)} units "
                        f"of {source}: drop --vocab-size (the units come from it)")


def _sizes_of(source: dict, asked: dict, source_dir: str) -> dict:
    """The model config of a warm start: the source's shape (sizes, tying), any regularisers."""
    known = {f.name: f.default for f in fields(ModelConfig) if f.name != "vocab_size"}
    sizes = {**known, **{k: v for k, v in source["model_config"].items() if k != "vocab_size"}}
    for name, value in asked.items():
        if name not in REGULARISERS and value != sizes[name]:
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} {value} differs from the {sizes[name]} of "
                            f"--init-from {source_dir}: drop {flag} (sizes come from it)")
    sizes.update({k: v for k, v in asked.items() if k in REGULARISERS})
    return sizes


def _device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is visible; use --device cpu")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


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
    gen = Generator.load(_model_dir(args, config), config.generator.ranker_weight)
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
    print(f"bits_per_char: {text_bpc(model, vocab, text):.6f}")
    return 0


def export(args, config: Config) -> int:
    """model.pt with bf16 weights (half the size) + the novelty index and metrics beside it."""
    src, out = Path(args.model), Path(args.out)
    model, vocab, info = modeldir.load_model(src)
    primer = info.pop("primer")
    modeldir.save_model(out, model, vocab.stored(), info, primer=primer, dtype=torch.bfloat16)
    modeldir.copy_extras(src, out)
    log.info("exported %s -> %s", src, out)
    return 0


if __name__ == "__main__":
    run_cli(main)
