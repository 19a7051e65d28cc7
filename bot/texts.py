"""The bot's lines made of several parts (/status, /top, a publish summary, /retrain's reports).

Every word a reader sees is a message id put into their language by a `Texts` (bot/i18n.py);
the words themselves are in locales/. One-part lines are said where they happen:
`chat.say(tr.t("start"))`.
"""

from __future__ import annotations

import datetime as dtm
from collections.abc import Mapping, Sequence
from typing import Any

from bot.i18n import N_, Texts
from bot.outbox import Result
from bot.ratings import Arm, Rated
from bot.review import EDIT, NONE, PICK, PUBLISHED, TIMEOUT, Candidate, Review
from common.crontab import CrontabError
from common.outage import Outage

RESULTS = {"sent": N_("publish.sent"), "pending": N_("publish.pending"),
           "failed": N_("publish.failed")}  # an outbox Result's status
# /schedule's refusals by CrontabError.reason, and the crontab fields in a line's order.
CRONTAB_REASONS = {"field": N_("crontab.field"), "never": N_("crontab.never"),
                   "weekday": N_("crontab.weekday")}
CRONTAB_FIELDS = (N_("crontab.minute"), N_("crontab.hour"), N_("crontab.day"),
                  N_("crontab.month"), N_("crontab.weekday_field"))


def published(tr: Texts, outbox_id: int, temperature: float, results: Sequence[Result]) -> str:
    """'Post #3 (temperature 0.45): telegram: sent (id 12); vk: will retry (…).'"""
    parts = [tr.t(RESULTS[r.status], target=r.target, detail=r.detail) for r in results]
    return tr.t("publish.summary", id=outbox_id, temperature=temperature,
                results="; ".join(parts))


def top(tr: Texts, rated: Sequence[Rated]) -> str:
    if not rated:
        return tr.t("top.none")
    lines = [tr.t("top.title")]
    for r in rated:
        first = r.text.split("\n", 1)[0]
        first = first if len(first) <= 60 else first[:57] + "..."
        lines.append(f"#{r.outbox_id} 👍{r.ups} 👎{r.downs}: {first}")
    return "\n".join(lines)


def crontab_error(tr: Texts, exc: CrontabError) -> str:
    """Why /schedule refused a line, in the reader's language."""
    fields = dict(exc.fields)
    if exc.reason == "field":
        fields["field"] = tr.t(CRONTAB_FIELDS[int(fields["field"])])
    if exc.reason == "fields":
        return tr.n("crontab.fields", int(fields.pop("count")))
    return tr.t(CRONTAB_REASONS[exc.reason], **fields)


def status(
    tr: Texts,
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
    bpc_text = f"{bpc:.3f}" if isinstance(bpc, int | float) else "?"
    outbox = tr.t("status.outbox_counts", **{s: counts.get(s, 0)
                                             for s in ("pending", "sent", "failed")})
    if last is None:
        last_text = tr.t("status.no_post")
    else:
        when = dtm.datetime.fromtimestamp(last["created_at"], dtm.UTC)
        last_text = tr.t("status.last_post", id=last["id"], when=when, targets=last["targets"])
    bandit = ", ".join(tr.t("status.arm", temperature=a.temperature, ups=a.ups,
                            downs=a.downs, posts=a.posts) for a in arms)
    hours, rest = divmod(int(uptime), 3600)
    return tr.t(
        "status", model=model_dir, bpc=bpc_text, params=info.get("params") or "?",
        schedule=schedule, targets=", ".join(targets) or tr.t("status.no_targets"),
        outbox=outbox, last=last_text, temperatures=bandit, retrain=retrain, pool=pool,
        review=review, ranking=ranking,
        uptime=tr.t("status.uptime", hours=hours, minutes=rest // 60),
    )


def pool(tr: Texts, ready: Mapping[float, int], gathered: int) -> str:
    """'12 ready (0.7: 4, 0.85: 4, 1: 4), 37 channel candidates' for /status."""
    per = ", ".join(f"{t:g}: {n}" for t, n in sorted(ready.items()))
    per = " (" + per + ")" if per else ""
    return tr.t("status.pool", ready=sum(ready.values()), per=per, gathered=gathered)


def database_down(tr: Texts, outage: Outage) -> str:
    """/status's first line while the database is out of reach."""
    since = dtm.datetime.fromtimestamp(outage.since, dtm.UTC)
    seconds = max(0.0, dtm.datetime.now(dtm.UTC).timestamp() - outage.since)
    return tr.t("status.database_down", since=since, seconds=seconds,
                reason=outage.reason[:200])


def status_offline(tr: Texts, model_dir: str, uptime: float) -> str:
    """What /status can tell without the database."""
    hours, rest = divmod(int(uptime), 3600)
    return tr.t("status.offline", model=model_dir,
                uptime=tr.t("status.uptime", hours=hours, minutes=rest // 60))


def retrain_training(
    tr: Texts, progress: float, chars_per_sec: float = 0.0, val_bpc: float | None = None
) -> str:
    """'training 40%, 12,345 chars/s, val bpc 2.345' (the trainer's time estimate can overshoot)."""
    text = tr.t("retrain.training", percent=100 * min(max(progress, 0.0), 1.0))
    if chars_per_sec:
        text += tr.t("retrain.speed", speed=chars_per_sec)
    if val_bpc is not None:
        text += tr.t("retrain.bpc", bpc=val_bpc)
    return text


def retrain_result(tr: Texts, new_bpc: float, old_bpc: float, swapped: str | None) -> str:
    if swapped:
        return tr.t("retrain.better", new=new_bpc, old=old_bpc)
    return tr.t("retrain.not_better", new=new_bpc, old=old_bpc)


def retrain_failed(tr: Texts, stage: str, reason: str, swapped: str | None) -> str:
    served = (tr.t("retrain.now_serving", model_dir=swapped) if swapped
              else tr.t("retrain.unchanged"))
    return tr.t("retrain.failed", stage=tr.t(stage), reason=reason, served=served)


def retrain_samples(tr: Texts, posts: Sequence[str], swapped: str | None) -> str:
    """The trained model's posts, labelled with what it is: served now, or rejected."""
    if not posts and swapped:
        return tr.t("retrain.no_samples_served")
    if not posts:
        return tr.t("retrain.no_samples_rejected")
    if swapped:
        title = tr.n("retrain.samples_served", len(posts))
    else:
        title = tr.n("retrain.samples_rejected", len(posts))
    return title + "\n\n" + "\n\n".join(posts)


# ----- review mode (bot/editors.py) -----
RANKED_BY = {"ranker": N_("review.by_ranker"), "likelihood": N_("review.by_likelihood")}
SOURCES = {"admin": N_("review.source.admin"), "schedule": N_("review.source.schedule")}


def _clock(seconds: float) -> str:
    return f"{dtm.datetime.fromtimestamp(seconds, dtm.UTC):%Y-%m-%d %H:%M} UTC"


def review_page(tr: Texts, review: Review, candidates: Sequence[Candidate]) -> str:
    """One page of a review: its candidates, numbered."""
    head = tr.t("review.page", id=review.id, first=candidates[0].number,
                last=candidates[-1].number, total=review.total,
                ranker=tr.t(RANKED_BY.get(review.ranker, review.ranker)),
                deadline=_clock(review.deadline))
    body = "\n\n".join(f"{c.number}.\n{c.text}" for c in candidates)
    return "\n\n".join((head, body, tr.t("review.how")))


def review_sent(tr: Texts, review: Review, chats: int) -> str:
    return tr.t("review.sent", id=review.id, chats=chats, shown=review.shown,
                total=review.total, deadline=_clock(review.deadline))


def _outcome(tr: Texts, review: Review, name: str = "") -> str:
    """How a review ended, in a few words."""
    if not name and review.decided_by:
        name = tr.t("review.user", id=review.decided_by)
    who = tr.t("review.by", name=name) if name else ""
    if review.decision == PICK:
        return tr.t("review.outcome.pick", number=review.chosen, who=who)
    if review.decision == EDIT:
        return tr.t("review.outcome.edit", number=review.chosen, who=who)
    if review.decision == NONE:
        return tr.t("review.outcome.none", who=who)
    if review.decision == TIMEOUT and review.status == PUBLISHED:
        return tr.t("review.outcome.timeout_first")
    return tr.t("review.outcome.timeout_none")


def review_ended(tr: Texts, review: Review) -> str:
    return tr.t("review.ended", id=review.id, outcome=_outcome(tr, review))


def review_closed(tr: Texts, review: Review, name: str, text: str | None) -> str:
    """What every editor's messages of a review say once it ended."""
    line = tr.t("review.closed", id=review.id, outcome=_outcome(tr, review, name))
    return f"{line}\n\n{text}" if text else line


def review_decided(tr: Texts, review: Review, results: Sequence[Result]) -> str:
    """The answer to the editor whose tap ended the review."""
    if review.outbox_id is None:
        return tr.t("review.nothing", id=review.id)
    sent = "; ".join(tr.t(RESULTS[r.status], target=r.target, detail=r.detail)
                     for r in results) or tr.t("review.stored")
    return tr.t("review.published", id=review.outbox_id, results=sent)


def reviews_pending(tr: Texts, reviews: Sequence[Review]) -> str:
    """'2 pending (#4 until 14:00 UTC, #5 until 18:00 UTC)', for /status."""
    if not reviews:
        return tr.t("review.none_pending")
    until = [tr.t("review.until", id=r.id, deadline=_clock(r.deadline)) for r in reviews]
    return tr.n("review.pending", len(reviews), reviews=", ".join(until))


def editors_yield(tr: Texts, decided: int, published: int, shown: int) -> str:
    """'12 decided, 9 published, 4.6 posts shown per published post'."""
    if not decided:
        return tr.t("review.none_decided")
    per = (tr.t("review.per_published", per=shown / published) if published
           else tr.t("review.shown_count", shown=shown))
    return tr.t("review.yield", decided=decided, published=published, per=per)


def reviews_listing(tr: Texts, reviews: Sequence[Review]) -> str:
    """/review: every open review, one a line."""
    if not reviews:
        return tr.t("review.none_waiting")
    return tr.t("review.waiting") + "\n" + "\n".join(
        tr.t("review.line", id=r.id, source=tr.t(SOURCES.get(r.source, r.source)),
             shown=r.shown, total=r.total, deadline=_clock(r.deadline)) for r in reviews)
