"""A private PostgreSQL server for the fault tests that restart or stop the database.

The shared server on 127.0.0.1:5432 (harness/pg.py) serves every other test; restarting it would
cut them off. `PrivateServer` runs `initdb` into a temporary folder and `pg_ctl` on a free port
with its socket in that folder, using the machine's PostgreSQL binaries (Debian's
/usr/lib/postgresql/N/bin, or `pg_ctl` on PATH). PostgreSQL refuses to run as root, so under
root (CI, containers) the server runs as the unprivileged `postgres` (or `nobody`) user and
the folder is handed to it. A test without the binaries skips with the reason.

    with PrivateServer() as server:
        url = server.url            # postgresql://postgres@127.0.0.1:PORT/postgres
        server.restart()            # pg_ctl restart -m fast
        server.stop(); server.start()
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

SERVER_USERS = ("postgres", "nobody")  # who runs the server when the tests run as root


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl: the newest Debian version, else PATH's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _server_user() -> pwd.struct_passwd | None:
    """The account the server runs as: None (this one) unless this process is root."""
    if os.geteuid() != 0:
        return None
    for name in SERVER_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip(f"PostgreSQL refuses root and no unprivileged user ({', '.join(SERVER_USERS)})"
                " exists to run it")


class PrivateServer:
    """initdb + pg_ctl in a temporary folder; stopped and removed on exit, whatever happens."""

    def __init__(self) -> None:
        self.bin = binaries()
        if self.bin is None or not (self.bin / "initdb").exists():
            pytest.skip("needs PostgreSQL's initdb and pg_ctl (e.g. apt install postgresql)")
        self.user = _server_user()
        self.folder = Path(tempfile.mkdtemp(prefix="neurobugurt-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> None:
        ids = {} if self.user is None else {"user": self.user.pw_uid, "group": self.user.pw_gid}
        done = subprocess.run([str(self.bin / args[0]), *args[1:]], capture_output=True,
                              text=True, timeout=timeout, cwd=self.folder, **ids)
        assert done.returncode == 0, f"{' '.join(args)}: {done.stderr or done.stdout}"

    def __enter__(self) -> PrivateServer:
        if self.user is not None:
            os.chown(self.folder, self.user.pw_uid, self.user.pw_gid)
        try:
            # trust on 127.0.0.1 and the socket, as the shared test server
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
                      "-E", "UTF8", "--locale=C", "--no-sync")
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def start(self) -> None:
        """pg_ctl start, waiting until it accepts connections."""
        self._run(*self._ctl(), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop: `fast` ends every session (as an operator's restart does)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self) -> None:
        """pg_ctl restart -m fast: every session ends, the server is back within seconds."""
        self._run(*self._ctl(), "-m", "fast", "-w", "-t", "60", "restart")

    def _ctl(self) -> tuple[str, ...]:
        """pg_ctl and the server's options: its port, its socket in the folder, no fsync (a
        test server's data need not outlive the machine)."""
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
                   " -c fsync=off -c full_page_writes=off")
        return ("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"),
                "-o", options)

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def __exit__(self, *exc: object) -> None:
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
