"""Every line the bot says, in one place: short, saying what happened and what to do.

The exception: each command's /help line and menu description sit with the command itself, in
the command table at the end of runner.py.
"""

from __future__ import annotations

import datetime as dtm
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bot.outbox import Result
from bot.ratings import Arm, Rated
from bot.review import EDIT, NONE, PICK, PUBLISHED, TIMEOUT, Candidate, Review

START = (
    "Hi! I write bugurts: short capital-letter stories whose lines are separated by '@'.\n"
    "Send /bugurt for a fresh one, or /bugurt YOUR TEXT for one that starts with your text.\n"
    "/help lists all commands."
)
UNKNOWN = "I don't know /{name}. /help lists what I can do."
ADMIN_ONLY = "/{name} is for the bot's admins only."
NOT_A_COMMAND = "I answer commands: send /bugurt for a bugurt, or /help."
COOLDOWN = "Please wait {seconds} s before the next /bugurt."
PRIME_TOO_LONG = (
    "Your beginning has {length} characters; at most {limit} fit. Please send a shorter one."
)
PRIME_EMPTY = (
    "Your text has no characters I can write with; send /bugurt alone or with some words."
)
LEFT_OUT = "I left out characters I can't write: {chars}"
BUSY = "I'm writing many bugurts right now; please try again in a minute."
NO_GOOD_POST = "I couldn't write a good one this time; please try again."
# Inline answers with no posts: the text of a button above the empty list (at most 64 chars).
INLINE_TOO_LONG = "Too long: start a bugurt with at most {limit} characters"
INLINE_NO_CHARS = "No letters I can write with: try words"
INLINE_SLOW_DOWN = "Too many queries: please wait a minute"
INLINE_BUSY = "I'm writing many bugurts now: try again in a minute"
INLINE_NO_GOOD_POST = "No good bugurt this time: please try again"
INLINE_ERROR = "Something went wrong on my side: please try again"
NO_TARGETS = (
    "Nothing to publish to: set telegram.channel, or vk.post_token and vk.post_community, "
    "in the config."
)
PAUSED = "Scheduled posting paused. /resume starts it again."
ALREADY_PAUSED = "Scheduled posting is already paused. /resume starts it again."
RESUMED = "Scheduled posting resumed: {schedule}."
NOT_PAUSED = "Scheduled posting was not paused: {schedule}."
SCHEDULE_USAGE = (
    "Now: {schedule}.\nTo change it: /schedule MIN HOUR DAY MONTH WEEKDAY, "
    "e.g. /schedule 0 */4 * * *"
)
BAD_CRONTAB = "Can't use '{line}' as a schedule: {error}. Example: /schedule 0 */4 * * *"
SCHEDULED = "Schedule set: {schedule}."
RETRAIN_STARTING = "Retrain: starting…"
RETRAIN_SCRAPING = "scraping new posts"
RETRAIN_EVALUATING = "evaluating both models"
RETRAIN_PLOT = "Bits per character while training: train and validation"
RETRAIN_RUNNING = "A retrain is already running ({stage}); /status shows its progress."
RETRAIN_ELSEWHERE = "Another bot process is retraining; try again when it is done."
NO_ROLLBACK = "There is no previous model to go back to."
ROLLED_BACK = "Serving the previous model again: {model_dir}."
VOTE_UNKNOWN = "This post is not in my records any more."
VOTED_UP = "Thanks! 👍 counted."
VOTED_DOWN = "Thanks! 👎 counted."
INTERNAL_ERROR = "Something went wrong on my side; please try again later."
# Review mode (bot/editors.py): what editors see and are told.
REVIEW_NO_DESK = "Review mode has no editors to ask here: set telegram.admins or review.chat."
REVIEW_NOT_EDITOR = "Only the channel's editors decide what is published."
REVIEW_UNKNOWN = "This review is not in my records any more; nothing was published."
REVIEW_NOT_SHOWN = "That post was not shown in this review; nothing was published."
REVIEW_EMPTY_EDIT = "Your corrected text is empty; nothing was published."
REVIEW_NO_MORE = "There are no more candidates: publish one shown, or tap None."
REVIEW_SHOWN = "The next candidates were just shown."
REVIEW_TYPED_HINT = (
    "Type a number to publish that post, next for more, none for none this time, "
    "or edit N LINE @ LINE @ LINE to publish a corrected post."
)
REVIEW_NEXT = "Next"
REVIEW_NONE = "None this time"
REVIEW_HOW = "Tap a number to publish that post, or reply to this message with a corrected text."
NO_REVIEWS = "No review is waiting for the editors."


def published(outbox_id: int, temperature: float, results: Sequence[Result]) -> str:
    parts = []
    for r in results:
        if r.status == "sent":
            parts.append(f"{r.target}: sent (id {r.detail})")
        elif r.status == "pending":
            parts.append(f"{r.target}: will retry ({r.detail})")
        else:
            parts.append(f"{r.target}: failed ({r.detail})")
    return f"Post #{outbox_id} (temperature {temperature:g}): " + "; ".join(parts) + "."


def top(rated: Sequence[Rated]) -> str:
    if not rated:
        return "No votes yet: readers vote with 👍/👎 under published posts."
    lines = ["Readers' favourites:"]
    for r in rated:
        first = r.text.split("\n", 1)[0]
        first = first if len(first) <= 60 else first[:57] + "..."
        lines.append(f"#{r.outbox_id} 👍{r.ups} 👎{r.downs}: {first}")
    return "\n".join(lines)


def status(
    model_dir: str,
    info: dict,
    schedule: str,
    targets: list[str],
    counts: dict[str, int],
    last: Mapping[str, Any] | None,
    arms: Sequence[Arm],
    retrain: str,
    pool: str,
    uptime: float,
    review: str = "auto",
    ranking: str = "likelihood",
) -> str:
    bpc = info.get("val_bpc")
    bpc_text = f"val bpc {bpc:.3f}" if isinstance(bpc, int | float) else "val bpc unknown"
    params = info.get("params")
    outbox = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("pending", "sent", "failed"))
    if last is None:
        last_text = "none yet"
    else:
        when = dtm.datetime.fromtimestamp(last["created_at"], dtm.UTC)
        last_text = f"#{last['id']} at {when:%Y-%m-%d %H:%M} UTC to {last['targets']}"
    bandit = ", ".join(f"{a.temperature:g} (👍{a.ups} 👎{a.downs}, {a.posts} posts)" for a in arms)
    hours, rest = divmod(int(uptime), 3600)
    return "\n".join(
        [
            f"Model: {model_dir} ({bpc_text}, {params or '?'} parameters)",
            f"Schedule: {schedule}",
            f"Targets: {', '.join(targets) or 'none configured'}",
            f"Outbox: {outbox}",
            f"Last post: {last_text}",
            f"Temperatures: {bandit}",
            f"Retrain: {retrain}",
            f"Pool: {pool}",
            f"Review: {review}",
            f"Ranking: {ranking}",
            f"Uptime: {hours}h {rest // 60:02d}m",
        ]
    )


def retrain_progress(text: str) -> str:
    return f"Retrain: {text}"


def retrain_training(
    progress: float, chars_per_sec: float = 0.0, val_bpc: float | None = None
) -> str:
    """'training 40%, 12,345 chars/s, val bpc 2.345' (the trainer's time estimate can overshoot)."""
    text = f"training {100 * min(max(progress, 0.0), 1.0):.0f}%"
    if chars_per_sec:
        text += f", {chars_per_sec:,.0f} chars/s"
    if val_bpc is not None:
        text += f", val bpc {val_bpc:.3f}"
    return text


def retrain_no_corpus(corpus: Path) -> str:
    return f"no corpus at {corpus}: set vk.token so the scrape can make one"


def retrain_no_split(val_path: Path, config_path: str) -> str:
    return (
        f"the corpus has no validation split {val_path}: run `python -m scraper --config "
        f"{config_path}` (it writes the corpus and both splits), then /retrain again"
    )


def retrain_result(new_bpc: float, old_bpc: float, swapped: str | None) -> str:
    verdict = "better: now serving it" if swapped else "not better: keeping the served model"
    return f"val bpc {new_bpc:.3f} vs {old_bpc:.3f}, {verdict}"


def retrain_done(model_dir: Path, result: str) -> str:
    return f"Retrain done. New model {model_dir}: {result}."


def retrain_failed(stage: str, reason: str, swapped: str | None) -> str:
    served = "The served model is unchanged."
    if swapped:
        served = f"Now serving the new model {swapped}."
    return f"Retrain failed at {stage}: {reason}\n{served}"


def retrain_samples(posts: Sequence[str], swapped: str | None) -> str:
    """The trained model's posts, labelled with what it is: served now, or rejected."""
    model = "the new model (now served)" if swapped else "the rejected model (not served)"
    if not posts:
        return f"Samples: {model} wrote none that passed the quality gate."
    count = f"{len(posts)} sample" + ("s" if len(posts) > 1 else "")
    return f"{count.capitalize()} from {model}:\n\n" + "\n\n".join(posts)


def _clock(seconds: float) -> str:
    return f"{dtm.datetime.fromtimestamp(seconds, dtm.UTC):%Y-%m-%d %H:%M} UTC"


def review_page(review: Review, candidates: Sequence[Candidate]) -> str:
    """One page of a review: its candidates, numbered."""
    first, last = candidates[0].number, candidates[-1].number
    head = (f"Review #{review.id}: posts {first}–{last} of {review.total}, best first"
            f" ({review.ranker}). Decide by {_clock(review.deadline)}.")
    body = "\n\n".join(f"{c.number}.\n{c.text}" for c in candidates)
    return f"{head}\n\n{body}\n\n{REVIEW_HOW}"


def review_sent(review: Review, chats: int) -> str:
    return (f"Review #{review.id} sent to {chats} editor chat(s): {review.shown} of"
            f" {review.total} posts; decide by {_clock(review.deadline)}.")


def review_more(first: int, last: int) -> str:
    return f"Showing posts {first}–{last}."


def _outcome(review: Review, name: str = "") -> str:
    """How a review ended, in a few words."""
    who = f" by {name}" if name else (f" by user {review.decided_by}" if review.decided_by
                                      else "")
    if review.decision == PICK:
        return f"post {review.chosen} published{who}"
    if review.decision == EDIT:
        return f"a corrected post {review.chosen} published{who}"
    if review.decision == NONE:
        return f"none this time{who}; nothing published"
    if review.decision == TIMEOUT and review.status == PUBLISHED:
        return "no decision in time; the first post was published"
    return "no decision in time; nothing published"


def review_ended(review: Review) -> str:
    return f"Review #{review.id} has already ended ({_outcome(review)}); nothing more published."


def review_closed(review: Review, name: str, text: str | None) -> str:
    """What every editor's messages of a review say once it ended."""
    line = f"Review #{review.id} ended: {_outcome(review, name)}."
    return f"{line}\n\n{text}" if text else line


def review_decided(review: Review, results: Sequence[Result]) -> str:
    """The answer to the editor whose tap ended the review."""
    if review.outbox_id is None:
        return f"Review #{review.id}: nothing published."
    sent = ", ".join(f"{r.target} {r.status}" for r in results) or "stored"
    return f"Published as post #{review.outbox_id} ({sent})."


def reviews_pending(reviews: Sequence[Review]) -> str:
    """'2 pending (#4 until 14:00 UTC, #5 until 18:00 UTC)', for /status."""
    if not reviews:
        return "none pending"
    return f"{len(reviews)} pending (" + ", ".join(
        f"#{r.id} until {_clock(r.deadline)}" for r in reviews) + ")"


def editors_yield(decided: int, published: int, shown: int) -> str:
    """'12 decided, 9 published, 4.6 posts shown per published post'."""
    if not decided:
        return "none decided yet"
    per = f"{shown / published:.1f} posts shown per published post" if published else \
        f"{shown} posts shown"
    return f"{decided} decided, {published} published, {per}"


def reviews_listing(reviews: Sequence[Review]) -> str:
    """/review: every open review, one a line."""
    if not reviews:
        return NO_REVIEWS
    return "Waiting for the editors:\n" + "\n".join(
        f"#{r.id} ({r.source}): {r.shown} of {r.total} posts shown, until {_clock(r.deadline)}"
        for r in reviews)


def ranker_fitted(ranker: object | None, pairs: int, needed: int) -> str:
    """After a ranker fit: what ranks review candidates now."""
    if ranker is None:
        return (f"Ranker not fitted: the judgements make {pairs} pairs, {needed} are needed;"
                " likelihood orders review candidates.")
    return f"Ranker fitted on {pairs} pairs. Review candidates are ordered by {ranker.describe()}."
