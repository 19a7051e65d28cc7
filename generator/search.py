"""Line-by-line search: a post built one line at a time under a fluency and a cohesion term.

Best-of-N over whole posts keeps one lucky draw of ~6 lines; here every line is chosen: from each
of the `beam` posts kept so far, `lines_drawn` continuations of the next line are sampled from the
model's state (one batch), each is scored, and the best `beam` partial posts go on, until the
model ends the posts. A continuation's score is the z-score, among the continuations of that
step, of
- fluency: the post's mean log-likelihood per character so far (the model's own view), plus
- `cohesion_weight` × the share of its lines that reuse a content word of an earlier line,
so neither term's scale decides alone. (A coherence judge trained on corrupted real posts was a
third term until blind readings found it did not pay: BENCHMARKS.md, sheets P and Q.) The
opening lines are kept as drawn (`beam` distinct ones): chosen by likelihood, nearly every post
opened with the corpus's commonest line. Lines that repeat the post (`_repeats`), hold the
unknown symbol or run over MAX_LINE characters are dropped; a post may end only after
`min_lines` lines (its end drawn at the model's own rate, `cool_end`), and finished posts pass
the same quality gate as sampled ones.
"""

from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass

import torch

from common.corpus import LINE_BREAK
from generator import gate
from generator.model import CellState
from generator.vocab import END


@dataclass
class SearchConfig:
    # continuations sampled from each kept post at every line: 8 × 4 cost 0.45 CPU s a search
    # on the bundle (AMX Xeon, bench/search_speed.py; 9.9 s when first measured, on an AVX2
    # EPYC with the judge and torch.multinomial: BENCHMARKS.md)
    lines_drawn: int = 8
    beam: int = 4  # partial posts kept after every line
    min_lines: int = 3  # real posts have 5.4 on average; likelihood's picks ended after 3.7
    max_lines: int = 14
    # weight of lexical cohesion, the share of lines that reuse a content word of an earlier
    # line (real posts 0.28, the search's 0.08, the Markov chain's 0.05: BENCHMARKS.md)
    cohesion_weight: float = 1.0  # kept by a blind reading (sheet C, BENCHMARKS.md)
    temperature: float = 0.45  # read best of 0.35/0.45/0.6/0.75 (sheets E, F: BENCHMARKS.md)
    # the first line's temperature (None: `temperature`). Cooled, openings collapse onto the
    # corpus's commonest (93% of the picks open with "ТЫ", real posts 25%); drawn at 1.0 they
    # spread as real ones do (27%) but both readers of sheet P rated the posts lower (−0.28 /
    # −0.07 against the shipped search): the stock openings carry what coherence there is
    opening_temperature: float | None = None
    top_p: float = 1.0  # nucleus: draw from the smallest set of units holding this probability
    # locally typical sampling (Meister et al. 2022): draw from the units whose surprisal is
    # nearest the step's entropy, as many as hold this probability; 1.0 keeps every unit
    typical_p: float = 1.0
    # whether the post's end is cooled like every other unit. Cooled, the line break gains on
    # the end and posts run longer (7.2–7.4 lines a post at 0.45 against 4.9–5.0, real
    # validation posts a median of 5) at 2.2× the CPU; False draws END at the model's own rate
    # (temperature 1) and cools only the choice among the rest. Four readers on two sheets: the
    # same coherence (−0.01 on average; sheets J, K in BENCHMARKS.md)
    cool_end: bool = False


@dataclass
class Partial:
    """A post being built: its lines and the model's state after them."""

    lines: list[str]
    state: CellState  # one row
    logits: torch.Tensor  # (1, V): the next token's
    log_likelihood: float = 0.0  # natural log, over the characters so far
    chars: int = 0
    score: float = 0.0

    @property
    def text(self) -> str:
        return LINE_BREAK.join(self.lines)

    @property
    def cohesion(self) -> float:
        return cohesion(self.lines)


class LineSearch:
    """Builds posts line by line from a `Generator`'s model (its cell, vocab, gate, novelty)."""

    def __init__(self, generator, config: SearchConfig | None = None,
                 lock: threading.Lock | None = None):
        self.gen = generator
        self.config = config or SearchConfig()
        self.lock = lock or contextlib.nullcontext()  # held for one line step at a time
        self.line_break = generator.vocab.encode(LINE_BREAK)
        # the separator's first token ends a line; a lone newline (a unit of its own in a
        # subword vocabulary) would make a line without @, which the gate refuses
        newline = generator.vocab.encode("\n")
        self.banned = newline if len(newline) == 1 and newline != self.line_break[:1] else []

    def post(self, rng: torch.Generator) -> tuple[str, float] | None:
        """(text, mean log-likelihood per character) of the best post found, or None when no
        finished post passed the gate."""
        cfg, gen = self.config, self.gen
        start = Partial([], gen.start_state, gen.start_logits)
        beams, finished = [start], []
        for depth in range(cfg.max_lines):
            with self.lock, torch.inference_mode():
                temperature = cfg.temperature if depth or cfg.opening_temperature is None \
                    else cfg.opening_temperature
                candidates = self._expand(beams, rng, may_end=depth + 1 >= cfg.min_lines,
                                          temperature=temperature)
            if not candidates:
                break
            _score(candidates, cfg.cohesion_weight)
            ended = [c for c, last in candidates if last]
            finished += [c for c in ended if self._passes(c.text)]
            going = [c for c, last in candidates if not last]
            if depth == 0:  # openings as drawn: chosen by likelihood, most posts open alike
                beams = list({c.text: c for c in going}.values())[: cfg.beam]
            else:
                beams = sorted(going, key=lambda c: -c.score)[: cfg.beam]
            if len(finished) >= cfg.beam or not beams:
                break
        if not finished:
            return None
        _score([(c, True) for c in finished], cfg.cohesion_weight)
        best = max(finished, key=lambda c: c.score)
        return best.text, best.log_likelihood / max(1, best.chars)

    def _passes(self, text: str) -> bool:
        return gate.form_reason(text) is None and self.gen.novelty.copy_reason(text) is None

    def _expand(self, beams: list[Partial], rng: torch.Generator, may_end: bool,
                temperature: float) -> list[tuple[Partial, bool]]:
        """Every usable next line of every beam: (the longer partial post, whether it ended)."""
        k = self.config.lines_drawn
        rows = len(beams) * k
        parent = [b for b in beams for _ in range(k)]
        state = _stack([b.state for b in parent])
        logits = torch.cat([b.logits for b in parent])
        drawn, logp, last, final, final_logits = self._draw_lines(state, logits, rows, rng,
                                                                  may_end, temperature)
        keep = []
        for r in range(rows):
            line = self.gen.vocab.decode(drawn[r])
            if (last[r] is None or not line.strip() or "\ufffd" in line or "\n" in line
                    or len(line) > gate.MAX_LINE or line == gate.SEPARATOR
                    or _repeats(line, parent[r].lines)):
                continue
            keep.append((r, line))
        out = []
        for r, line in keep:
            p, end = parent[r], bool(last[r])
            chars = len(line) + (1 if end else len(LINE_BREAK))
            out.append((Partial(p.lines + [line], _row(final, r), final_logits[r : r + 1],
                                p.log_likelihood + logp[r], p.chars + chars), end))
        return out

    def _draw_lines(self, state: CellState, logits: torch.Tensor, rows: int,
                    rng: torch.Generator, may_end: bool, temperature: float):
        """Sample one line per row. Returns the tokens of each line (line break excluded), its
        log-probability (line break or END included), whether it ended the post (None: cut at
        the length cap), and the state and logits after each row's line break."""
        cfg, cell = self.config, self.gen.cell
        stop = self.line_break[0]
        banned = self.banned + ([] if may_end else [END])
        final = CellState(rows, len(state.c), state.c[0].shape[1])
        final_logits = torch.zeros_like(logits)
        drawn: list[list[int]] = [[] for _ in range(rows)]
        logp = torch.zeros(rows)
        last: list[bool | None] = [None] * rows
        open_rows = torch.ones(rows, dtype=torch.bool)
        cap = gate.MAX_LINE // 2 + 8  # tokens: a unit writes ≥ 1 character, most write 2–4
        for _ in range(cap):
            if banned:
                logits = logits.clone()
                logits[:, banned] = -math.inf
            own = torch.log_softmax(logits, -1)  # the model's own (temperature 1) log-probs
            probs = nucleus(logits / temperature, cfg.top_p)
            if cfg.typical_p < 1.0:
                probs = typical(probs, cfg.typical_p)
            if may_end and not cfg.cool_end:
                probs = end_at_rate(probs, own[:, END].exp())
            token = draw(probs, rng)
            logp += torch.where(open_rows, own.gather(1, token[:, None])[:, 0], torch.zeros(rows))
            logits = cell.step(token, state)
            closing = open_rows & ((token == stop) | (token == END))
            for r in closing.nonzero()[:, 0].tolist():
                last[r] = int(token[r]) == END
            for t, r in zip(token.tolist(), range(rows), strict=True):
                if open_rows[r] and not closing[r]:
                    drawn[r].append(t)
            if closing.any():
                _copy_rows(state, final, closing)
                final_logits[closing] = logits[closing]
            open_rows &= ~closing
            if not open_rows.any():
                break
        # a line break of several tokens (characters): its remaining tokens are read as given
        for token_id in self.line_break[1:]:
            follow = torch.tensor([last[r] is False for r in range(rows)])
            logp += torch.where(follow, torch.log_softmax(final_logits, -1)[:, token_id], 0.0)
            logits = cell.step(torch.full((rows,), token_id), final)
            final_logits[follow] = logits[follow]
        return drawn, logp.tolist(), last, final, final_logits


def nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """(rows, V) probabilities of softmax(logits) kept to each row's top-p nucleus (the
    smallest set of units reaching top_p; the rest 0); top_p ≥ 1 keeps every unit. The sampler
    of whole posts (sample._draw) and the line search both draw through it."""
    probs = logits.softmax(-1)
    if top_p >= 1.0:
        return probs
    sorted_probs, order = probs.sort(-1, descending=True)
    drop = sorted_probs.cumsum(-1) - sorted_probs >= top_p  # keep the smallest set reaching it
    return probs.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), 0.0)


def draw(probs: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """One unit a row, (rows,), from (rows, V) probabilities (unnormalised allowed): the first
    unit whose cumulative probability passes a uniform draw, one uniform number a row. The
    search and the whole-post sampler's top-k / top-p path both draw through it.
    torch.multinomial drew the same but took 2.2 ms a call at 32 rows × 4k units, 60% of a
    search's CPU; this takes 0.08 ms (BENCHMARKS.md). A unit of probability 0 adds no step to
    the cumulative sum, so it is never the first to pass."""
    cdf = probs.cumsum(-1)
    total = cdf[:, -1:]
    u = torch.rand(len(probs), 1, generator=rng, dtype=cdf.dtype) * total
    u = torch.minimum(u, torch.nextafter(total, torch.zeros_like(total)))  # rounding may reach it
    return torch.searchsorted(cdf, u, right=True)[:, 0]


def typical(probs: torch.Tensor, mass: float) -> torch.Tensor:
    """(rows, V) probabilities kept to each row's locally typical set: units ranked by how far
    their surprisal -log p lies from the row's entropy, the nearest kept until they hold `mass`
    (at least one unit); the rest 0. Unnormalised: torch.multinomial normalises."""
    logp = probs.clamp_min(1e-30).log()
    entropy = -(probs * logp).sum(-1, keepdim=True)
    distance = (-logp - entropy).abs().masked_fill(probs == 0, math.inf)
    sorted_distance, order = distance.sort(-1)
    held = probs.gather(-1, order).cumsum(-1)
    drop = held - probs.gather(-1, order) >= mass  # keep the nearest set reaching the mass
    drop |= sorted_distance == math.inf
    return probs.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), 0.0)


def end_at_rate(probs: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """(rows, V) probabilities with END's set to `end` (rows,) and the rest rescaled to fill
    the remaining mass (probs may be unnormalised)."""
    probs = probs / probs.sum(-1, keepdim=True)
    rest = (1 - probs[:, END]).clamp_min(1e-12)
    out = probs * ((1 - end) / rest)[:, None]
    out[:, END] = end
    return out


def _repeats(line: str, earlier: list[str]) -> bool:
    """Whether a line repeats the post: an earlier line again, a word twice in a row, or a
    three-word phrase of an earlier line (the likelihood's picks repeated themselves in 27% of
    posts, real posts in 11%: BENCHMARKS.md)."""
    if line in earlier:
        return True
    words = gate.WORD.findall(line)
    if any(a == b for a, b in zip(words, words[1:], strict=False)):
        return True
    seen = {s for e in earlier for s in gate.shingles(e)}
    return any(s in seen for s in gate.shingles(line))


# Words are cut to this many letters so that inflected forms of one word match (Russian
# endings); shorter words are mostly function words.
STEM_LETTERS = 5
# The commonest cut words of the bugurt validation posts that tie no line to another.
FUNCTION_STEMS = frozenset({
    "КОТОР", "ТОЛЬК", "ПОТОМ", "ПОСЛЕ", "ЧТОБЫ", "КОГДА", "НИЧЕГ", "БУДЕТ", "ПОЧЕМ", "МОЖЕТ",
    "ТЕПЕР", "ЧЕРЕЗ", "СВОЕЙ", "СВОЁЙ", "СВОИМ", "КАКОЙ", "ПРОСТ", "ВМЕСТ", "ОЧЕНЬ", "ВООБЩ",
    "ЗАЧЕМ", "ТАКОЙ", "ТАКОЕ", "ТАКАЯ", "ТАКИЕ", "ВСЕГД", "ОПЯТЬ", "СНОВА", "СРАЗУ", "КОНЕЧ",
    "ПОКАЗ", "НАКОН", "ПОЧТИ", "ЭТОГО", "ЭТОМУ", "БОЛЬШ", "МОЖЕШ",
})


def _stems(line: str) -> set[str]:
    return {w[:STEM_LETTERS] for w in gate.WORD.findall(line.upper())
            if len(w) >= STEM_LETTERS and w.isalpha()} - FUNCTION_STEMS


def cohesion(lines: list[str]) -> float:
    """The share of lines after the first that reuse a content word of an earlier line."""
    seen, linked = set(), 0
    for i, line in enumerate(lines):
        stems = _stems(line)
        linked += bool(i and stems & seen)
        seen |= stems
    return linked / max(1, len(lines) - 1)


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


def _stack(states: list[CellState]) -> CellState:
    """One state of len(states) rows from one-row states."""
    first = states[0]
    out = CellState(len(states), len(first.c), first.c[0].shape[1])
    for layer in range(len(first.c)):
        torch.cat([s.c[layer] for s in states], out=out.c[layer])
    for k in range(len(first.buffers)):
        torch.cat([s.buffers[k] for s in states], out=out.buffers[k])
    return out


def _row(state: CellState, r: int) -> CellState:
    """Row r of a state as a one-row state."""
    out = CellState(1, len(state.c), state.c[0].shape[1])
    for mine, theirs in zip(state.c + state.buffers, out.c + out.buffers, strict=True):
        theirs.copy_(mine[r : r + 1])
    return out


def _copy_rows(src: CellState, dst: CellState, rows: torch.Tensor) -> None:
    for a, b in zip(src.c + src.buffers, dst.c + dst.buffers, strict=True):
        b[rows] = a[rows]
