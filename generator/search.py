"""Line-by-line search: a post built one line at a time under a fluency and a cohesion term.

Best-of-N over whole posts keeps one lucky draw of ~6 lines; here every line is chosen: from each
of the `beam` posts kept so far, `lines_drawn` continuations of the next line are sampled from the
model's state (one batch), each is scored, and the best `beam` partial posts go on, until the
model ends the posts. A continuation's score is the z-score, among the continuations of that
step, of
- fluency: the post's mean log-likelihood per character so far (the model's own view), plus
- `cohesion_weight` × the share of its lines that reuse a content word of an earlier line,
so neither term's scale decides alone. The opening lines are kept as drawn (`beam` distinct
ones): chosen by likelihood, nearly every post would open with the corpus's commonest line.
Lines that repeat the post (`_repeats`), hold the unknown symbol or run over MAX_LINE characters
are dropped; a post may end only after `min_lines` lines (its end drawn at the model's own rate,
`cool_end`), and finished posts pass the same quality gate as sampled ones.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from common.corpus import LINE_BREAK, SEPARATOR
from generator import gate
from generator.model import CellState, row_runs
from generator.novelty import shingles
from generator.sampling import draw, draw_own, end_at_rate, nucleus
from generator.tokenizer import END
from generator.words import WORD, cohesion

Avoid = Callable[[str, int], bool]  # (a drawn line, its depth: 0 the opening) → refused


@dataclass
class SearchConfig:
    # continuations sampled from each kept post at every line: 8 × 4 cost 0.14 CPU s a search
    # on the bundle, run 32 side by side (AVX-512 bf16 CPU, bench/search_speed.py)
    lines_drawn: int = 8
    beam: int = 4  # partial posts kept after every line
    min_lines: int = 3  # real posts have 5.4 on average; likelihood's picks ended after 3.7
    max_lines: int = 14
    # weight of lexical cohesion (words.cohesion: the share of lines that reuse a content word
    # of an earlier line; real posts 0.28, the search without it 0.08) beside fluency, both
    # z-scored; chosen by a blind reading (BENCHMARKS.md#decisions)
    cohesion_weight: float = 1.0
    temperature: float | None = None  # None: the model's (sampling.TEMPERATURE)
    top_p: float = 1.0  # nucleus: draw from the smallest set of units holding this probability
    # whether the post's end is cooled like every other unit. Cooled, the line break gains on
    # the end and posts run longer (7.2–7.4 lines a post at 0.45 against 4.9–5.0, real
    # validation posts a median of 5) at 2.2× the CPU; False draws END at the model's own rate
    # (temperature 1) and cools only the choice among the rest, which blind readers rated as
    # coherent at less than half the CPU (BENCHMARKS.md#decisions)
    cool_end: bool = False


@dataclass
class Partial:
    """A post being built: its lines and the model's state after them."""

    lines: list[str]
    # the model's state after them and the next token's logits: row `row` of a batch's
    # state and (rows, V) logits, shared with the other posts of that batch
    state: CellState
    logits: torch.Tensor
    row: int
    log_likelihood: float = 0.0  # natural log, over the characters so far
    chars: int = 0
    score: float = 0.0

    @property
    def text(self) -> str:
        return LINE_BREAK.join(self.lines)

    @property
    def cohesion(self) -> float:
        return cohesion(self.lines)


@dataclass
class _Run:
    """One search's partial posts kept (`beams`) and its finished posts."""

    beams: list[Partial]
    finished: list[Partial] = field(default_factory=list)

    def advance(self, candidates: list[tuple[Partial, bool]], depth: int, cfg: SearchConfig,
                passes: Callable[[str], bool]) -> None:
        """Keep the best `beam` of this line's candidates; the search ends when none is left or
        `beam` posts have finished."""
        if not candidates:
            self.beams = []
            return
        _score(candidates, cfg.cohesion_weight)
        self.finished += [c for c, last in candidates if last and passes(c.text)]
        going = [c for c, last in candidates if not last]
        if depth == 0:  # openings as drawn: chosen by likelihood, most posts open alike
            self.beams = list({c.text: c for c in going}.values())[: cfg.beam]
        else:
            self.beams = sorted(going, key=lambda c: -c.score)[: cfg.beam]
        if len(self.finished) >= cfg.beam:
            self.beams = []

    def best(self, cohesion_weight: float) -> tuple[str, float] | None:
        """(text, mean log-likelihood per character) of the best finished post, or None."""
        if not self.finished:
            return None
        _score([(c, True) for c in self.finished], cohesion_weight)
        best = max(self.finished, key=lambda c: c.score)
        return best.text, best.log_likelihood / max(1, best.chars)


class LineSearch:
    """Builds posts line by line from a `Generator`'s model (its cell, vocab, gate, novelty).

    `posts(rng, count)` runs `count` searches side by side: every token step of all their beams
    is one batch through the cell, so Python's cost per step is paid once for all of them.
    `avoid(line, depth)`, when given, refuses lines as if they had not been drawn (the feed's
    rules against repetition, generator/feed.py); depth 0 is the opening line."""

    def __init__(self, generator, config: SearchConfig | None = None,
                 lock: threading.Lock | None = None, avoid: Avoid | None = None):
        self.gen = generator
        self.config = config or SearchConfig()
        self.lock = lock or contextlib.nullcontext()  # held for one token step at a time
        self.avoid = avoid
        self.temperature = self.config.temperature or generator.temperature
        self.line_break = generator.vocab.encode(LINE_BREAK)
        # the separator's first token ends a line; a lone newline (a unit of its own in a
        # subword vocabulary) would make a line without @, which the gate refuses
        newline = generator.vocab.encode("\n")
        self.banned = newline if len(newline) == 1 and newline != self.line_break[:1] else []

    def post(self, rng: torch.Generator) -> tuple[str, float] | None:
        """(text, mean log-likelihood per character) of the best post found, or None when no
        finished post passed the gate."""
        return self.posts(rng, 1)[0]

    def posts(self, rng: torch.Generator, count: int) -> list[tuple[str, float] | None]:
        """`post` for `count` independent searches, run as one batch (one search alone draws
        exactly what `post` does)."""
        cfg, gen = self.config, self.gen
        runs = [_Run([Partial([], gen.start_state, gen.start_logits, 0)]) for _ in range(count)]
        for depth in range(cfg.max_lines):
            active = [run for run in runs if run.beams]
            if not active:
                break
            parents = [beam for run in active for beam in run.beams]
            owner = [i for i, run in enumerate(active) for _ in run.beams]
            with torch.inference_mode():
                expanded = self._expand(parents, rng, depth)
            grouped: list[list[tuple[Partial, bool]]] = [[] for _ in active]
            for parent, partial, ended in expanded:
                grouped[owner[parent]].append((partial, ended))
            for run, candidates in zip(active, grouped, strict=True):
                run.advance(candidates, depth, cfg, self._passes)
        return [run.best(cfg.cohesion_weight) for run in runs]

    def _passes(self, text: str) -> bool:
        return gate.passes(text, self.gen.novelty)

    def _refused(self, line: str, earlier: list[str], depth: int) -> bool:
        return (not line.strip() or "\ufffd" in line or "\n" in line
                or len(line) > gate.MAX_LINE or line == SEPARATOR
                or _repeats(line, earlier)
                or (self.avoid is not None and self.avoid(line, depth)))

    def _expand(self, beams: list[Partial], rng: torch.Generator,
                depth: int) -> list[tuple[int, Partial, bool]]:
        """Every usable next line of every beam: (the beam's index, the longer partial post,
        whether it ended)."""
        k = self.config.lines_drawn
        rows = len(beams) * k
        parent = [b for b in beams for _ in range(k)]
        state = CellState.gather([(b.state, b.row) for b in parent])
        logits = _gather_logits(parent)
        may_end = depth + 1 >= self.config.min_lines
        drawn, logp, last, final, final_logits = self._draw_lines(state, logits, rows, rng,
                                                                  may_end)
        out = []
        for r in range(rows):
            if last[r] is None:
                continue
            line = self.gen.vocab.decode(drawn[r])
            if self._refused(line, parent[r].lines, depth):
                continue
            p, end = parent[r], bool(last[r])
            chars = len(line) + (1 if end else len(LINE_BREAK))
            out.append((r // k, Partial(p.lines + [line], final, final_logits, r,
                                        p.log_likelihood + logp[r], p.chars + chars), end))
        return out

    def _draw_lines(self, state: CellState, logits: torch.Tensor, rows: int,
                    rng: torch.Generator, may_end: bool):
        """Sample one line per row. Returns the tokens of each line (line break excluded), its
        log-probability (line break or END included), whether it ended the post (None: cut at
        the length cap), and the state and logits after each row's line break."""
        cfg, cell = self.config, self.gen.cell
        stop = self.line_break[0]
        banned = self.banned + ([] if may_end else [END])
        end_rate = may_end and not cfg.cool_end
        # zeros, not left unset: a character model steps every row of `final` through its line
        # break, and the int8 cell quantizes a batch by its range, so garbage would change the
        # other rows
        final = CellState(rows, len(state.c), state.c[0].shape[1])
        final_logits = torch.zeros_like(logits)
        cap = gate.MAX_LINE // 2 + 8  # tokens: a unit writes ≥ 1 character, most write 2–4
        units = torch.empty(rows, cap, dtype=torch.long)  # each row's line, unit by unit
        length = torch.full((rows,), -1)  # units before the row's line break or END; −1: open
        ended = torch.zeros(rows, dtype=torch.bool)  # closed by END
        logp = torch.zeros(rows)
        # the rows still writing their line, as indices into the batch: a row that has closed
        # leaves the cell's batch, so a step costs the open rows only (a batch of many searches
        # would otherwise run every row until its longest line ends)
        active = torch.arange(rows)
        for step in range(cap):
            if banned:
                logits[:, banned] = -math.inf
            if cfg.top_p < 1.0:
                own = torch.log_softmax(logits, -1)  # the model's own (temperature 1) log-probs
                probs = nucleus(logits / self.temperature, cfg.top_p)
                if end_rate:
                    probs = end_at_rate(probs, own[:, END].exp())
                token = draw(probs, rng)
                logp[active] += own.gather(1, token[:, None])[:, 0]
            else:
                token, own_logp = draw_own(logits, self.temperature, rng, end_rate)
                logp[active] += own_logp
            units[active, step] = token
            with self.lock:  # an on-demand request waits for one step of the batch at most
                logits = cell.step(token, state)
            closing = (token == stop) | (token == END)
            if closing.any():
                closed = active[closing]
                length[closed] = step
                ended[closed] = token[closing] == END
                state.copy_rows(closing, final, closed)
                final_logits[closed] = logits[closing]
                going = ~closing
                if not going.any():
                    break
                active, logits, state = active[going], logits[going], state.select(going)
        lengths, units_of = length.tolist(), units.tolist()
        drawn = [row[:n] for row, n in zip(units_of, lengths, strict=True)]
        last: list[bool | None] = [None if n < 0 else e for n, e in
                                   zip(lengths, ended.tolist(), strict=True)]
        # a line break of several tokens (characters): its remaining tokens are read as given
        for token_id in self.line_break[1:]:
            follow = torch.tensor([last[r] is False for r in range(rows)])
            logp += torch.where(follow, torch.log_softmax(final_logits, -1)[:, token_id], 0.0)
            logits = cell.step(torch.full((rows,), token_id), final)
            final_logits[follow] = logits[follow]
        return drawn, logp.tolist(), last, final, final_logits


def _gather_logits(parents: list[Partial]) -> torch.Tensor:
    """(len(parents), V): each parent's next-token logits, one index_select per run of
    parents from the same batch."""
    parts = [source.index_select(0, rows) for source, _, _, rows in
             row_runs([(p.logits, p.row) for p in parents])]
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def _repeats(line: str, earlier: list[str]) -> bool:
    """Whether a line repeats the post: an earlier line again, a word twice in a row, or a
    three-word phrase of an earlier line (without this rule the likelihood's picks repeated
    themselves in 27% of posts, real posts do in 11%)."""
    if line in earlier:
        return True
    words = WORD.findall(line)
    if any(a == b for a, b in zip(words, words[1:], strict=False)):
        return True
    seen = {s for e in earlier for s in shingles(e)}
    return any(s in seen for s in shingles(line))


def _score(candidates: list[tuple[Partial, bool]], cohesion_weight: float) -> None:
    """Set each partial post's score among them: z(fluency) + cohesion_weight · z(cohesion)."""
    fluency = torch.tensor([c.log_likelihood / max(1, c.chars) for c, _ in candidates])
    scores = _z(fluency)
    if cohesion_weight:
        scores += cohesion_weight * _z(torch.tensor([c.cohesion for c, _ in candidates]))
    for (c, _), s in zip(candidates, scores.tolist(), strict=True):
        c.score = s


def _z(x: torch.Tensor) -> torch.Tensor:
    if len(x) < 2:
        return torch.zeros_like(x)
    return (x - x.mean()) / x.std().clamp_min(1e-6)

