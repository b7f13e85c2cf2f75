"""llama.cpp's OpenAI-compatible server (``python -m llama_cpp.server`` from llama-cpp-python) for tests.

``LlamaServer(model_path)`` is a context manager: it starts the server on 127.0.0.1 and a free port in
its own process group, waits until ``GET /v1/models`` answers, yields the server (``.url`` is the
``/v1`` base URL, ``.log`` its output file) and stops the whole process group on exit, even when the
test failed. The server is the upstream project's code, not ours: whatever it accepts or refuses is
what a deployment pointing the router at it would see.

Without llama-cpp-python the tests skip outside CI with how to install it; with ``CI`` set they
fail instead, because a skipped compatibility test would pass unseen.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.dagster_server import free_port

INSTALL = "pip install -e '.[thirdparty]' (builds llama.cpp from source, ~7 min)"
START_TIMEOUT_S = 60


def require_llama_cpp() -> None:
    """Skip (outside CI) or fail (CI set) when llama-cpp-python's server is not installed."""
    missing = [m for m in ("llama_cpp", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings")
               if importlib.util.find_spec(m) is None]
    if not missing:
        return
    reason = f"llama-cpp-python[server] is not installed (missing {', '.join(missing)}): {INSTALL}"
    if os.getenv("CI"):
        pytest.fail(f"CI is set, so the thirdparty test may not skip: {reason}", pytrace=False)
    pytest.skip(reason)


def _models(url: str) -> list[str] | None:
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=2) as resp:
            return [m["id"] for m in json.load(resp).get("data", [])]
    except (OSError, ValueError):
        return None


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


class LlamaServer:
    """One llama-cpp-python server process serving ``model_path``."""

    # 8192, not the server's 2048: a draft prompt with its documents is ~2,300 tokens in the tiny vocabulary
    def __init__(self, model_path: Path, *, n_ctx: int = 8192, threads: int = 1, extra_args: tuple[str, ...] = ()):
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.threads = threads
        self.extra_args = extra_args
        self.port = 0
        self.root = Path(tempfile.mkdtemp(prefix="llama-server-"))
        self.log = self.root / "server.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-chars:] if self.log.exists() else ""

    def __enter__(self) -> "LlamaServer":
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        for _attempt in range(3):  # the free port can be taken between choosing and binding it
            self.port = free_port()
            cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model_path),
                   "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
                   "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads), *self.extra_args]
            with open(self.log, "ab") as out:
                # its own session: _stop() signals the whole process group (uvicorn and anything it spawned)
                self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=self.root,
                                             start_new_session=True)
            deadline = time.monotonic() + START_TIMEOUT_S
            while time.monotonic() < deadline and self.proc.poll() is None:
                if _models(self.url) is not None:
                    return
                time.sleep(0.2)
            hung = self.proc.poll() is None  # alive but silent: another port would not help
            _stop(self.proc)
            if hung:
                break
        raise RuntimeError(f"llama_cpp.server did not answer /v1/models; its log ({self.log}):\n{self.log_tail()}")

    def __exit__(self, *exc) -> None:
        try:
            if self.proc is not None:
                _stop(self.proc)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

