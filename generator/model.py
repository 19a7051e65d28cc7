"""The character model: embedding → multi-layer LSTM → linear, plus a fast inference cell.

Training uses `nn.LSTM` (oneDNN on CPU, cuDNN on CUDA), which is fast on whole sequences. Sampling
feeds one character at a time, where `nn.LSTM` is slow on CPU (oneDNN re-lays its weights at every
call), so `FastLSTM` runs the same weights through a hand-written cell: the first layer's input
projection is folded into a per-token table and each step is a few matrix products.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (layers, N, hidden)


@dataclass
class ModelConfig:
    vocab_size: int
    embed: int = 64  # embedding width (D)
    hidden: int = 512  # LSTM state width (H)
    layers: int = 2
    dropout: float = 0.1  # between LSTM layers and before the output layer

    def to_dict(self) -> dict:
        return asdict(self)


class CharLSTM(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed)
        self.lstm = nn.LSTM(
            config.embed,
            config.hidden,
            config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.vocab_size)

    def forward(self, tokens: torch.Tensor, state: State | None = None):
        """tokens (N, T) int64 → logits (N, T, V), new state ((L, N, H), (L, N, H))."""
        x = self.embed(tokens)  # (N, T, D)
        out, state = self.lstm(x, state)  # (N, T, H)
        return self.head(self.drop(out)), state

    def zero_state(self, rows: int, device: torch.device | str = "cpu") -> State:
        shape = (self.config.layers, rows, self.config.hidden)
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


class FastLSTM:
    """Inference-only step function over a CharLSTM's weights (CPU, no autograd).

    One step of N streams costs a table lookup for layer 0's input projection, one matrix
    product per layer (for layers > 0 over [input, h] with the two weight matrices side by side)
    and a few element-wise ops. With `int8` the matrix products run on fbgemm's dynamic int8
    kernels (weights quantized per output row): a 1×512 by 512×2048 product takes ~40 µs there
    against ~170 µs in fp32/bf16 on these CPUs, which is what brings a 500-character post under
    0.1 s. The softmax output layer stays fp32.
    """

    def __init__(self, model: CharLSTM, int8: bool = True):
        cfg = model.config
        self.layers, self.hidden = cfg.layers, cfg.hidden
        H = cfg.hidden
        # PyTorch gate order is (i, f, g, o); reorder rows to (i, f, o, g) so one sigmoid covers
        # the first 3H columns and one tanh the last H.
        order = torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H),
                           torch.arange(2 * H, 3 * H)])
        sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
        bias = [(sd[f"lstm.bias_ih_l{i}"] + sd[f"lstm.bias_hh_l{i}"])[order]
                for i in range(cfg.layers)]
        # Layer 0 input projection for every token at once: (V, 4H), biases included.
        self.table0 = (sd["embed.weight"] @ sd["lstm.weight_ih_l0"][order].T + bias[0]).contiguous()
        weights = [sd["lstm.weight_hh_l0"][order]] + [  # (4H, H), then (4H, 2H) for [x, h]
            torch.cat([sd[f"lstm.weight_ih_l{i}"], sd[f"lstm.weight_hh_l{i}"]], 1)[order]
            for i in range(1, cfg.layers)]
        biases = [torch.zeros(4 * H)] + bias[1:]
        self.int8 = int8 and _int8_available()
        self.matmuls = [_linear(w, b, self.int8) for w, b in zip(weights, biases, strict=True)]
        self.w_head = sd["head.weight"].T.contiguous()  # (H, V)
        self.b_head = sd["head.bias"].clone()

    def zero_state(self, rows: int) -> list[list[torch.Tensor]]:
        return [[torch.zeros(rows, self.hidden), torch.zeros(rows, self.hidden)]
                for _ in range(self.layers)]

    def step(self, tokens: torch.Tensor, state: list[list[torch.Tensor]]) -> torch.Tensor:
        """tokens (N,) int64; replaces the state's tensors; returns logits (N, V)."""
        H = self.hidden
        x = None
        for layer in range(self.layers):
            h, c = state[layer]
            if layer == 0:
                gates = self.matmuls[0](h).add_(F.embedding(tokens, self.table0))
            else:
                gates = self.matmuls[layer](torch.cat([x, h], 1))
            ifo = gates[:, : 3 * H].sigmoid_()
            g = gates[:, 3 * H :].tanh_()
            c = torch.addcmul(ifo[:, H : 2 * H] * c, ifo[:, :H], g)
            x = ifo[:, 2 * H :] * c.tanh()
            state[layer] = [x, c]
        return torch.addmm(self.b_head, x, self.w_head)


def _int8_available() -> bool:
    return "fbgemm" in torch.backends.quantized.supported_engines


def _linear(weight: torch.Tensor, bias: torch.Tensor, int8: bool):
    """x (N, in) → x @ weight.T + bias, as fp32 addmm or a prepacked dynamic-int8 product."""
    if not int8:
        weight_t = weight.T.contiguous()
        return lambda x: torch.addmm(bias, x, weight_t)
    with warnings.catch_warnings():  # quantized tensors are "deprecated" but fbgemm is the kernel
        warnings.simplefilter("ignore")
        scales = (weight.abs().amax(1) / 127).clamp_min(1e-8).double()
        zero = torch.zeros(len(weight), dtype=torch.long)
        q = torch.quantize_per_channel(weight, scales, zero, 0, torch.qint8)
        packed = torch.ops.quantized.linear_prepack(q, bias)
    return lambda x: torch.ops.quantized.linear_dynamic(x, packed, True)


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(logits.float(), dim=-1)
