"""Real ``dagster-celery`` workers for the ``celery``-marked tests, started and stopped by the test.

Each worker is the command README "Production" gives (``dagster-celery worker start -A
dagster_celery.app``), in its own session so that stopping its process group also stops the
``celery`` process and the pool processes it forks. The workers inherit the test's environment:
the broker (``CELERY_BROKER_URL``), ``DAGSTER_HOME`` and the platform settings, exactly as a
worker machine would be configured.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

# imported once in each worker's parent process, before it forks its pool: a step then pays
# neither the code location's imports nor Great Expectations' (5-7 s) again
PRELOAD = ("orchestration_assets.definitions", "great_expectations")
REPO = Path(__file__).resolve().parent.parent


class CeleryWorkers:
    """``count`` workers of ``concurrency`` pool processes each; logs under ``folder``."""

    def __init__(self, folder: Path, count: int = 2, concurrency: int = 1):
        self.folder = folder
        self.names = [f"platform-test-{i}-{uuid.uuid4().hex[:6]}" for i in range(count)]
        self.concurrency = concurrency
        self.procs: list[subprocess.Popen] = []

    def log(self, i: int) -> Path:
        return self.folder / f"{self.names[i]}.log"

    def start(self) -> "CeleryWorkers":
        self.folder.mkdir(parents=True, exist_ok=True)
        bin_dir = Path(sys.executable).parent
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        includes = [arg for module in PRELOAD for arg in ("-i", module)]
        for i, name in enumerate(self.names):
            with open(self.log(i), "wb") as out:
                self.procs.append(subprocess.Popen(
                    [str(bin_dir / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-n", name,
                     *includes, "--loglevel", "INFO", "--", f"--concurrency={self.concurrency}"],
                    stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env, start_new_session=True))
        return self

    def wait_ready(self, timeout: float = 120) -> None:
        """Return once every worker consumes from the broker; raise with its log if one exits or is late."""
        deadline = time.monotonic() + timeout
        for i, proc in enumerate(self.procs):
            while b" ready." not in self.log(i).read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    state = f"exited with {proc.returncode}" if proc.poll() is not None else f"not ready in {timeout:.0f} s"
                    raise RuntimeError(f"celery worker {self.names[i]} {state}; its log:\n{self.logs(i)}")
                time.sleep(0.2)

    def pids(self) -> set[int]:
        """Every live process of the workers' process groups (the CLI, celery and its pool processes)."""
        groups = {p.pid for p in self.procs}
        out = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                # the command name may hold spaces or parentheses: the fields after its last ')' are fixed
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) in groups:  # pgrp
                    out.add(int(stat.parent.name))
        return out

    def logs(self, i: int | None = None, tail: int = 4000) -> str:
        indices = range(len(self.procs)) if i is None else [i]
        return "\n".join(f"--- {self.names[j]} ---\n{self.log(j).read_text(errors='replace')[-tail:]}" for j in indices)

    def stop(self, grace: float = 20) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # celery's warm shutdown; its pool follows
        deadline = time.monotonic() + grace
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            # the CLI exits first; the celery process it started stays in the group until it is done
            while _group_alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def __enter__(self) -> "CeleryWorkers":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
