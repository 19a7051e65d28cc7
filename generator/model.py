"""The language model: token embedding → multi-layer LSTM → linear over the vocabulary (subword
units or characters, generator/tokenizer.py), plus a fast inference cell.

Training uses `nn.LSTM` (oneDNN on CPU, cuDNN on CUDA), which is fast on whole sequences; the
AWD-LSTM regularisers (generator/regularize.py) keep those kernels. Sampling feeds one token
at a time, where `nn.LSTM` is slow on CPU (oneDNN re-lays its weights at every call), so
`FastLSTM` runs the same weights through a hand-written cell: the first layer's input projection
is folded into a per-token table and each step is a few matrix products.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from generator import regularize
from generator.regularize import LSTMState


@dataclass
class ModelConfig:
    """Sizes and regularisers. A field added later defaults to "off", so a model.pt written
    before it loads unchanged."""

    vocab_size: int
    embed: int = 64  # embedding width (D)
    hidden: int = 512  # LSTM state width (H)
    layers: int = 2
    # Between LSTM layers and before the output layer, a fresh mask per step; in training,
    # locked_dropout takes its place when > 0.
    dropout: float = 0.1
    weight_drop: float = 0.0  # DropConnect on each layer's W_hh, one mask per TBPTT window
    locked_dropout: float = 0.0  # between layers and before the output, one mask for all steps
    embed_dropout: float = 0.0  # probability of dropping a token's whole embedding row
    # The output layer is the embedding matrix (V, D), after an H→D projection when H != D.
    tie_weights: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


class LSTMModel(nn.Module):
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
        tied, projected = config.tie_weights, config.tie_weights and config.hidden != config.embed
        # No bias: E·(P·h + c) + b is E·P·h + (E·c + b), so the head's bias already covers one.
        self.proj = nn.Linear(config.hidden, config.embed, bias=False) if projected else None
        self.head = nn.Linear(config.embed if tied else config.hidden, config.vocab_size)
        if tied:
            # nn.Embedding's N(0, 1) rows would also be the output rows, making the first
            # logits ~√D times too large; AWD-LSTM's U(−0.1, 0.1) suits both uses.
            nn.init.uniform_(self.embed.weight, -0.1, 0.1)
            self.head.weight = self.embed.weight  # one Parameter under both names

    def forward(self, tokens: torch.Tensor, state: LSTMState | None = None):
        """tokens (N, T) int64 → logits (N, T, V), new state ((L, N, H), (L, N, H))."""
        cfg, train = self.config, self.training
        weight = self.embed.weight  # (V, D)
        if train and cfg.embed_dropout:
            weight = regularize.embedding_dropout(weight, cfg.embed_dropout)
        x = F.embedding(tokens, weight)  # (N, T, D)
        if train and (cfg.weight_drop or cfg.locked_dropout):
            out, state = regularize.lstm_forward(self.lstm, x, state, cfg.weight_drop,
                                                 cfg.locked_dropout)
        else:
            out, state = self.lstm(x, state)  # (N, T, H)
        if train and cfg.locked_dropout:
            out = regularize.locked_dropout(out, cfg.locked_dropout)
        else:
            out = self.drop(out)
        if self.proj is not None:
            out = self.proj(out)  # (N, T, D)
        return self.head(out), state

    def depth_groups(self) -> list[list[nn.Parameter]]:
        """The parameters from the output down, for per-depth learning rates: the output layer
        (with the embedding when tied: one matrix), then each LSTM layer from the top, then an
        untied embedding."""
        top = [p for p in (self.head, self.proj) if p is not None for p in p.parameters()]
        layers = [[getattr(self.lstm, f"{kind}_l{i}") for kind in
                   ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                  for i in reversed(range(self.config.layers))]
        bottom = [] if self.config.tie_weights else [[self.embed.weight]]
        return [top, *layers, *bottom]

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # a tied matrix counts once


class FastLSTM:
    """Inference-only step function over a LSTMModel's weights (CPU, no autograd).

    At batch 1 a character step is a few small matrix products plus element-wise ops, each near
    its dispatch cost, so the step is built to issue few ops: layer 0's input projection is a
    per-token table lookup, layers > 0 multiply [input, h] with both weight matrices side by side,
    the g gate's rows are scaled by 2 so one sigmoid covers all four gates (tanh(x) = 2σ(2x) − 1),
    and the states live in preallocated buffers the ops write into (`CellState`). With `int8` the
    products, the output layer's included, run on fbgemm's dynamic int8 kernels (weights quantized
    per output row): 1×384 by 384×1536 takes ~30 µs there against ~90 µs in fp32 on these CPUs.
    `banned` tokens get a −inf logit (never sampled).
    """

    def __init__(self, model: LSTMModel, int8: bool = True, banned: tuple[int, ...] = ()):
        cfg = model.config
        self.layers, self.hidden = cfg.layers, cfg.hidden
        H = cfg.hidden
        # Gate rows: PyTorch's (i, f, g, o) with g doubled, so sigmoid(gates) gives σ(2g).
        scale = torch.ones(4 * H, 1)
        scale[2 * H : 3 * H] = 2.0
        sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
        bias = [(sd[f"lstm.bias_ih_l{i}"] + sd[f"lstm.bias_hh_l{i}"]) * scale[:, 0]
                for i in range(cfg.layers)]
        # Layer 0 input projection for every token at once: (V, 4H), biases included.
        self.table0 = (sd["embed.weight"] @ (sd["lstm.weight_ih_l0"] * scale).T + bias[0])
        weights = [sd["lstm.weight_hh_l0"] * scale] + [  # (4H, H), then (4H, 2H) for [x, h]
            torch.cat([sd[f"lstm.weight_ih_l{i}"], sd[f"lstm.weight_hh_l{i}"]], 1) * scale
            for i in range(1, cfg.layers)]
        biases = [torch.zeros(4 * H)] + bias[1:]
        self.int8 = int8 and _int8_available()
        self.matmuls = [_linear(w, b, self.int8) for w, b in zip(weights, biases, strict=True)]
        head_bias = sd["head.bias"].clone()
        head_bias[list(banned)] = -math.inf
        self.head = _linear(_head_weight(sd), head_bias, self.int8)

    def zero_state(self, rows: int) -> CellState:
        return CellState(rows, self.layers, self.hidden)

    def step(self, tokens: torch.Tensor, state: CellState) -> torch.Tensor:
        """tokens (N,) int64; updates the state in place; returns logits (N, V)."""
        for layer, (c, read, writes, gates) in enumerate(zip(state.c, state.reads, state.writes,
                                                             state.gates, strict=True)):
            product = self.matmuls[layer](read)  # (N, 4H)
            if layer == 0:
                torch.add(product, self.table0.index_select(0, tokens), out=gates).sigmoid_()
            else:
                torch.sigmoid(product, out=gates)
            i, f, g, o = state.gate_views[layer]  # g holds σ(2·g)
            c.mul_(f).sub_(i).addcmul_(i, g, value=2.0)  # c = f·c + i·tanh(g)
            # h = o·tanh(c) = 2·o·σ(2c) − o: torch's tanh took 6× its sigmoid on these CPUs
            twice = torch.mul(c, 2.0, out=state.scratch[layer]).sigmoid_()
            torch.mul(o, twice, out=writes[0]).mul_(2.0).sub_(o)
            for extra in writes[1:]:
                extra.copy_(writes[0])
        return self.head(state.top)


class CellState:
    """FastLSTM's (h, c) for N streams, laid out so no step has to concatenate.

    Layer l > 0 multiplies buffer l = [h of layer l−1 | h of layer l] (N, 2H); layer 0 reads its
    own h from the left half of buffer 1. `reads[l]` is what layer l multiplies, `writes[l]` where
    its new h goes, `top` the last layer's h (the output layer's input).
    """

    def __init__(self, rows: int, layers: int, hidden: int, zero: bool = True):
        """A state of `rows` streams; `zero=False` leaves h and c unset for a caller that
        writes every row (a copy or a gather), saving the fill."""
        H, alloc = hidden, torch.zeros if zero else torch.empty
        self.c = [alloc(rows, H) for _ in range(layers)]
        # Activated gates of each layer, (N, 4H), and their (i, f, g, o) views made once;
        # every step writes them before reading them.
        self.gates = [torch.empty(rows, 4 * H) for _ in range(layers)]
        self.gate_views = [g.chunk(4, 1) for g in self.gates]
        self.scratch = [torch.empty(rows, H) for _ in range(layers)]  # (N, H): σ(2c) of a step
        if layers == 1:
            h = alloc(rows, H)
            self.buffers, self.reads, self.writes, self.top = [h], [h], [[h]], h
            return
        self.buffers = [alloc(rows, 2 * H) for _ in range(layers - 1)]
        b = [None] + self.buffers  # b[l]: buffer of layer l
        self.reads = [b[1][:, :H]] + b[1:]
        self.writes = [[b[1][:, :H]]] + [
            [b[k][:, H:]] + ([b[k + 1][:, :H]] if k + 1 < layers else []) for k in range(1, layers)]
        self.top = b[-1][:, H:]

    def _blank(self, rows: int) -> CellState:
        """A state of this one's sizes for `rows` streams, to be written whole."""
        return CellState(rows, len(self.c), self.c[0].shape[1], zero=False)

    def _tensors(self) -> list[torch.Tensor]:
        return self.c + self.buffers

    def repeat(self, rows: int) -> CellState:
        """A copy of this one-row state for `rows` streams."""
        out = self._blank(rows)
        for mine, theirs in zip(self._tensors(), out._tensors(), strict=True):
            theirs.copy_(mine.expand_as(theirs))
        return out

    @classmethod
    def gather(cls, picks: list[tuple[CellState, int]]) -> CellState:
        """A state whose row i is row picks[i][1] of the state picks[i][0]: one index_select
        per run of picks from the same state (a search's beams all come from its last batch)."""
        out = picks[0][0]._blank(len(picks))
        for source, start, end, rows in row_runs(picks):
            for mine, theirs in zip(source._tensors(), out._tensors(), strict=True):
                torch.index_select(mine, 0, rows, out=theirs[start:end])
        return out

    def select(self, rows: torch.Tensor) -> CellState:
        """A state of the rows that the mask `rows` keeps."""
        index = rows.nonzero()[:, 0]
        out = self._blank(len(index))
        for mine, theirs in zip(self._tensors(), out._tensors(), strict=True):
            torch.index_select(mine, 0, index, out=theirs)
        return out

    def copy_rows(self, rows: torch.Tensor, dst: CellState, to: torch.Tensor) -> None:
        """This state's `rows` (a mask) into dst's rows `to` (indices)."""
        for a, b in zip(self._tensors(), dst._tensors(), strict=True):
            b[to] = a[rows]


def row_runs(picks: list[tuple[object, int]]) -> Iterator[tuple[object, int, int, torch.Tensor]]:
    """(source, start, end, rows) of each run picks[start:end] of consecutive picks from the same
    source (a batch's state or logits, by identity), its rows as an index tensor."""
    start = 0
    while start < len(picks):
        source, end = picks[start][0], start
        while end < len(picks) and picks[end][0] is source:
            end += 1
        yield source, start, end, torch.tensor([row for _, row in picks[start:end]])
        start = end


def _head_weight(sd: dict[str, torch.Tensor]) -> torch.Tensor:
    """The output layer as one (V, H) matrix: a tied head's projection folded in (E·(P·h) is
    (E·P)·h), so sampling a tied model costs what an untied one does."""
    if "proj.weight" in sd:
        return sd["head.weight"] @ sd["proj.weight"]  # (V, D) @ (D, H)
    return sd["head.weight"]


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
