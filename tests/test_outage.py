"""Which database errors mean "out of reach" (common/outage.py), on real SQLite and PostgreSQL,
and the one log line per outage however many threads report it, late or early."""

from __future__ import annotations

import logging
import sqlite3
import time

import pytest
import sqlalchemy as sa

from common.db import open_database
from common.outage import Reach, unreachable
from tests.pgserver import PrivateServer


def _error(database, sql: str) -> Exception:
    with pytest.raises(sa.exc.DBAPIError) as caught, database.write() as conn:
        conn.exec_driver_sql(sql)
    return caught.value


def test_a_lock_held_by_a_backup_is_an_outage_and_a_bad_statement_is_not(tmp_path, caplog):
    path = tmp_path / "bot.sqlite3"
    database = open_database(f"sqlite:///{path}")
    backup = sqlite3.connect(path, isolation_level=None)
    try:
        assert unreachable(_error(database, "SELECT * FROM no_such_table")) is None
        assert database.outage is None
        backup.execute("BEGIN IMMEDIATE")  # a backup holds the write lock
        with caplog.at_level(logging.WARNING, "common.db"):
            locked = _error(database, "DELETE FROM pool")
            assert unreachable(locked) == "database is locked"
            assert database.outage is not None and database.outage.reason == "database is locked"
            _error(database, "DELETE FROM pool")  # the same outage: not logged again
            with database.read() as conn:  # WAL: readers go on, and prove nothing
                assert conn.exec_driver_sql("SELECT COUNT(*) FROM pool").scalar_one() == 0
            assert database.outage is not None
            backup.execute("ROLLBACK")
            with database.write() as conn:
                conn.exec_driver_sql("DELETE FROM pool")
        assert database.outage is None
        lines = [r.getMessage() for r in caplog.records]
        assert [line.split(":")[0] for line in lines] == ["database unavailable"] + [
            "database available again after 0 s"]
    finally:
        backup.close()
        database.close()


def test_a_stopped_postgresql_is_an_outage_and_a_missing_table_is_not():
    with PrivateServer() as server:
        database = open_database(server.url)
        try:
            assert unreachable(_error(database, "SELECT * FROM no_such_table")) is None
            server.stop()
            assert unreachable(_error(database, "SELECT 1")) is not None  # refused
            assert database.outage is not None
            server.start()
            with database.write() as conn:
                conn.exec_driver_sql("DELETE FROM pool")
            assert database.outage is None
        finally:
            database.close()


def _locked(tmp_path) -> Exception:
    """The driver's own "database is locked", wrapped as SQLAlchemy wraps it."""
    path = tmp_path / "locked.sqlite3"
    holder, writer = sqlite3.connect(path, isolation_level=None), sqlite3.connect(path, timeout=0)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError) as caught:
            writer.execute("CREATE TABLE t (x)")
    finally:
        holder.close()
        writer.close()
    return sa.exc.OperationalError("CREATE TABLE t (x)", {}, caught.value)


def test_late_and_uneven_reports_make_one_outage(tmp_path, caplog):
    reach = Reach()
    locked = _locked(tmp_path)
    with caplog.at_level(logging.WARNING, "common.db"):
        before = time.monotonic()
        assert reach.failed(locked, time.monotonic())
        reach.reached(before)  # a write that began before the outage: proves nothing
        assert reach.outage is not None
        reach.reached(time.monotonic())
        assert reach.outage is None
        assert reach.failed(locked, before)  # began before the end: a late report
        assert reach.outage is None
        assert reach.failed(locked, time.monotonic())  # within SETTLE_SECONDS: reopened
        assert reach.outage is not None
        reach.reached(time.monotonic())
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "database unavailable", "database available again after 0 s"]
    assert not reach.failed(ValueError("not a database error"))
