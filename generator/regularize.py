"""Training-time regularisers of the AWD-LSTM family (Merity et al. 2017), for `LSTMModel`.

Each one is a no-op outside training. The LSTM still runs on the fused kernels (oneDNN on CPU,
cuDNN on CUDA): `nn.LSTM.forward` is itself one `torch._VF.lstm` call over its weight list, so
`lstm_forward` makes the same call with the hidden-to-hidden weights swapped for dropped copies
(weight-drop), one layer at a time when locked dropout must act between the layers.
"""

from __future__ import annotations

import warnings

import torch
from torch import _VF, nn
from torch.nn import functional as F

LSTMState = tuple[torch.Tensor, torch.Tensor]  # nn.LSTM's (h, c), each (layers, N, hidden)

# A dropped W_hh is a fresh tensor every window, so cuDNN packs the layer's weights into its own
# buffer at every call (that copy is what weight-drop costs on CUDA) and says so each time.
warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")


def embedding_dropout(weight: torch.Tensor, p: float) -> torch.Tensor:
    """weight (V, D) with whole rows (tokens) zeroed with probability p, the rest scaled by
    1 / (1 − p): a dropped token reads as zeros at every position of the batch."""
    mask = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)
    return weight * mask


def locked_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """x (N, T, C) times one (N, 1, C) mask of Bernoulli(1 − p) / (1 − p): each row drops the
    same units at every time step (variational dropout), not a fresh set per step."""
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p) / (1 - p)
    return x * mask


def lstm_forward(lstm: nn.LSTM, x: torch.Tensor, state: LSTMState | None, weight_drop: float,
                 locked: float) -> tuple[torch.Tensor, LSTMState]:
    """A training forward of `lstm` (batch_first, with biases) on x (N, T, D) → (N, T, H), state.

    weight_drop: DropConnect on each layer's W_hh (4H, H): one mask for the whole window, since
    the fused kernel reads the weight once per call; W_ih and the biases are left alone.
    locked > 0: locked dropout on the input of every layer after the first, in place of
    nn.LSTM's inter-layer dropout (`lstm.dropout`, a fresh mask per step).
    """
    layers = lstm.num_layers
    if state is None:
        zeros = x.new_zeros(layers, x.shape[0], lstm.hidden_size)
        state = (zeros, zeros)
    weights = [_layer_weights(lstm, layer, weight_drop) for layer in range(layers)]
    if not locked:  # one call over all layers, as nn.LSTM makes it
        flat = [w for layer in weights for w in layer]
        out, h, c = _VF.lstm(x, state, flat, True, layers, lstm.dropout, True, False, True)
        return out, (h, c)
    hs, cs = [], []
    for layer in range(layers):
        if layer:
            x = locked_dropout(x, locked)
        hx = (state[0][layer : layer + 1], state[1][layer : layer + 1])  # (1, N, H) each
        x, h, c = _VF.lstm(x, hx, weights[layer], True, 1, 0.0, True, False, True)
        hs.append(h)
        cs.append(c)
    return x, (torch.cat(hs), torch.cat(cs))


def _layer_weights(lstm: nn.LSTM, layer: int, weight_drop: float) -> list[torch.Tensor]:
    """[W_ih, W_hh, b_ih, b_hh] of one layer (the order _VF.lstm reads), W_hh dropped."""
    w_ih, w_hh, b_ih, b_hh = (getattr(lstm, f"{name}_l{layer}")
                              for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    if weight_drop:
        w_hh = F.dropout(w_hh, weight_drop)  # a scaled copy; the parameter itself is unchanged
    return [w_ih, w_hh, b_ih, b_hh]
