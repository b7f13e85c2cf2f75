"""One racing process for the cross-process budget and rate-limit tests and ``bench/budget_race.py``.

``python -m tests.router_race --url <test server> --warehouse <url> --catalog <models.yaml> ...``
opens its own router session (like one Dagster run), waits for ``--start-at`` (epoch seconds) so
every racer starts together, routes ``--items`` records of support_triage's ``summary`` task and
prints one JSON line: its calls, spend and paths.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestration_assets.family import Family  # noqa: E402
from resources.router import ModelRouter  # noqa: E402
from resources.router.routes import Budget, TaskRoute  # noqa: E402
from resources.router.session import RouterSession  # noqa: E402
from resources.warehouse import Warehouse  # noqa: E402
from tests.router_fixtures import FAMILY_DIR, SECRET, FakeLocal, make_items  # noqa: E402


_FAMILY: Family | None = None


def race(catalog: str, warehouse: str, *, items: int = 20, prefix: str = "R", run_id: str = "race",
         per_day: float | None = None, per_run: float | None = None, start_at: float = 0.0,
         naive: bool = False, redis_url: str | None = None) -> dict:
    """One router session routing ``items`` records; what it called and spent.

    ``redis_url``: set as ``RATE_LIMIT_REDIS_URL`` for this session (else the variable is unset).
    """
    global _FAMILY
    if redis_url:
        os.environ["RATE_LIMIT_REDIS_URL"] = redis_url
    else:
        os.environ.pop("RATE_LIMIT_REDIS_URL", None)
    _FAMILY = _FAMILY or Family.load(FAMILY_DIR)
    router = ModelRouter(config_path=catalog, api_key=SECRET)
    RouterSession.reserve_budget_in_warehouse = not naive
    try:
        session = router.session(family="support_triage", routes={"summary": TaskRoute(provider="small")},
                                 budget=Budget(per_run_usd=per_run, per_day_usd=per_day), local=FakeLocal(),
                                 warehouse=Warehouse(url=warehouse), run_id=run_id)
    finally:
        RouterSession.reserve_budget_in_warehouse = True
    batch_items = make_items(items, prefix)
    asyncio.run(_warm_up(router))
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    started = time.perf_counter()
    s = session.run(_FAMILY.tasks["summary"], batch_items).stats
    return {"calls": s.calls, "cost_usd": s.cost_usd, "paths": s.paths, "overruns": s.budget_overruns,
            "refused": s.fallbacks_by_reason.get("budget", 0), "seconds": round(time.perf_counter() - started, 3)}


async def _warm_up(router: ModelRouter) -> None:
    """One unrouted request first: the SDK's lazy imports would otherwise delay the race's first
    requests by up to a second after the limiter let them go (recorded without a record id)."""
    provider = router.remote_providers()["small"]
    client = provider.make_client()
    try:
        await client.chat.completions.create(model=provider.model.model, max_tokens=1,
                                             messages=[{"role": "user", "content": "warm-up"}])
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--serve", action="store_true", help="read one JSON object of race() arguments a line, "
                                                        "answer each with one JSON line (imports paid once)")
    p.add_argument("--catalog")
    p.add_argument("--warehouse")
    p.add_argument("--items", type=int, default=20)
    p.add_argument("--prefix", default="R")
    p.add_argument("--run-id", default="race")
    p.add_argument("--per-day", type=float, default=None)
    p.add_argument("--per-run", type=float, default=None)
    p.add_argument("--start-at", type=float, default=0.0)
    p.add_argument("--naive", action="store_true", help="no budget holds: the old read-at-start budget")
    p.add_argument("--redis-url", default=None)
    args = p.parse_args(argv)
    if args.serve:
        print("READY", flush=True)
        for line in sys.stdin:
            if line.strip():
                print(json.dumps(race(**json.loads(line))), flush=True)
        return 0
    kwargs = {k: v for k, v in vars(args).items() if k != "serve"}
    print(json.dumps(race(**kwargs)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


class Racer:
    """A ``--serve`` racer subprocess (its own session group, stopped with it)."""

    def __init__(self) -> None:
        import subprocess

        root = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.router_race", "--serve"], cwd=root,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     start_new_session=True)
        line = self.proc.stdout.readline()
        if line.strip() != "READY":
            self.stop()
            raise RuntimeError(f"the racer subprocess did not start (said {line!r})")

    def send(self, **kwargs) -> None:
        self.proc.stdin.write(json.dumps(kwargs) + "\n")
        self.proc.stdin.flush()

    def result(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the racer subprocess died (exit {self.proc.wait(10)})")
        return json.loads(line)

    def stop(self) -> None:
        import signal
        import subprocess

        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)



@pytest.fixture(scope="module")
def racer():
    """One racer subprocess per test module (its imports take seconds), stopped even when a test fails."""
    r = Racer()
    try:
        yield r
    finally:
        r.stop()
