"""Every judgement of a post, kept as data: the table `judgements` (schema in common/db.py).

Kinds, each with its `source` and `value`:
- 'pick'    an editor published the candidate (source `editor:USER`, value 1);
- 'pass'    an editor was shown the candidate and decided on another, or on none (value 0);
- 'edit'    an editor published a corrected text: `text` before, `edited` after (value 1);
- 'vote'    a reader's 👍/👎 under a published post (source `reader:USER`, value +1/-1);
- 'reading' a blind reading's grade (source `reading:SHEET:READER`, value the grade).

Nothing is ever updated or deleted: a reader who changes a vote adds a row, and the newest row
of a (source, post) holds. `python -m bot export-judgements --out FILE.jsonl` writes them out,
one JSON object a line; `import-judgements` appends such a file (a blind reading's ratings).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sqlalchemy as sa

from common.cli import UserError
from common.db import Database

KINDS = ("pick", "pass", "edit", "vote", "reading")
_COLUMNS = ("kind", "source", "value", "text", "edited", "model_dir", "features", "review_id",
            "outbox_id", "created_at")


@dataclass(frozen=True)
class Judgement:
    kind: str
    source: str
    value: float
    text: str
    model_dir: str | None = None
    features: Mapping = field(default_factory=dict)
    edited: str | None = None
    review_id: int | None = None
    outbox_id: int | None = None
    created_at: float = 0.0  # unix seconds; 0: now, when added
    id: int | None = None  # the row's number once stored

    def row(self) -> dict:
        """The columns of its row (features as JSON)."""
        values = {name: getattr(self, name) for name in _COLUMNS}
        values["features"] = json.dumps(dict(self.features), ensure_ascii=False)
        values["created_at"] = self.created_at or time.time()
        return values


def add(conn: sa.Connection, judgements: Iterable[Judgement]) -> int:
    """Append judgements in the caller's transaction (with the decision they come from)."""
    rows = [j.row() for j in judgements]
    if rows:
        names = ", ".join(_COLUMNS)
        conn.execute(sa.text(f"INSERT INTO judgements ({names}) VALUES"
                             f" ({', '.join(':' + c for c in _COLUMNS)})"), rows)
    return len(rows)


def read(db: Database) -> list[Judgement]:
    """Every judgement, oldest first."""
    with db.read() as conn:
        rows = conn.execute(sa.text(
            f"SELECT id, {', '.join(_COLUMNS)} FROM judgements ORDER BY id")).mappings().all()
    return [Judgement(**{**row, "features": json.loads(row["features"])}) for row in rows]


def export(db: Database, out: Path) -> int:
    """Write every judgement to `out` as JSON lines; how many."""
    judgements = read(db)
    with open(out, "w", encoding="utf-8") as fh:
        for judgement in judgements:
            fh.write(json.dumps(asdict(judgement), ensure_ascii=False) + "\n")
    return len(judgements)


def load(path: Path) -> Iterator[Judgement]:
    """Judgements of a JSON-lines file (an export, or a reading's ratings); a bad line is a
    UserError naming it."""
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                yield _parse(line, f"{path}:{number}")


def _parse(line: str, where: str) -> Judgement:
    try:
        raw = json.loads(line)
        raw.pop("id", None)  # appended anew: the file's numbers are another database's
        judgement = Judgement(**raw)
        float(judgement.value)
    except (ValueError, TypeError) as exc:
        raise UserError(f"{where}: not a judgement ({exc}): write one JSON object a line with"
                        " kind, source, value and text") from None
    if judgement.kind not in KINDS or not isinstance(judgement.text, str):
        raise UserError(f"{where}: kind must be one of {', '.join(KINDS)} and text a string")
    return judgement


def import_file(db: Database, path: Path) -> int:
    """Append the judgements of a JSON-lines file, all or (on a bad line) none; how many."""
    judgements = list(load(path))
    with db.write() as conn:
        return add(conn, judgements)
