"""The real PostgreSQL of the tests: a fresh schema per test, or a skip that says why.

Every machine of the project (developers' and CI's) runs one at 127.0.0.1:5432 with trust
authentication; NEUROBUGURT_TEST_POSTGRES names another. A user's machine without a server
skips these tests with the reason instead of failing them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

BASE_URL = os.environ.get("NEUROBUGURT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _engine(url: str = BASE_URL) -> sa.Engine:
    return sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"),
                            connect_args={"connect_timeout": 3}, poolclass=sa.NullPool)


@functools.cache
def unreachable() -> str | None:
    """Why the server cannot be used, or None (asked once per test session)."""
    try:
        with _engine().connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        return str(exc.orig).strip().splitlines()[0]
    return None


def require_or_exit() -> None:
    """For a script: stop with one line when the server cannot be used."""
    reason = unreachable()
    if reason is not None:
        raise SystemExit(f"error: needs a PostgreSQL server at {BASE_URL}: {reason}")


def require() -> None:
    reason = unreachable()
    if reason is not None:
        pytest.skip(f"needs a PostgreSQL server at {BASE_URL}: {reason}")


@contextlib.contextmanager
def fresh_schema() -> Iterator[str]:
    """A database URL whose tables land in a new, empty schema; the schema is dropped after."""
    require()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = _engine()
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        # libpq's `options` sets the search path of every connection made with this URL; the
        # application name marks them (`drop_connections`).
        yield f"{BASE_URL}?options=-csearch_path%3D{schema}&application_name={schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def drop_connections(url: str) -> int:
    """End every server session of a `fresh_schema` URL, as a server restart does to its
    clients (without restarting the server others use); how many there were."""
    schema = sa.make_url(url).query["application_name"]
    with _engine().begin() as conn:
        return len(conn.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = :name AND pid != pg_backend_pid()"), {"name": schema}
        ).all())
