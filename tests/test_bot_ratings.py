"""Votes (one per user per post, changeable), /top order, and the temperature bandit."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from bot.outbox import Outbox
from bot.ratings import Ratings

TEMPERATURES = (0.7, 0.85, 1.0)


def _posts(database, temperatures):
    outbox = Outbox(database, [])
    return [outbox.store(f"ПОСТ {i}", t, "schedule") for i, t in enumerate(temperatures)]


def test_one_vote_per_user_per_post_and_it_can_change(database):
    ratings = Ratings(database)
    (post,) = _posts(database, [0.85])
    assert ratings.vote(post, user_id=1, value=1) == (1, 0)
    assert ratings.vote(post, user_id=1, value=1) == (1, 0)  # the same vote again: still one
    assert ratings.vote(post, user_id=2, value=1) == (2, 0)
    assert ratings.vote(post, user_id=1, value=-1) == (1, 1)  # changed its mind
    assert ratings.vote(post + 100, user_id=1, value=1) is None  # no such post
    with pytest.raises(ValueError):
        ratings.vote(post, user_id=3, value=5)


def test_top_orders_by_score(database):
    ratings = Ratings(database)
    a, b, c = _posts(database, [0.7, 0.85, 1.0])
    for user in range(3):
        ratings.vote(b, user, 1)
    ratings.vote(a, 1, 1)
    ratings.vote(a, 2, -1)
    ratings.vote(c, 1, -1)
    best = [(r.outbox_id, r.ups, r.downs) for r in ratings.top()]
    assert best == [(b, 3, 0), (a, 1, 1), (c, 0, 1)]
    assert [r.outbox_id for r in ratings.top(limit=1)] == [b]


def test_bandit_explores_without_votes_and_prefers_the_liked_temperature(database):
    ratings = Ratings(database)
    rng = random.Random(0)
    picks = Counter(ratings.choose_temperature(TEMPERATURES, rng) for _ in range(600))
    assert set(picks) == set(TEMPERATURES)
    assert min(picks.values()) > 120  # about a third each

    liked, meh, disliked = _posts(database, [0.7, 0.85, 1.0])
    for user in range(12):
        ratings.vote(liked, user, 1)
        ratings.vote(disliked, user, -1)
        ratings.vote(meh, user, 1 if user % 2 else -1)
    arms = {arm.temperature: arm for arm in ratings.arms(TEMPERATURES)}
    assert (arms[0.7].ups, arms[0.7].downs, arms[0.7].posts) == (12, 0, 1)
    picks = Counter(ratings.choose_temperature(TEMPERATURES, rng) for _ in range(600))
    assert picks[0.7] > 0.9 * 600
    assert picks[1.0] < picks[0.85] + 5

    # Readers change their minds: the bandit follows.
    for user in range(12):
        ratings.vote(liked, user, -1)
        ratings.vote(disliked, user, 1)
    picks = Counter(ratings.choose_temperature(TEMPERATURES, rng) for _ in range(600))
    assert picks[1.0] > 0.9 * 600


def test_bandit_ignores_posts_at_temperatures_no_longer_configured(database):
    ratings = Ratings(database)
    (old,) = _posts(database, [1.3])
    ratings.vote(old, 1, 1)
    ups = {a.temperature: a.ups for a in ratings.arms(TEMPERATURES)}
    assert ups == dict.fromkeys(TEMPERATURES, 0)
    # An empty bot.temperatures never gets here: the config loader refuses it (test_config.py).
