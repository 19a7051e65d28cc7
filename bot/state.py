"""Small persistent settings of the running bot (table bot_state): what admins changed at runtime.

Keys: `schedule_cron` (set by /schedule; overrides schedule.cron) and `model` (set by a retrain
swap or /rollback; JSON {"served", "previous", "config"}: it overrides generator.model_dir only
while the config still names the model dir it was made against, so editing the config wins).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path


class State:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def get(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM bot_state WHERE key = ?", (key,)).fetchone()
        return row["value"] if row else default

    def set(self, key: str, value: str) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT INTO bot_state (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def served_model(self, configured: str) -> str:
        """The model dir to serve: the last swapped-in one, unless the config changed since."""
        model = json.loads(self.get("model") or "{}")
        if model.get("config") == configured and Path(model.get("served", "")).is_dir():
            return model["served"]
        return configured

    def previous_model(self, configured: str) -> str | None:
        model = json.loads(self.get("model") or "{}")
        if model.get("config") != configured:
            return None
        previous = model.get("previous")
        return previous if previous and Path(previous).is_dir() else None

    def swap_model(self, configured: str, served: str, previous: str) -> None:
        model = {"served": served, "previous": previous, "config": configured}
        self.set("model", json.dumps(model))
