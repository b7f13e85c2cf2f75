"""A real, throwaway PostgreSQL server for the ``postgres``-marked tests.

The server runs from a temporary folder on 127.0.0.1 and a free port, and is stopped by its
process group at the end. The
binaries come from ``PG_BIN`` (a folder), then PATH, ``/usr/local/bin`` and Debian's
``/usr/lib/postgresql/<N>/bin`` (not on PATH). PostgreSQL refuses to run as root, and CI runs as
root: there the server runs as ``nobody`` (``setpriv``) from a folder that user owns.

Without binaries the tests skip, except in CI (``CI`` set), where a skipped guarantee would pass
unseen: there they fail.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

BINARIES = ("initdb", "pg_ctl", "postgres")
USER = "postgres"
# The URLs carry a password (the tests check it never reaches logs or metadata), but the server
# trusts 127.0.0.1: dagster-postgres opens a new connection for every event (NullPool), and SCRAM
# doubles the cost of each one (~10 ms instead of ~5), which is most of a family run's extra time.
AUTH = "trust"
# fast and disposable: nothing here must survive a crash of the machine
SETTINGS = {"listen_addresses": "127.0.0.1", "fsync": "off", "synchronous_commit": "off",
            "full_page_writes": "off", "max_connections": "60", "shared_buffers": "32MB"}


def find_bin_dir() -> Path | None:
    """The first folder holding initdb, pg_ctl and postgres, newest Debian major version first."""
    candidates = [os.getenv("PG_BIN", "")]
    on_path = shutil.which("pg_ctl")
    candidates += [str(Path(on_path).parent) if on_path else "", "/usr/local/bin"]
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = sorted((p for p in debian.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True)
        candidates += [str(p / "bin") for p in versions]
    for folder in filter(None, candidates):
        if all(os.access(Path(folder, b), os.X_OK) for b in BINARIES):
            return Path(folder)
    return None


def unavailable(reason: str):
    """Skip outside CI; fail in CI, where the postgres tests must run (``.ci/run`` installs the server)."""
    if os.getenv("CI"):
        pytest.fail(f"CI is set, so the postgres tests may not skip: {reason}", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.password = f"pw-{uuid.uuid4().hex[:16]}"
        # straight under the temp root: pytest's own temp folders are 0700 root, closed to the nobody user
        self.root = Path(tempfile.mkdtemp(prefix="pg-test-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self.proc: subprocess.Popen | None = None
        # postgres will not run as root: drop to nobody, who must own the folder
        self._as = []
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
            # setpriv execs in place (the server is the process we signal); runuser where it is missing
            self._as = (["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", "--"]
                        if shutil.which("setpriv") else ["runuser", "-u", "nobody", "--"])

    def _cmd(self, binary: str, *args: str) -> list[str]:
        return [*self._as, str(self.bin_dir / binary), *args]

    def start(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._as:
            os.chown(pwfile, pwd.getpwnam("nobody").pw_uid, -1)
        subprocess.run(self._cmd("initdb", "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}", "-A",
                                 AUTH, "-E", "UTF8", "--locale=C", "--no-sync"),
                       check=True, capture_output=True, timeout=120)
        pwfile.unlink()
        for _attempt in range(3):  # the free port can be taken between choosing and binding it
            self.port = _free_port()
            if self._launch():
                return
        raise RuntimeError(f"PostgreSQL did not start; its log ({self.log}):\n{self.log.read_text()[-2000:]}")

    def _launch(self) -> bool:
        settings = [a for k, v in {**SETTINGS, "port": str(self.port),
                                   "unix_socket_directories": str(self.root)}.items() for a in ("-c", f"{k}={v}")]
        with open(self.log, "ab") as log:
            # its own session: stop() signals the whole process group, leaving no server behind
            self.proc = subprocess.Popen(self._cmd("postgres", "-D", str(self.data), *settings),
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        import psycopg

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
                return True
            except psycopg.OperationalError:
                time.sleep(0.1)
        self.stop()
        return False

    def dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={USER} password={self.password} dbname={database}"

    def url(self, database: str, driver: str = "psycopg") -> str:
        return f"postgresql+{driver}://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "test") -> str:
        """A new, empty database; returns its SQLAlchemy URL (psycopg 3)."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)  # SIGINT to the postmaster: fast shutdown
                self.proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                subprocess.run(self._cmd("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate"),
                               capture_output=True, timeout=30)
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=15)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One server per test process (each xdist worker that needs one starts its own)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (the project's test extra: make setup)")
    bin_dir = find_bin_dir()
    if bin_dir is None:
        unavailable("no PostgreSQL binaries (initdb, pg_ctl, postgres) in PG_BIN, PATH, /usr/local/bin or "
                    "/usr/lib/postgresql/<N>/bin; install Debian's postgresql package")
    server = PostgresServer(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
