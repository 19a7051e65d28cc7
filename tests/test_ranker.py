"""The ranker learnt from judgements: its pairs, a fit that beats likelihood where the editors
follow something else, likelihood kept where it is what they follow, too few judgements, and the
fitted ranker ordering a review and named by /status."""

from __future__ import annotations

import random
import shutil

import pytest

from bot import judgements
from bot.features import NAMES, features
from bot.i18n import texts_for
from bot.judgements import Judgement
from bot.ranker import MIN_PAIRS, Ranking, fit, pairs
from bot.review import Candidate
from common.db import open_database
from generator.modeldir import RANKER_FILE
from harness.pipeline import ADMIN, AppThread, ask, run, secrets, wait_until, write_config
from tests.test_bot_review import EDITORS, _config, _gather, _pages, _post

EN = texts_for("en")


def _features(rng: random.Random, cohesion: float) -> dict:
    values = {name: rng.uniform(0, 1) for name in NAMES}
    values.update(likelihood=-2 + rng.uniform(0, 1), cohesion=cohesion)
    return values


def _reviews(n: int, follow: str, seed: int = 0) -> list[Judgement]:
    """n reviews of 5 candidates; the editor picks the one of highest `follow` feature."""
    rng = random.Random(seed)
    made = []
    for review in range(1, n + 1):
        shown = [_features(rng, rng.uniform(0, 1)) for _ in range(5)]
        best = max(range(5), key=lambda i: shown[i][follow])
        made += [Judgement("pick" if i == best else "pass", "editor:1", float(i == best),
                           f"ПОСТ {review} {i}", "m", f, review_id=review)
                 for i, f in enumerate(shown)]
    return made


def test_pairs_from_picks_votes_and_readings():
    f = {name: 0.0 for name in NAMES}
    judged = [
        Judgement("pick", "editor:1", 1, "A", "m", f, review_id=1),
        Judgement("pass", "editor:1", 0, "B", "m", f, review_id=1),
        Judgement("pass", "editor:1", 0, "C", "m", {**f, "likelihood": None}, review_id=1),
        Judgement("vote", "reader:1", 1, "D", "m", f),
        Judgement("vote", "reader:1", -1, "D", "m", f),  # changed: the newest holds
        Judgement("vote", "reader:2", -1, "D", "m", f),
        Judgement("vote", "reader:1", 1, "E", "m", f),
        Judgement("reading", "reading:S:1", 4, "F", "m", f),
        Judgement("reading", "reading:S:1", 2, "G", "m", f),
        Judgement("reading", "reading:S:2", 1, "F", "m", f),  # another reader: no pair
        # a reading's real post (or another system's) names no model: in no pair
        Judgement("reading", "reading:S:1", 5, "REAL", None, f),
        Judgement("reading", "reading:S:1", 1, "MARKOV", None, f),
    ]
    assert sorted((p.winner, p.loser) for p in pairs(judged)) == [
        ("A", "B"), ("E", "D"), ("F", "G")]  # C has no likelihood: in no pair


def test_a_ranker_learns_what_the_editors_follow_and_ranks_only_when_better(tmp_path):
    ranker = fit(_reviews(60, follow="cohesion"))
    assert ranker.held_out >= 20 and ranker.trained >= 100
    assert ranker.accuracy >= 0.9 > ranker.likelihood_accuracy
    assert ranker.used
    by_likelihood = fit(_reviews(60, follow="likelihood"))
    assert by_likelihood.likelihood_accuracy == 1.0 and not by_likelihood.used

    ranking = Ranking(lambda: str(tmp_path))
    assert ranking.describe(EN) == "likelihood (no ranker fitted yet)"
    rng = random.Random(9)
    candidates = [Candidate(i, f"П {i}", 0.45, _features(rng, c))
                  for i, c in enumerate((0.1, 0.9, 0.5))]
    assert ranking.order(candidates) == ("likelihood", candidates)
    made, count = ranking.fit(_reviews(60, follow="cohesion"))
    assert count >= MIN_PAIRS and made.used and (tmp_path / RANKER_FILE).exists()
    label, ordered = ranking.order(candidates)
    assert label == "ranker" and [c.text for c in ordered] == ["П 1", "П 2", "П 0"]
    assert ranking.describe(EN).startswith("the ranker (held-out pairs: ")
    sampled = [Candidate(1, "П", 0.45, {**candidates[0].features, "likelihood": None})]
    assert ranking.order(sampled)[0] == "likelihood"  # a post with no score: as it came

    # a fit where likelihood wins is stored too, and likelihood orders again
    ranking.fit(_reviews(60, follow="likelihood"))
    assert ranking.order(candidates) == ("likelihood", candidates)
    assert ranking.describe(EN).startswith("likelihood (held-out pairs: ")


def test_too_few_judgements_fit_nothing(database, tmp_path):
    with database.write() as conn:
        judgements.add(conn, _reviews(3, follow="cohesion"))
    assert Ranking(lambda: str(tmp_path)).refit(database)(EN) == (
        f"Ranker not fitted: the judgements make 12 pairs, {MIN_PAIRS} are needed;"
        " likelihood orders review candidates.")
    assert not (tmp_path / RANKER_FILE).exists()


@pytest.mark.slow  # the fit-ranker command as a process
def test_the_fitted_ranker_orders_a_review_and_status_names_it(tmp_path, bot_model, telegram):
    model = shutil.copytree(bot_model, tmp_path / "model")  # the ranker is stored beside it
    url = f"sqlite:///{tmp_path / 'data' / 'neurobugurt.sqlite3'}"
    best_first = _gather(url, str(model), n=5)  # likelihood: -1.0, -1.1, … in this order
    raw = _config(tmp_path, model, telegram, url)
    config = write_config(tmp_path, raw)
    database = open_database(url)
    with database.write() as conn:  # editors who pick the post with the most lines
        judgements.add(conn, _reviews(60, follow="lines"))
    database.close()
    done = run("bot", "fit-ranker", "--config", str(config), env=secrets(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Ranker fitted on 240 pairs. Review candidates are ordered"
                                  " by the ranker (held-out pairs: ")
    ranking = Ranking(lambda: str(model))
    assert ranking.ranker().used
    gathered = [Candidate(0, text, 0.45, features(text, -1.0 - i / 10, 0.45))
                for i, text in enumerate(best_first)]
    expected = [c.text.split("\n")[0] for c in ranking.order(gathered)[1]]
    with AppThread(raw):
        assert "Ranking: the ranker (held-out pairs" in ask(telegram, "/status", ADMIN)
        assert _post(telegram).startswith("Review #1 sent")
        (page,) = wait_until(lambda: _pages(telegram, EDITORS[0]), 30, "a page")
        assert "best first (ranker)" in page["text"]
        shown = [line for line in page["text"].split("\n") if line.startswith("КАНДИДАТ")]
        assert shown == expected
