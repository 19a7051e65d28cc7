"""The trainer: stateful truncated BPTT over token streams, time-budgeted, exactly resumable.

It knows tokens, not bugurts: the caller gives it the train/validation streams and the vocab to
store. Every `eval_every` steps it measures validation bits per character (of the weights' moving
average when `ema_decay` > 0), keeps the best weights in model.pt, writes the full training state
to checkpoint.pt (so `--resume` after a crash, even kill -9, continues bit for bit) and appends
progress to metrics.jsonl. It stops at the time budget, at `max_steps`, or early when validation
stops improving. Under torchrun every rank trains its share of each global batch with DDP; rank 0
evaluates and writes.
"""

from __future__ import annotations

import copy
import gc
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from generator import modeldir
from generator.data import StreamBatches
from generator.evaluate import autocast_context, stream_bits
from generator.model import LSTMModel, ModelConfig

PRIMER_TOKENS = 300  # tail of the training stream stored with the weights (modeldir.save_model)
# Peak lr of a run that starts from trained weights (--init-from) when no --lr is given, a third
# of the from-scratch lr: 15-minute fine-tunes of the bundled model (what /retrain runs) went
# 2.2414 → 2.2376 val bpc at 1e-3 and → 2.2384 at 3e-4 (BENCHMARKS.md#decisions).
WARM_START_LR = 1e-3
# Rows × TBPTT window of a new run that gives neither, by device. A CPU step costs about the
# characters in it, so small batches make 4× more updates in the same minutes and learn far more
# per character (3.81 against 4.27 bpc after 4 minutes, BENCHMARKS.md#decisions); a GPU runs a
# big batch in about the time of a small one.
BATCH_BY_DEVICE = {"cpu": (32, 64), "cuda": (128, 128)}


@dataclass
class TrainConfig:
    minutes: float = 15.0  # time budget of the training steps (validation not counted)
    max_steps: int | None = None  # a step budget instead (the schedule then follows steps)
    # rows of the global batch (split across DDP ranks); generator train: BATCH_BY_DEVICE
    batch_size: int = 128
    seq_len: int = 128  # TBPTT window in tokens
    lr: float = 3e-3
    min_lr_ratio: float = 0.05  # cosine decay ends at lr * min_lr_ratio when the budget is spent
    warmup_steps: int = 50
    weight_decay: float = 0.0
    clip: float = 1.0  # gradient norm clipping
    eval_every: int = 100  # steps between validation + checkpoint
    patience: int = 6  # evaluations without improvement before an early stop
    log_every: int = 10  # steps between metrics.jsonl progress lines
    seed: int = 1234
    bf16: bool = True  # autocast to bfloat16 (CPU with AMX/AVX512-BF16, or CUDA)
    init_from: str | None = None  # model directory whose weights this run started from
    # > 0: validate and save an exponential moving average of the weights (decay per step; it
    # averages over ~1 / (1 − decay) steps), warmed up as min(decay, (1 + step) / (10 + step)).
    ema_decay: float = 0.0
    # < 1: discriminative fine-tuning (ULMFiT): each parameter group below the output layer
    # learns at this times the lr of the one above (ULMFiT divides by 2.6 a layer: 0.38)
    layer_lr_decay: float = 1.0


@dataclass
class Streams:
    train: torch.Tensor  # int64 token stream
    val: torch.Tensor
    # characters of each text, each post's blank-line separator counted as two: the denominators
    # of training and validation bits per character, so both curves share one unit
    train_chars: int
    val_chars: int
    vocab: str | dict  # the tokenizer as stored with the weights (Tokenizer.stored())
    chars_per_token: float = 1.0  # text characters per non-END token (progress counts chars)

    def bits_per_char(self, nats_per_token: float) -> float:
        """A training loss (mean nats per token of the training stream) in bits per character."""
        return nats_per_token / math.log(2) * len(self.train) / self.train_chars


def lr_at(cfg: TrainConfig, step: int, progress: float) -> float:
    warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * warm * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine)


def batch_loss(model, x: torch.Tensor, y: torch.Tensor, state, bf16: bool):
    """Mean cross-entropy (nats per token) of one TBPTT window and the detached state it leaves."""
    with autocast_context(x.device, bf16):
        logits, state = model(x, state)
    loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
    return loss, tuple(s.detach() for s in state)


def wrap_ddp(model: LSTMModel) -> torch.nn.Module:
    """DDP over the initialised process group (gloo on CPU, nccl on CUDA); identity if none."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return model
    device = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                   else None)


def leave_process_group() -> None:
    """Tear the process group down on every rank together (no-op without one).

    Without the barrier a fast rank shut its gloo connections down while its peer was still
    finishing the last collective or shutting down itself, and now and then that rank died in
    gloo's teardown with "terminate called without an active exception" (SIGABRT). Collecting
    garbage first frees DDP wrappers (they sit in reference cycles and hold the group), so the
    group is destroyed here while the interpreter is alive, not during its finalisation.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    gc.collect()
    dist.destroy_process_group()


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Concatenate every rank's tensor along dim (the tensor itself on one process)."""
    rank, world = _world()
    if world == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(world)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim)


class Trainer:
    def __init__(self, cfg: TrainConfig, model_cfg: ModelConfig, streams: Streams, out: Path,
                 device: torch.device):
        self.cfg, self.model_cfg, self.streams, self.out, self.device = (
            cfg, model_cfg, streams, out, device)
        self.rank, self.world = _world()
        if cfg.batch_size % self.world:
            raise ValueError(f"batch size {cfg.batch_size} does not split over {self.world} ranks")
        self.bf16 = cfg.bf16 and _bf16_supported(device)
        torch.manual_seed(cfg.seed)
        self.model = LSTMModel(model_cfg).to(device)
        # The averaged weights, on the training device beside the trained ones (each rank keeps
        # its own copy: the ranks' weights are equal after every step).
        self.ema = copy.deepcopy(self.model).requires_grad_(False) if cfg.ema_decay else None
        self.ddp = wrap_ddp(self.model)
        self.optimizer = torch.optim.AdamW(
            _param_groups(self.model, cfg.layer_lr_decay), lr=cfg.lr,
            weight_decay=cfg.weight_decay, fused=device.type in ("cpu", "cuda"))
        self.batches = StreamBatches(streams.train, cfg.batch_size, cfg.seq_len, cfg.seed)
        self.step, self.chars, self.seconds = 0, 0, 0.0
        self.best_val_bpc, self.bad_evals, self.val_bpc = math.inf, 0, None
        self.state = None  # this rank's TBPTT hidden state
        torch.manual_seed(cfg.seed + self.rank)  # dropout masks differ across ranks

    # ----- state on disk -----
    def warm_start(self, weights: dict, mine: list[int], theirs: list[int]) -> None:
        """Start from another model's weights (same sizes; its vocabulary may differ).

        Rows of the embedding and the output layer move from token ids `theirs` to `mine`;
        tokens only this vocabulary has keep their fresh initialisation. The optimizer, the
        schedule and the data position start afresh: this is a new run, not a resume.
        """
        rows = {"embed.weight", "head.weight", "head.bias"}
        own = self.model.state_dict()
        for name, tensor in weights.items():
            if name in rows:
                own[name][mine] = tensor.to(own[name].dtype)[theirs]
            else:
                own[name].copy_(tensor)
        if self.ema is not None:
            self.ema.load_state_dict(own)

    @property
    def eval_model(self) -> LSTMModel:
        """The weights that are validated and saved: the average when there is one."""
        return self.model if self.ema is None else self.ema

    @torch.no_grad()
    def _update_ema(self) -> None:
        """ema ← decay·ema + (1 − decay)·weights after optimizer step `self.step`; the warm-up
        keeps the first steps from weighting the random initialisation for ~1 / (1 − decay)."""
        decay = min(self.cfg.ema_decay, (1 + self.step) / (10 + self.step))
        for mine, trained in zip(self.ema.parameters(), self.model.parameters(), strict=True):
            mine.lerp_(trained, 1.0 - decay)

    def resume(self, payload: dict) -> None:
        self.model.load_state_dict(payload["model"])
        if self.ema is not None:  # a run that turns the average on at resume starts it here
            self.ema.load_state_dict(payload.get("ema") or payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.step, self.chars, self.seconds = payload["step"], payload["chars"], payload["seconds"]
        self.best_val_bpc, self.bad_evals = payload["best_val_bpc"], payload["bad_evals"]
        self.val_bpc = payload["val_bpc"]
        share = self.cfg.batch_size // self.world
        if payload["state"] is not None:
            h, c = payload["state"]
            rows = slice(self.rank * share, (self.rank + 1) * share)
            self.state = (h[:, rows].to(self.device), c[:, rows].to(self.device))
        rng = payload["rng"]
        torch.set_rng_state(rng[self.rank % len(rng)])
        cuda_rng = payload.get("cuda_rng")
        if self.device.type == "cuda" and cuda_rng:  # dropout masks on the GPU
            torch.cuda.set_rng_state(cuda_rng[self.rank % len(cuda_rng)], self.device)

    def _save_checkpoint(self) -> None:
        # Collective calls first: every rank takes part, rank 0 writes.
        state = None
        if self.state is not None:
            state = tuple(_gather(s.float(), 1).cpu() for s in self.state)
        rng = list(_gather(torch.get_rng_state()[None], 0))
        cuda_rng = None
        if self.device.type == "cuda":
            local = torch.cuda.get_rng_state(self.device)[None].to(self.device)
            cuda_rng = [t.cpu() for t in _gather(local, 0)]
        if self.rank != 0:
            return
        modeldir.save_checkpoint(self.out, {
            "model_config": self.model_cfg.to_dict(),
            "train_config": asdict(self.cfg), "vocab": self.streams.vocab,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "step": self.step, "chars": self.chars, "seconds": self.seconds,
            "best_val_bpc": self.best_val_bpc, "bad_evals": self.bad_evals,
            "val_bpc": self.val_bpc, "state": state, "rng": rng,
            "cuda_rng": cuda_rng,
        })

    def _save_best(self) -> None:
        primer = self.streams.train[-PRIMER_TOKENS:].tolist()
        info = {"val_bpc": self.val_bpc, "trained_chars": self.chars,
                "train_seconds": self.seconds, "step": self.step,
                "params": self.model.num_params(),
                **({"init_from": self.cfg.init_from} if self.cfg.init_from else {})}
        modeldir.save_model(self.out, self.eval_model, self.streams.vocab, info,
                            primer=primer)

    def _log(self, train_loss: float | None, val_bpc: float | None) -> None:
        """One metrics.jsonl line; `train_loss` (nats per token) is written as bits per character,
        the unit of `val_bpc`."""
        if self.rank != 0:
            return
        train_bpc = None if train_loss is None else self.streams.bits_per_char(train_loss)
        line = {"step": self.step, "chars": self.chars, "seconds": round(self.seconds, 3),
                "chars_per_sec": round(self.chars / max(self.seconds, 1e-9), 1),
                "train_bpc": None if train_bpc is None else round(train_bpc, 5),
                "val_bpc": None if val_bpc is None else round(val_bpc, 5),
                "progress": round(self.progress(), 5)}
        modeldir.append_metrics(self.out, line)

    # ----- the loop -----
    def progress(self) -> float:
        if self.cfg.max_steps:
            return self.step / self.cfg.max_steps
        return self.seconds / max(1e-9, self.cfg.minutes * 60)

    def _evaluate(self) -> None:
        if self.rank == 0:
            bits = stream_bits(self.eval_model, self.streams.val, bf16=self.bf16)
            self.val_bpc = bits / self.streams.val_chars
            if self.val_bpc < self.best_val_bpc:
                self.best_val_bpc, self.bad_evals = self.val_bpc, 0
                self._save_best()
            else:
                self.bad_evals += 1

    def _should_stop(self) -> bool:
        stop = self.progress() >= 1.0 or self.bad_evals >= self.cfg.patience
        if self.world > 1:  # rank 0's clock decides for everyone
            flag = torch.tensor([float(stop)], device=self.device)
            dist.broadcast(flag, 0)
            stop = bool(flag.item())
        return stop

    def run(self) -> dict:
        cfg = self.cfg
        bar = tqdm(total=100, unit="%", file=sys.stderr, disable=self.rank != 0,
                   bar_format="{l_bar}{bar}| {postfix}", initial=int(100 * self.progress()))
        chars_per_step = round(cfg.batch_size * cfg.seq_len * self.streams.chars_per_token)
        # Summed on the device and read at log steps only: a per-step .item() would make the
        # host wait for the GPU every step. float64 adds like the Python floats it replaces.
        loss_sum, loss_n = torch.zeros((), dtype=torch.float64, device=self.device), 0
        while not self._should_stop():
            _, k = self.batches.locate(self.step)
            if k == 0:
                self.state = None  # a new epoch re-cuts the rows: nothing to carry
            x, y = self.batches.batch(self.step, self.rank, self.world)
            started = time.perf_counter()
            lr = lr_at(cfg, self.step, self.progress())
            for group in self.optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)  # none in older checkpoints
            loss, self.state = batch_loss(self.ddp, x.to(self.device), y.to(self.device),
                                          self.state, self.bf16)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            if self.ema is not None:
                self._update_ema()
            loss_sum += loss.detach().double()
            loss_n += 1
            self.seconds += time.perf_counter() - started
            self.step += 1
            self.chars += chars_per_step
            evaluated = self.step % cfg.eval_every == 0
            if evaluated:
                self._evaluate()
            if self.step % cfg.log_every == 0 or evaluated:
                mean_loss = loss_sum.item() / loss_n
                self._log(mean_loss, self.val_bpc if evaluated else None)
                val = "—" if self.val_bpc is None else f"{self.val_bpc:.3f}"  # none before 1st eval
                bar.set_postfix_str(f"step {self.step} {self.chars / self.seconds:,.0f} chars/s "
                                    f"train_bpc {self.streams.bits_per_char(mean_loss):.3f} "
                                    f"val_bpc {val}")
                bar.update(int(100 * self.progress()) - bar.n)
                loss_sum.zero_()
                loss_n = 0
            if evaluated:
                # After the step's progress line: a kill between the two re-runs the step's
                # tail on resume instead of losing its line (resume trims lines past the step).
                self._save_checkpoint()
        if self.step % cfg.eval_every != 0 or self.step == 0:
            self._evaluate()
            self._log(loss_sum.item() / loss_n if loss_n else None, self.val_bpc)
            self._save_checkpoint()
        bar.close()
        return {"chars": self.chars, "seconds": self.seconds,
                "chars_per_sec": self.chars / max(self.seconds, 1e-9),
                "best_val_bpc": self.best_val_bpc, "steps": self.step}


def _param_groups(model: LSTMModel, layer_lr_decay: float) -> list[dict]:
    """The optimizer's parameter groups, each with the share of the lr it learns at: one group
    at 1.0, or (layer_lr_decay < 1) one a depth, the output layer at 1.0 and each below it at
    layer_lr_decay times the one above."""
    if layer_lr_decay == 1.0:
        return [{"params": list(model.parameters()), "lr_scale": 1.0}]
    return [{"params": params, "lr_scale": layer_lr_decay ** depth}
            for depth, params in enumerate(model.depth_groups())]


def _bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
