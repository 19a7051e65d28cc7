"""Batches for stateful truncated BPTT.

The token stream is cut into `rows` contiguous streams (one per batch row); batch k of an epoch is
the k-th window of `seq_len` tokens of every row, so the hidden state left by batch k is the right
start for batch k+1. Each epoch starts the rows at a different offset (a function of the seed and
the epoch, so a resumed run sees exactly the same batches). Under DDP each rank takes its share of
the rows of the same global batch.
"""

from __future__ import annotations

import random

import torch


class StreamBatches:
    def __init__(self, ids: torch.Tensor, rows: int, seq_len: int, seed: int = 0):
        if rows < 1 or seq_len < 1:
            raise ValueError("rows and seq_len must be positive")
        self.ids, self.rows, self.seq_len, self.seed = ids, rows, seq_len, seed
        self.row_len = (len(ids) - seq_len) // rows  # tokens per row, leaving room for offsets
        self.per_epoch = (self.row_len - 1) // seq_len  # batches per epoch
        if self.per_epoch < 1:
            raise ValueError(
                f"text of {len(ids)} tokens is too short for {rows} rows of {seq_len + 1} tokens"
            )

    def locate(self, step: int) -> tuple[int, int]:
        """(epoch, batch index in the epoch) of a global step."""
        return divmod(step, self.per_epoch)

    def batch(self, step: int, rank: int = 0, world: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets), each (rows // world, seq_len) int64, for this rank at `step`."""
        epoch, k = self.locate(step)
        offset = random.Random(self.seed * 1_000_003 + epoch).randrange(self.seq_len)
        grid = self.ids[offset : offset + self.rows * self.row_len].view(self.rows, self.row_len)
        share = self.rows // world
        grid = grid[rank * share : (rank + 1) * share]
        start = k * self.seq_len
        window = grid[:, start : start + self.seq_len + 1]
        return window[:, :-1].contiguous(), window[:, 1:].contiguous()

