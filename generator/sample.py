"""`Generator`: a model directory loaded once; draws candidates, gates them, returns posts.

Candidates are sampled side by side as one batch through `FastLSTM` (the hand-written cell over
the trained weights), token by token (characters or subword units, tokenizer.Tokenizer), each until
the end-of-post symbol or the MAX_CHARS cap (then cut at a line boundary). A prime is read up to
its last token boundary the model may continue (Tokenizer.heal); its tail is then spelt by the
first sampled tokens, constrained to those that fit it. Candidates that pass the quality gate
(gate.py) are ranked by the model's own mean log-likelihood per character (`best_first`), and
the best are returned, tagged `#neurobugurt`.
"""

from __future__ import annotations

import math
import secrets
import threading
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import torch

from generator import gate, modeldir
from generator.model import FastLSTM, LSTMModel
from generator.novelty import NoveltyIndex
from generator.sampling import TEMPERATURE, draw_cut
from generator.search import Avoid, LineSearch, SearchConfig
from generator.tag import finish
from generator.tokenizer import END, UNK, Tokenizer

MAX_CHARS = 500  # characters: hard cap of one post (the original project's length)
MAX_ROUNDS = 4  # batches of candidates tried before giving up on n posts
NOISE_STEPS = 64  # steps of Gumbel noise drawn at once: (64, rows, vocab) floats, 16 MB at 4k


class Candidate(NamedTuple):
    text: str
    likelihood: float  # the model's mean log-probability per character


class Generator:
    def __init__(self, model: LSTMModel, vocab: Tokenizer, novelty: NoveltyIndex,
                 info: dict):
        self.model, self.vocab, self.novelty = model, vocab, novelty
        # characters each token writes, (vocab,): a UTF-8 continuation byte writes none; END
        # counts as one, as the character model always scored it
        self.token_chars = torch.tensor([
            sum(1 for b in piece if b & 0xC0 != 0x80) if piece else 1
            for piece in vocab.token_bytes])
        self.cell = FastLSTM(model, banned=(UNK,))  # never write the unknown symbol
        self.temperature = TEMPERATURE[vocab.kind]  # when a caller gives none
        self._lock = threading.Lock()
        # State after the primer (a text boundary of the training stream), shared by every sample.
        self.start_state = self.cell.zero_state(1)
        with torch.inference_mode():
            for token in info.pop("primer", None) or [END]:  # a primer ends with END
                self.start_logits = self.cell.step(torch.tensor([token]), self.start_state)
        self.info = info

    @classmethod
    def load(cls, model_dir: str | Path) -> Generator:
        """The model of a directory: its model.pt and novelty.npz (no other file is read)."""
        # One character step is a handful of small products: a second thread only adds
        # synchronisation, and on a busy machine OpenMP spin-waiting makes it several times slower.
        torch.set_num_threads(1)
        model, vocab, info = modeldir.load_model(model_dir)
        novelty = modeldir.load_novelty(model_dir)
        info.update(model_dir=str(model_dir), params=model.num_params(),
                    vocab_size=len(vocab), layers=model.config.layers,
                    hidden=model.config.hidden)
        info.setdefault("val_bpc", None)
        info.setdefault("trained_chars", 0)
        return cls(model, vocab, novelty, info)

    def generate(self, n: int = 1, prime: str | None = None, temperature: float | None = None,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 candidates: int = 16) -> list[str]:
        """Up to n gated posts, each ending with the line #neurobugurt (fewer if none pass)."""
        ranked = self.ranked(n, prime, temperature, top_k, top_p, seed, candidates)
        return [c.text for c in ranked[:n]]

    def ranked(self, n: int = 1, prime: str | None = None, temperature: float | None = None,
               top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
               candidates: int = 16) -> list[Candidate]:
        """Every gated, finished post of the rounds it took to find n, best first (`best_first`),
        texts tagged."""
        rng = torch.Generator().manual_seed(seed if seed is not None else secrets.randbits(63))
        temperature = self.temperature if temperature is None else temperature
        found: list[Candidate] = []
        with self._lock, torch.inference_mode():
            for _ in range(MAX_ROUNDS):
                texts = {c.text for c in found}
                found += [c for c in self.gated(max(candidates, n), temperature, rng, prime,
                                                top_k, top_p) if c.text not in texts]
                if len(found) >= n:
                    break
        return [c._replace(text=finish(c.text)) for c in self.best_first(found)]

    def searched(self, temperature: float | None = None, seed: int | None = None,
                 config: SearchConfig | None = None) -> Candidate | None:
        """One post built line by line (search.py), tagged; None when no finished post passed
        the gate."""
        rng = torch.Generator().manual_seed(seed if seed is not None else secrets.randbits(63))
        found = self.searched_many(1, temperature, rng, config)
        return found[0] if found else None

    def searched_many(self, count: int, temperature: float | None, rng: torch.Generator,
                      config: SearchConfig | None = None,
                      avoid: Avoid | None = None) -> list[Candidate]:
        """The posts that `count` line searches run side by side finished, tagged, in search
        order (a search that finished none gives none). `avoid(line, depth)` refuses lines
        (feed.py's rules). The sampler's lock is held one token step of the batch at a time, so
        an on-demand request waits for one step, not a whole search."""
        config = replace(config or SearchConfig(), temperature=temperature or self.temperature)
        found = LineSearch(self, config, lock=self._lock, avoid=avoid).posts(rng, count)
        return [Candidate(finish(text), likelihood)
                for text, likelihood in filter(None, found)]

    def gated(self, rows: int, temperature: float, rng: torch.Generator, prime: str | None = None,
              top_k: int | None = None, top_p: float | None = None) -> list[Candidate]:
        """The distinct candidates of one batch of `rows` samples that pass the quality gate,
        untagged. Not locked: a Generator shared by
        threads is sampled through `ranked`/`generate`."""
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        prime = self.vocab.normalize_prime(prime or "")
        with torch.inference_mode():
            texts, scores = self.sample(rows, prime, temperature, top_k, top_p, rng)
        passed = {}  # text → likelihood, first draw kept, in drawing order
        for text, score in zip(texts, scores, strict=True):
            if gate.passes(text, self.novelty):
                passed.setdefault(text, score)
        return [Candidate(t, s) for t, s in passed.items()]

    def best_first(self, candidates: list[Candidate]) -> list[Candidate]:
        """Candidates by the model's mean log-likelihood per character, best first (ties keep
        their order): the one place that says which finished post is best (each /bugurt's, a
        pooled reply's, the channel's). Blind readers rated the pick by likelihood above picks
        that added a learnt coherence judge or other rules (BENCHMARKS.md#decisions)."""
        return sorted(candidates, key=lambda c: -c.likelihood)

    def sample(self, rows: int, prime: str, temperature: float, top_k: int | None,
               top_p: float | None, rng: torch.Generator) -> tuple[list[str], list[float]]:
        """`rows` raw texts (prime + continuation) and each one's mean log-prob per character
        of the sampled tokens (the healed prime tail included, its END too)."""
        state = self.start_state.repeat(rows)
        logits = self.start_logits.expand(rows, -1)
        ids, tail = self.vocab.heal(prime)
        for token in ids:
            logits = self.cell.step(torch.full((rows,), token), state)
        head = prime[: len(prime) - len(tail)]  # the prime's text the model has read
        budget = max(0, MAX_CHARS - len(head))  # characters left to write, the tail's included
        pending = [tail.encode()] * rows  # bytes of the tail each row has still to write
        plain = not top_k and (top_p is None or top_p >= 1.0)
        out = torch.full((budget, rows), END)
        out_rows = out.unbind(0)  # views: each step's draw is written in place
        written = torch.zeros(rows, dtype=torch.long)  # characters so far, END counted
        seen = []  # logits of every step, scored after the loop in one pass
        for t in range(budget):  # a token writes at least one character, bytes aside
            if any(pending):
                logits = logits.masked_fill(~self._fits(pending), -math.inf)
            if plain:  # Gumbel-max: argmax(logits + T·g) draws from softmax(logits / T)
                if t % NOISE_STEPS == 0:
                    noise = torch.rand(min(NOISE_STEPS, budget - t), rows, logits.shape[1],
                                       generator=rng)
                    noise = noise.clamp_(1e-20).log_().neg_().log_().neg_().mul_(temperature)
                torch.argmax(torch.add(logits, noise[t % NOISE_STEPS]), 1, out=out_rows[t])
            else:
                out_rows[t].copy_(draw_cut(logits, temperature, top_k, top_p, rng))
            seen.append(logits)
            written += self.token_chars[out_rows[t]]
            if any(pending):
                pending = [_rest(p, self.vocab.token_bytes[i]) for p, i in
                           zip(pending, out_rows[t].tolist(), strict=True)]
            if t % 16 == 15 and ((out[: t + 1] == END).any(0) | (written >= budget)).all():
                break
            logits = self.cell.step(out_rows[t], state)
        steps = len(seen)
        out = out[:steps].T
        ended = out == END
        # A row ended if it drew END before its characters reached the budget; else it is cut
        # after the token that reached it (or at the last step).
        full = self.token_chars[out].cumsum(1) >= budget
        first_end = torch.where(ended.any(1), ended.int().argmax(1), torch.tensor(steps))
        first_full = torch.where(full.any(1), full.int().argmax(1) + 1, torch.tensor(steps))
        finished = first_end < first_full
        length = torch.where(finished, first_end, first_full)  # tokens of the text
        logp = torch.log_softmax(torch.stack(seen, 1), -1).gather(2, out[:, :, None])[:, :, 0]
        # the text's tokens, and the END of a finished row
        counted = torch.arange(steps)[None, :] < (length + finished)[:, None]
        chars = (self.token_chars[out] * counted).sum(1).clamp(min=1)  # bytes-only rows: ≥ 1
        mean_logp = (logp * counted).sum(1) / chars
        texts = []
        for row in range(rows):
            text = head + self.vocab.decode(out[row, : length[row]].tolist())
            texts.append(text if finished[row] else gate.cut_at_line(text[:MAX_CHARS], len(prime)))
        return texts, mean_logp.tolist()

    def _fits(self, pending: list[bytes]) -> torch.Tensor:
        """(rows, vocab) bool: the tokens each row may draw while it spells its prime tail —
        those that start with the bytes left, or are a start of them."""
        masks = {}
        for rest in set(pending):
            masks[rest] = torch.tensor([
                bool(piece) and (piece.startswith(rest) or rest.startswith(piece))
                if rest else True for piece in self.vocab.token_bytes])
        return torch.stack([masks[rest] for rest in pending])


def _rest(pending: bytes, piece: bytes) -> bytes:
    """What of a prime tail is left to write after a token that fits it."""
    return pending[len(piece):] if pending.startswith(piece) else b""

