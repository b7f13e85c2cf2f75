"""A real, throwaway Redis server for the ``redis``- and ``celery``-marked tests.

``RedisServer()`` is a context manager yielding the server's URL (``redis://127.0.0.1:<port>/0``);
the ``redis_url`` fixture is one such server per test process. The server runs from a temporary
folder on 127.0.0.1 and a free port, keeps nothing on disk (``--save "" --appendonly no``) and is
stopped by its process group at the end, even when the test fails.

The binary comes from ``REDIS_SERVER`` (a path), then PATH, then ``/usr/bin/redis-server``
(Debian's ``redis-server`` package). Without it the tests skip, except in CI (``CI`` set), where
a skipped guarantee would pass unseen: there they fail.

Use it from a test module with::

    from tests.redis_server import redis_url  # noqa: F401 - the session fixture
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest


def find_binary() -> Path | None:
    """The redis-server to run, or None when this machine has none."""
    for candidate in (os.getenv("REDIS_SERVER", ""), shutil.which("redis-server") or "", "/usr/bin/redis-server"):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def unavailable(reason: str):
    """Skip outside CI; fail in CI, where the Redis tests must run (``.ci/run`` installs the server)."""
    if os.getenv("CI"):
        pytest.fail(f"CI is set, so the redis tests may not skip: {reason}", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    """True once the server replies +PONG (plain RESP, so this module needs no client library)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def RedisServer(binary: Path | None = None) -> Iterator[str]:  # noqa: N802 - reads as the server it starts
    """Start a redis-server on 127.0.0.1 and a free port; yield its URL; stop it on exit.

    Raises RuntimeError (with the server's log) when it does not answer within 20 s.
    """
    binary = binary or find_binary()
    if binary is None:
        raise RuntimeError("no redis-server binary (REDIS_SERVER, PATH or /usr/bin/redis-server)")
    root = Path(tempfile.mkdtemp(prefix="redis-test-"))
    log = root / "server.log"
    proc: subprocess.Popen | None = None
    try:
        for _attempt in range(3):  # the free port can be taken between choosing and binding it
            port = _free_port()
            with open(log, "ab") as out:
                # its own session: _stop() signals the whole process group, leaving no server behind
                proc = subprocess.Popen(
                    [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root),
                     "--save", "", "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no"],
                    stdout=out, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and proc.poll() is None and not _answers(port):
                time.sleep(0.05)
            if proc.poll() is None and _answers(port):
                yield f"redis://127.0.0.1:{port}/0"
                return
            _stop(proc)
        raise RuntimeError(f"redis-server did not start; its log ({log}):\n{log.read_text()[-2000:]}")
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """One Redis server per test process (each xdist worker that needs one starts its own)."""
    binary = find_binary()
    if binary is None:
        unavailable("no redis-server binary in REDIS_SERVER, PATH or /usr/bin/redis-server; "
                    "install Debian's redis-server package")
    with RedisServer(binary) as url:
        yield url
