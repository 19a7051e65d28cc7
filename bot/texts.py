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
from common.outage import Outage

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
PUBLISH_LATER = "Post #{id} is stored; it goes out once my database is back."
STORAGE_DOWN = "My database is out of reach for a moment; please send that again in a minute."
INLINE_PUBLISH_LATER = "Post #{id} is stored; it goes out once my database is back."
STORAGE_DOWN = "My database is out of reach: try again in a minute"


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
            f"Uptime: {hours}h {rest // 60:02d}m",
        ]
    )


def database_down(outage: Outage) -> str:
    """/status's first line while the database is out of reach."""
    since = dtm.datetime.fromtimestamp(outage.since, dtm.UTC)
    seconds = max(0.0, dtm.datetime.now(dtm.UTC).timestamp() - outage.since)
    return (f"Database: OUT OF REACH since {since:%H:%M:%S} UTC ({seconds:.0f} s): "
            f"{outage.reason[:200]}. Replies that need it ask to send again; scheduled posts"
            " and pending deliveries wait for it.")


def status_offline(model_dir: str, uptime: float) -> str:
    """What /status can tell without the database."""
    hours, rest = divmod(int(uptime), 3600)
    return f"Model: {model_dir}\nUptime: {hours}h {rest // 60:02d}m"


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
