"""A throwaway PostgreSQL server for tests: Debian's binaries, a temp dir, an ephemeral port.

Plain module (not a conftest) so any test area can import it (``pythonpath = ["tests"]``):

    with PostgresServer.start() as server:
        url = server.create_database()   # "postgresql://postgres@127.0.0.1:PORT/test_1"

The cluster runs with ``fsync=off`` and trust authentication on 127.0.0.1 only; it is
stopped with ``pg_ctl stop -m immediate`` and its directory removed afterwards. As root,
initdb/pg_ctl refuse to run, so they run as the ``postgres`` user via ``runuser``.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

__all__ = ["PostgresServer", "PostgresUnavailable", "find_bindir"]


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries here and no way to install them."""


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.parent.name  # /usr/lib/postgresql/15/bin/initdb -> "15"
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def _debian_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


def _install_with_apt() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        # The package lists may be missing (fresh container): refresh them once and retry.
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=True)
        subprocess.run(install, env=env, capture_output=True, check=True)


def find_bindir() -> Path:
    """Directory holding initdb and pg_ctl, installing Debian's ``postgresql`` if we may."""
    bindir = _debian_bindir()
    if bindir is None and os.geteuid() == 0 and shutil.which("apt-get"):
        _install_with_apt()
        bindir = _debian_bindir()
    if bindir is None:
        raise PostgresUnavailable("PostgreSQL binaries not found (apt-get install postgresql)")
    return bindir


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One running cluster; ``create_database()`` hands out fresh databases on it."""

    def __init__(self, bindir: Path, root: Path, port: int, as_user: str | None) -> None:
        self.bindir = bindir
        self.root = root
        self.port = port
        self._as_user = as_user
        self._names = itertools.count(1)
        self.running = False

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, args: Sequence[str]) -> None:
        command = [str(self.bindir / program), *args]
        if self._as_user is not None:
            command = ["runuser", "-u", self._as_user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=self.root)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()}\n{tail}")

    @classmethod
    def start(cls) -> PostgresServer:
        """initdb into a temp dir and start a server on 127.0.0.1 with a free port."""
        bindir = find_bindir()
        root = Path(tempfile.mkdtemp(prefix="clusterfeeds-pg-"))
        as_user: str | None = None
        if os.geteuid() == 0:
            as_user = "postgres"
            entry = pwd.getpwnam(as_user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        server = cls(bindir, root, 0, as_user)
        try:
            server._run(
                "initdb",
                ["-D", str(server.data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
            )
            server._start_on_free_port()
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return server

    def _start_on_free_port(self) -> None:
        # Another process may grab the port between probing and binding: retry a few times.
        for attempt in range(3):
            self.port = _free_port()
            options = " ".join(
                [
                    "-c listen_addresses=127.0.0.1",
                    f"-c port={self.port}",
                    f"-c unix_socket_directories={self.root}",
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                    "-c max_connections=100",
                ]
            )
            try:
                log = str(self.root / "server.log")
                self._run("pg_ctl", ["start", "-D", str(self.data_dir), "-w", "-t", "30", "-l", log, "-o", options])
            except RuntimeError:
                if attempt == 2:
                    raise
                continue
            self.running = True
            return

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL (``postgresql://...``)."""
        import psycopg
        from psycopg import sql

        name = name or f"test_{next(self._names)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            # FILE_COPY skips WAL-logging the template: much faster with fsync off.
            conn.execute(sql.SQL("CREATE DATABASE {} STRATEGY = FILE_COPY").format(sql.Identifier(name)))
        return self.url(name)

    def stop(self) -> None:
        """Stop immediately (nothing here is worth a clean shutdown) and delete the cluster."""
        try:
            if self.running:
                self._run("pg_ctl", ["stop", "-D", str(self.data_dir), "-m", "immediate", "-w"])
                self.running = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
