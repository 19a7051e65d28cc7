"""Settings admins changed at runtime, kept in the database (table bot_state), and the heartbeat.

Keys: `heartbeat:HOST` (unix time of the last outbox sweep on this host, read by `--health`
there: each container of several bot processes on one database checks its own), `schedule` (set
by /schedule; JSON {"cron", "config"}) and `model` (set by a retrain swap or /rollback; JSON
{"served", "previous", "config"}). Each of the last two overrides its config key only while the
config still says what it said when the admin made the change, so editing the config wins.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import sqlalchemy as sa

from common.db import Database

_HEARTBEAT = f"heartbeat:{socket.gethostname()}"


class RuntimeSettings:
    def __init__(self, db: Database) -> None:
        self.db = db

    def beat(self) -> None:
        """Record that the bot's periodic jobs are running on this host (unix seconds)."""
        self.set(_HEARTBEAT, str(time.time()))

    def seconds_since_beat(self) -> float | None:
        beat = self.get(_HEARTBEAT)
        return None if beat is None else time.time() - float(beat)

    def get(self, key: str, default: str | None = None) -> str | None:
        with self.db.read() as conn:
            value = conn.execute(sa.text("SELECT value FROM bot_state WHERE key = :key"),
                                 {"key": key}).scalar()
        return default if value is None else value

    def set(self, key: str, value: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                sa.text("INSERT INTO bot_state (key, value) VALUES (:key, :value)"
                     " ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
                {"key": key, "value": value},
            )

    def schedule_cron(self, configured: str) -> str:
        """The crontab line to post on: the last /schedule, unless the config changed since."""
        schedule = json.loads(self.get("schedule") or "{}")
        return schedule["cron"] if schedule.get("config") == configured else configured

    def set_schedule_cron(self, configured: str, cron: str) -> None:
        self.set("schedule", json.dumps({"cron": cron, "config": configured}))

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
