"""What a `generator train` run trains: `plan_run` turns the command line and the corpus into
the model config, the train config, the tokenizer and where the weights start from.

Three kinds of run:
- new: a tokenizer learned from the training posts, and NEW_RUN_RECIPE for its units under the
  options given;
- `--resume`: everything from the run's checkpoint.pt (options may change the schedule only);
- `--init-from DIR`: a warm start from another model's weights, in its shape and (for subword
  units) its tokenizer, at WARM_START_LR unless `--lr` is given.
The batch shape a new run is not given follows the device (BATCH_BY_DEVICE). Every conflict
between options and the source is a one-line UserError naming the option to drop.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from common.cli import UserError
from generator import modeldir
from generator.model import ModelConfig
from generator.tokenizer import CharVocab, Tokenizer
from generator.train import BATCH_BY_DEVICE, WARM_START_LR, TrainConfig
from generator.unigram import DEFAULT_VOCAB_SIZE, Unigram, VocabSizeError

log = logging.getLogger(__name__)
# Units of a new model when --tokenizer is not given: unigram read 1.5x the characters a second
# and was 0.148 bpc ahead of characters after 45 minutes side by side (BENCHMARKS.md#decisions).
DEFAULT_TOKENIZER = "unigram"
KINDS = ("char", "unigram")  # the choices of `train --tokenizer`
# What a new run of each unit takes for the options it is not given: (ModelConfig, TrainConfig)
# fields. Subword models learn 4k rows, so a wider embedding tied to the output layer; and they
# overfit the corpus within minutes on CPU (train 1.96 vs validation 2.26 bpc after 16 minutes),
# which weight-drop and locked dropout hold off (2.20 at the same step, still falling), while
# a character model underfits: they stay off (BENCHMARKS.md#decisions).
NEW_RUN_RECIPE: dict[str, tuple[dict, dict]] = {
    "unigram": ({"embed": 256, "tie_weights": True, "weight_drop": 0.25, "locked_dropout": 0.2},
                {"ema_decay": 0.999}),
    "char": ({}, {}),
}
# ModelConfig fields that only act in training: a warm start may change them.
REGULARISERS = ("dropout", "weight_drop", "locked_dropout", "embed_dropout")


@dataclass
class RunPlan:
    model_config: ModelConfig
    train_config: TrainConfig
    tokenizer: Tokenizer
    device: torch.device
    source: dict | None = None  # model.pt of --init-from: the weights a warm start takes
    checkpoint: dict | None = None  # checkpoint.pt of --resume: the state the run continues


def plan_run(args, train_posts: list[str], corpus: Path, out: Path) -> RunPlan:
    """The plan of `generator train ARGS` on `train_posts` (read from `corpus`) into `out`."""
    if args.resume and args.init_from:
        raise UserError("--resume continues a run, --init-from starts a new one: pass only one")
    device = _device(args.device)
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
                 if getattr(args, f.name, None) is not None}
    if args.no_bf16:
        overrides["bf16"] = False
    if args.resume:
        return _resumed(args, out, overrides, device)
    if modeldir.holds_training(out):
        raise UserError(f"{out} already holds a model: pass --resume to continue it, "
                        "or choose a new --out")
    sizes = {f.name: getattr(args, f.name) for f in fields(ModelConfig)
             if f.name != "vocab_size" and getattr(args, f.name) is not None}
    source = None
    if args.init_from:
        source = modeldir.read_model(args.init_from)
        vocab, sizes = _warm_start(args, source, sizes, train_posts, corpus)
        overrides["init_from"] = str(args.init_from)
        overrides.setdefault("lr", WARM_START_LR)
    else:
        vocab = _build_tokenizer(args, train_posts, corpus)
        model_recipe, train_recipe = NEW_RUN_RECIPE[vocab.kind]
        sizes = {**model_recipe, **sizes}
        overrides = {**train_recipe, **overrides}
    rows, window = BATCH_BY_DEVICE[device.type]
    overrides.setdefault("batch_size", rows)
    overrides.setdefault("seq_len", window)
    return RunPlan(ModelConfig(vocab_size=len(vocab), **sizes), TrainConfig(**overrides), vocab,
                   device, source=source)


def _resumed(args, out: Path, overrides: dict, device: torch.device) -> RunPlan:
    """The plan of `--resume`: the checkpoint's configs, the options' schedule changes on top."""
    checkpoint = modeldir.load_checkpoint(out)
    vocab = modeldir.tokenizer_of(checkpoint, out / modeldir.CHECKPOINT_FILE)
    _check_tokenizer(args, vocab, f"--resume {out}")
    was = checkpoint["train_config"].get("layer_lr_decay", 1.0)
    if overrides.get("layer_lr_decay", was) != was:
        raise UserError(f"--layer-lr-decay cannot change on --resume (the run's optimizer keeps "
                        f"{was:g}): drop it, or --init-from {out} for a new run")
    return RunPlan(ModelConfig(**checkpoint["model_config"]),
                   TrainConfig(**{**checkpoint["train_config"], **overrides}), vocab, device,
                   checkpoint=checkpoint)


def _warm_start(args, source: dict, sizes: dict, train_posts: list[str],
                corpus: Path) -> tuple[Tokenizer, dict]:
    """(tokenizer, model sizes) of a run that starts from `source` (a model.pt)."""
    source_vocab = modeldir.tokenizer_of(source, Path(args.init_from))
    _check_tokenizer(args, source_vocab, f"--init-from {args.init_from}")
    # Characters follow the new corpus (shared_ids maps the rows); learned units are the
    # source's own: its weights mean nothing under other units.
    vocab = (_build_tokenizer(args, train_posts, corpus, default="char")
             if source_vocab.kind == "char" else source_vocab)
    return vocab, sizes_of(source, sizes, args.init_from)


def _build_tokenizer(args, train_posts: list[str], corpus: Path,
                     default: str = DEFAULT_TOKENIZER) -> Tokenizer:
    kind = args.tokenizer or default
    if kind == "char" and args.vocab_size is not None:
        raise UserError("--vocab-size sizes --tokenizer unigram: drop it, or pass "
                        "--tokenizer unigram")
    vocab_size = args.vocab_size or DEFAULT_VOCAB_SIZE
    started = time.perf_counter()
    try:
        vocab = (CharVocab.build(train_posts) if kind == "char"
                 else Unigram.train(train_posts, vocab_size))
    except VocabSizeError as exc:
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


def sizes_of(source: dict, asked: dict, source_dir: str) -> dict:
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
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    elif choice == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is visible; use --device cpu")
    return torch.device(choice)
