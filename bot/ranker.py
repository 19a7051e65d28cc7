"""A ranker learnt from judgements: a pairwise logistic model over the features of bot/features.py.

Pairs (winner over loser): an editor's pick or edit over the candidates passed over in the same
review; a post readers voted up on balance over one they voted down; a higher grade over a lower
one by the same reader of the same sheet. The model says P(a beats b) = σ(w · (x_a − x_b)) on
standardised features, fitted by Newton's method with a small L2 penalty: a handful of numbers.

It is judged on held-out pairs, split by post: a post is held out by a hash of its text, no
pair with a held-out post is trained on, and each is judged on. Its pairwise accuracy there is
set against likelihood's (the higher mean log-likelihood wins) on the same pairs: it orders
review candidates only when it is the better of the two on at least MIN_HELD_OUT pairs;
otherwise likelihood orders them, as before. It is
stored beside its model (generator/modeldir.py `save_ranker`), fitted by /retrain or by
`python -m bot fit-ranker`.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

from bot import judgements
from bot.features import NAMES
from bot.i18n import Say, Texts
from bot.judgements import Judgement
from bot.review import Candidate
from common.db import Database
from generator.modeldir import load_ranker, ranker_mtime, save_ranker

log = logging.getLogger(__name__)
MIN_PAIRS = 60  # pairs the judgements must make before a ranker is fitted at all
MIN_HELD_OUT = 20  # held-out pairs a ranker must be judged on before it may rank
HELD_OUT_SHARE = 0.2  # of the posts, by a hash of their text (about 36% of the pairs)
L2 = 1e-2  # penalty on the weights of standardised features


@dataclass(frozen=True)
class Pair:
    winner: str  # texts
    loser: str
    x: np.ndarray  # winner's features − loser's (NAMES order)
    likelihoods: tuple[float, float]  # (winner's, loser's)


@dataclass(frozen=True)
class Ranker:
    weights: list[float]  # per NAMES, on features divided by `scale`
    scale: list[float]
    accuracy: float  # on the held-out pairs
    likelihood_accuracy: float  # likelihood's on the same pairs
    held_out: int  # pairs
    trained: int  # pairs
    fitted_at: float

    @property
    def used(self) -> bool:
        """Whether it orders candidates: better than likelihood on enough held-out pairs."""
        return self.held_out >= MIN_HELD_OUT and self.accuracy > self.likelihood_accuracy

    def score(self, features: Mapping) -> float | None:
        x = vector(features)
        return None if x is None else float(x / np.array(self.scale) @ np.array(self.weights))

    def describe(self, tr: Texts) -> str:
        which = tr.t("ranker.the_ranker") if self.used else tr.t("ranker.likelihood")
        return tr.t("ranker.summary", which=which, held_out=self.held_out,
                    accuracy=self.accuracy, likelihood=self.likelihood_accuracy,
                    trained=self.trained)


def vector(features: Mapping) -> np.ndarray | None:
    """A post's features as numbers in NAMES order; None when one is unknown."""
    values = [features.get(name) for name in NAMES]
    return None if any(v is None for v in values) else np.array(values, dtype=float)


def pairs(judged: Iterable[Judgement]) -> list[Pair]:
    """Every (winner, loser) pair the judgements make whose posts both have all features and
    were written by a model. A blind reading's real posts and other systems' name none: a review
    orders only a model's candidates, and a ranker fitted on those pairs mostly learnt to tell
    real posts from generated ones (79.8% of held-out pairs) and put a slot's least likely
    candidates first."""
    reviews: dict[int, list[Judgement]] = defaultdict(list)
    votes: dict[tuple[str, str], Judgement] = {}  # (reader, post) → the newest vote
    grades: dict[str, list[Judgement]] = defaultdict(list)
    for j in judged:
        if j.model_dir is None:
            continue
        if j.kind in ("pick", "edit", "pass") and j.review_id is not None:
            reviews[j.review_id].append(j)
        elif j.kind == "vote":
            votes[(j.source, j.text)] = j
        elif j.kind == "reading":
            grades[j.source].append(j)
    found = []
    for group in reviews.values():
        found += _ordered(group, lambda j: j.kind != "pass")
    balance: dict[str, float] = defaultdict(float)
    posts: dict[str, Judgement] = {}
    for (_, text), vote in votes.items():
        balance[text] += vote.value
        posts[text] = vote
    found += _ordered([posts[t] for t in posts if balance[t]], lambda j: balance[j.text] > 0)
    for group in grades.values():
        for a in group:
            found += [p for b in group if a.value > b.value and (p := _pair(a, b))]
    return found


def _ordered(group: list[Judgement], won) -> list[Pair]:
    """Each winner of a group over each of its losers."""
    winners, losers = [j for j in group if won(j)], [j for j in group if not won(j)]
    return [p for a in winners for b in losers if (p := _pair(a, b))]


def _pair(a: Judgement, b: Judgement) -> Pair | None:
    xa, xb = vector(a.features), vector(b.features)
    if xa is None or xb is None or a.text == b.text:
        return None
    return Pair(a.text, b.text, xa - xb, (a.features["likelihood"], b.features["likelihood"]))


def held_out(text: str) -> bool:
    """Whether a post's pairs are held out (stable across runs: a hash of its text)."""
    return zlib.crc32(text.encode()) % 1000 < 1000 * HELD_OUT_SHARE


def fit(judged: Iterable[Judgement]) -> Ranker:
    """Fit on the training pairs; judge against likelihood on the held-out ones."""
    every = pairs(judged)
    test = [p for p in every if held_out(p.winner) or held_out(p.loser)]
    train = [p for p in every if not (held_out(p.winner) or held_out(p.loser))]
    x = np.array([p.x for p in train]).reshape(-1, len(NAMES))
    scale = np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0) if len(train) else np.ones(
        len(NAMES))
    weights = _newton(x / scale) if len(train) else np.zeros(len(NAMES))
    margins = [float(p.x / scale @ weights) for p in test]
    return Ranker(
        weights=weights.tolist(), scale=scale.tolist(),
        accuracy=_accuracy(margins),
        likelihood_accuracy=_accuracy([p.likelihoods[0] - p.likelihoods[1] for p in test]),
        held_out=len(test), trained=len(train), fitted_at=time.time())


def _newton(x: np.ndarray, steps: int = 25) -> np.ndarray:
    """Weights of σ(w·x) = 1 for every row x (the winner's side), L2-penalised: the pairs
    are symmetric, so no intercept."""
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        gradient = x.T @ (1.0 - p) - L2 * len(x) * w
        hessian = (x * (p * (1.0 - p))[:, None]).T @ x + L2 * len(x) * np.eye(x.shape[1])
        w += np.linalg.solve(hessian, gradient)
    return w


def _accuracy(margins: list[float]) -> float:
    """Share of pairs whose winner scores higher (a tie counts half)."""
    if not margins:
        return 0.0
    return sum(1.0 if m > 0 else 0.5 if m == 0 else 0.0 for m in margins) / len(margins)


class Ranking:
    """Orders a review's candidates for the served model: its ranker where used, else
    likelihood (the order they come in). The stored ranker is read again when its file
    changes (a fit in another process)."""

    def __init__(self, model_dir: Callable[[], str]) -> None:
        self.model_dir = model_dir  # → the served model's directory
        self._cached: tuple[str, float | None, Ranker | None] = ("", None, None)

    def ranker(self) -> Ranker | None:
        model_dir = self.model_dir()
        mtime = ranker_mtime(model_dir)
        if self._cached[:2] != (model_dir, mtime):
            stored = load_ranker(model_dir)
            try:
                ranker = Ranker(**stored) if stored else None
            except TypeError:  # written by another version: rank by likelihood until refitted
                log.warning("the stored ranker of %s is not readable; refit it", model_dir)
                ranker = None
            self._cached = (model_dir, mtime, ranker)
        return self._cached[2]

    def order(self, candidates: list[Candidate]) -> tuple[str, list[Candidate]]:
        ranker = self.ranker()
        scores = [ranker.score(c.features) for c in candidates] if ranker and ranker.used else []
        if not scores or any(s is None for s in scores):
            return "likelihood", candidates
        order = sorted(range(len(candidates)), key=lambda i: -scores[i])
        return "ranker", [candidates[i] for i in order]

    def describe(self, tr: Texts) -> str:
        ranker = self.ranker()
        return ranker.describe(tr) if ranker else tr.t("ranker.none")

    def fit(self, judged: Iterable[Judgement]) -> tuple[Ranker | None, int]:
        """Fit on `judged` and store the ranker with the served model when they make at least
        MIN_PAIRS pairs; (the ranker or None, how many pairs)."""
        judged = list(judged)
        count = len(pairs(judged))
        if count < MIN_PAIRS:
            return None, count
        ranker = fit(judged)
        model_dir = self.model_dir()
        save_ranker(model_dir, asdict(ranker))
        log.info("ranker for %s: accuracy %.3f vs likelihood %.3f on %d held-out pairs",
                 os.path.basename(model_dir), ranker.accuracy, ranker.likelihood_accuracy,
                 ranker.held_out)
        return ranker, count

    def refit(self, db: Database) -> Say:
        """Fit on every judgement in the database (/retrain, `python -m bot fit-ranker`); a
        line saying what ranks now, for whoever reads it."""
        ranker, count = self.fit(judgements.read(db))
        if ranker is None:
            return lambda tr: tr.t("ranker.not_fitted", pairs=count, needed=MIN_PAIRS)
        return lambda tr: tr.t("ranker.fitted", pairs=count, ranker=ranker.describe(tr))
