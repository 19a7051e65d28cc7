"""One scrape: fetch what is new on the wall into SQLite, then rewrite the corpus from it all.

How a run knows where to stop and where to resume (state in `scrape_state`, see store.py):
- VK lists the wall newest first, the pinned post ahead of everything whatever its age. The
  pinned post is stored but never used as a landmark.
- An incremental run reads from offset 0 until it meets a post no newer than `newest_post_id`,
  the top of the last completed scrape; `--full` reads to the end of the wall and so updates
  edited posts too.
- While a run goes, every stored page commits `run_offset` (how far it has read) and
  `run_newest_id` (the top it started from) in the same transaction. A run that finds these
  set resumes: it first reads the posts that appeared above `run_newest_id` since (they push
  the old ones `k` places down), then continues at `run_offset + k`, re-reading
  `RESUME_OVERLAP` posts before it in case some were deleted meanwhile; if more were deleted,
  the post at the restart point is older than `run_last_id` (the oldest the run stored), and
  the restart point steps back a page at a time until it is not. Posts are keyed by
  (owner_id, post_id), so a re-read updates a row and never duplicates it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from tqdm import tqdm

from common.config import Config, require
from common.corpus import write_corpus
from common.db import open_storage
from scraper.clean import CorpusResult, build_corpus
from scraper.store import PostStore, ScrapeState
from scraper.vk import PAGE_SIZE, PAGES_PER_EXECUTE, Page, Retry, VkClient

log = logging.getLogger(__name__)

RESUME_OVERLAP = 20  # posts re-read before a resume point


@dataclass(frozen=True)
class ScrapeOptions:
    """Knobs a user never needs; tests shrink pages and backoff to keep runs short."""

    page_size: int = PAGE_SIZE
    pages_per_call: int = PAGES_PER_EXECUTE
    retry: Retry = field(default_factory=Retry)
    min_interval: float = 0.34  # seconds between calls: VK allows about 3 a second
    progress: bool = True  # tqdm bar on stderr


@dataclass
class ScrapeResult:
    new_posts: int
    corpus: CorpusResult

    def summary(self) -> str:
        return (
            f"fetched {self.new_posts} new posts; corpus: {len(self.corpus.bugurts)} bugurts, "
            f"{self.corpus.characters} characters"
        )


def scrape(
    config: Config, full: bool = False, options: ScrapeOptions | None = None
) -> ScrapeResult:
    """`python -m scraper`: fetch the wall of vk.community, then write corpus.path."""
    options = options or ScrapeOptions()
    token = require(config.vk.token, "vk.token", "VK_TOKEN")
    client = VkClient(
        token, config.vk.api_url, config.vk.api_version, options.retry, options.min_interval
    )
    db = open_storage(config.storage)
    try:
        store = PostStore(db)
        owner_id = client.resolve_owner(config.vk.community)
        new_posts = fetch_wall(client, store, owner_id, full, options)
        corpus = build_corpus(store.raw_posts())
    finally:
        db.close()
    write_corpus(config.corpus.path, corpus.bugurts)
    return ScrapeResult(new_posts, corpus)


def fetch_wall(
    client: VkClient, store: PostStore, owner_id: int, full: bool, options: ScrapeOptions
) -> int:
    """Store the wall's new posts (all with `full`); returns how many were not stored before."""
    state = store.state(owner_id)
    full = full or (state.interrupted and state.run_full)
    floor = None if full else state.newest_post_id  # stop at this post id (None: wall's end)
    with tqdm(desc="posts", unit="post", disable=not options.progress, leave=False) as bar:
        new_posts = 0
        if state.interrupted:
            log.info("resuming the interrupted scrape at offset %d", state.run_offset)
            state, new_posts = _catch_up(client, store, state, options, bar)
            start = _resume_point(client, state, options)
        else:
            state = replace(state, run_full=full, run_offset=0)
            start = 0
        for page in _pages(client, owner_id, start, options):
            if floor is None:
                bar.total = page.count
            regular = _regular_ids(page)
            if state.run_newest_id is None and regular:
                state.run_newest_id = max(regular)
            state.run_offset = page.offset + len(page.items)
            state.run_last_id = min(regular, default=state.run_last_id)
            new_posts += store.save_page(owner_id, page.items, state, page.offset == 0)
            bar.update(len(page.items))
            if floor is not None and min(regular, default=floor + 1) <= floor:
                break
    tops = [i for i in (state.newest_post_id, state.run_newest_id) if i is not None]
    store.save_state(ScrapeState(owner_id, newest_post_id=max(tops, default=None)))
    return new_posts


def _catch_up(
    client: VkClient, store: PostStore, state: ScrapeState, options: ScrapeOptions, bar: tqdm
) -> tuple[ScrapeState, int]:
    """Store the posts above an interrupted run's top; shift its offset by their number."""
    above, new_posts, top = 0, 0, state.run_newest_id
    for page in _pages(client, state.owner_id, 0, options):
        regular = _regular_ids(page)
        above += sum(i > state.run_newest_id for i in regular)
        top = max([top, *regular])
        # The interrupted run's progress stays as it was until this phase is complete.
        new_posts += store.save_page(state.owner_id, page.items, state, page.offset == 0)
        bar.update(len(page.items))
        if min(regular, default=state.run_newest_id) <= state.run_newest_id:
            break
    state = replace(state, run_newest_id=top, run_offset=state.run_offset + above)
    store.save_state(state)
    return state, new_posts


def _resume_point(client: VkClient, state: ScrapeState, options: ScrapeOptions) -> int:
    """An offset at or above the oldest post the interrupted run stored: no post skipped."""
    start = max(0, state.run_offset - RESUME_OVERLAP)
    while start > 0 and state.run_last_id is not None:
        page = next(client.wall_pages(state.owner_id, start, 1, 1), None)
        first = _regular_ids(page) if page else []
        if first and first[0] >= state.run_last_id:
            break
        log.info("posts were deleted meanwhile: resuming %d posts earlier", options.page_size)
        start = max(0, start - options.page_size)
    return start


def _pages(client: VkClient, owner_id: int, start: int, options: ScrapeOptions):
    return client.wall_pages(owner_id, start, options.page_size, options.pages_per_call)


def _regular_ids(page: Page) -> list[int]:
    """Ids of the page's posts in date order: all but the pinned one."""
    return [item["id"] for item in page.items if not item.get("is_pinned")]
