"""Bits per character of a model on a corpus text (the contract's `eval`, and validation)."""

from __future__ import annotations

import contextlib
import math

import torch
from torch.nn import functional as F

from common.corpus import parse_posts
from generator.model import LSTMModel
from generator.tokenizer import Tokenizer


def autocast_context(device: torch.device, enabled: bool):
    """bf16 autocast on CPU (AMX) or CUDA when enabled; nothing otherwise."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@torch.no_grad()
def stream_bits(model: LSTMModel, ids: torch.Tensor, rows: int = 16, chunk: int = 256,
                bf16: bool = False) -> float:
    """Total −log2 p of ids[1:] given the preceding tokens (the model reads ids[:-1]).

    The stream is cut into `rows` contiguous rows run side by side (each starts from a zero
    state); the remainder after the last full row continues from that row's final state.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ids = ids.to(device)
    n = len(ids) - 1
    rows = max(1, min(rows, n // 1024))
    length = n // rows
    nats = 0.0
    with autocast_context(device, bf16):
        x = ids[: rows * length].view(rows, length)
        y = ids[1 : rows * length + 1].view(rows, length)
        state = None
        for s in range(0, length, chunk):
            logits, state = model(x[:, s : s + chunk], state)
            nats += F.cross_entropy(logits.float().flatten(0, 1), y[:, s : s + chunk].flatten(),
                                    reduction="sum").item()
        if rows * length < n:
            last = (state[0][:, -1:].contiguous(), state[1][:, -1:].contiguous())
            tail_x = ids[rows * length : n].view(1, -1)
            logits, _ = model(tail_x, last)
            nats += F.cross_entropy(logits.float()[0], ids[rows * length + 1 :],
                                    reduction="sum").item()
    model.train(was_training)
    return nats / math.log(2)


def text_bpc(model: LSTMModel, vocab: Tokenizer, text: str, bf16: bool = False) -> float:
    """Bits per character of a corpus text: bits of its post/END stream (in any units) over
    len(text), the blank-line separators included."""
    if not text:
        raise ValueError("empty text")
    return stream_bits(model, vocab.encode_posts(parse_posts(text)), bf16=bf16) / len(text)
