"""Budget race: 4 processes (separate router sessions, like 4 Dagster runs) against one per-day budget.

Starts the fault-injecting test server (tests/openai_server.py: latency, some 429s and 500s), writes
a catalog with real prices (gpt-4o list prices by default), and runs ``--processes`` racers
(tests/router_race.py, each its own Python process) on one SQLite warehouse file (or
``--warehouse-url``), each trying to enrich more records than the budget affords. Then the same
race with budget holds disabled (the old read-at-start budget) as the naive baseline.

    .venv/bin/python bench/budget_race.py [--budget 0.5] [--items 150] [--processes 4]

Last line: one JSON object. ``overspend_usd`` = ledger spend - budget, floored at 0 (must be 0);
``calls_affordable_real`` = budget / the mean real cost of a call in this run,
``calls_affordable_worst`` = budget / the mean worst case reserved per call.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from resources.router import ledger_spend  # noqa: E402
from resources.warehouse import Warehouse  # noqa: E402
from tests.openai_server import OpenAICompatServer  # noqa: E402


def catalog(url: str, input_per_1m: float, output_per_1m: float) -> dict:
    return {
        "endpoints": {"testllm": {"base_url": url, "timeout_s": 5.0, "max_attempts": 3,
                                  "backoff": {"initial_s": 0.01, "max_s": 0.05, "jitter_s": 0.01}}},
        "models": {"small": {"endpoint": "testllm", "model": "test-small",
                             "params": {"temperature": 0, "max_tokens": 100},
                             "price": {"input_per_1m": input_per_1m, "output_per_1m": output_per_1m}}},
        "cache": {"enabled": False},
    }


def race(args, models: Path, warehouse_url: str, naive: bool) -> dict:
    start_at = time.time() + 8.0  # after every racer's imports
    cmd = [sys.executable, "-m", "tests.router_race", "--catalog", str(models), "--warehouse", warehouse_url,
           "--items", str(args.items), "--per-day", str(args.budget), "--start-at", str(start_at)]
    procs = [subprocess.Popen([*cmd, "--prefix", f"P{k}", "--run-id", f"race-{k}"] + (["--naive"] if naive else []),
                              cwd=ROOT, stdout=subprocess.PIPE, text=True) for k in range(args.processes)]
    results = [json.loads(p.communicate(timeout=600)[0].strip().splitlines()[-1]) for p in procs]
    spend = ledger_spend(Warehouse(url=warehouse_url), family="support_triage")
    return {"spend_usd": spend.cost_usd, "calls": spend.calls, "overspend_usd": max(0.0, spend.cost_usd - args.budget),
            "refused": sum(r["refused"] for r in results), "overruns": sum(r["overruns"] for r in results),
            "wall_s": round(max(r["seconds"] for r in results), 3)}


def worst_case_per_call(models: Path) -> float:
    from resources.router import ModelRouter
    from resources.router.calls import worst_case_tokens_in
    from tests.router_fixtures import FAMILY_DIR, make_items
    from orchestration_assets.family import Family

    task = Family.load(FAMILY_DIR).tasks["summary"]
    provider = ModelRouter(config_path=str(models), api_key="sk-bench").remote_providers()["small"]
    costs = [provider.model.price.cost(worst_case_tokens_in(provider.prepare(task, it)), provider.model.max_tokens)
             for it in make_items(50)]
    return statistics.mean(costs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=float, default=0.1, help="per-day budget, USD")
    p.add_argument("--items", type=int, default=150, help="records per process")
    p.add_argument("--processes", type=int, default=4)
    p.add_argument("--input-per-1m", type=float, default=2.5)
    p.add_argument("--output-per-1m", type=float, default=10.0)
    p.add_argument("--warehouse-url", default="", help="default: a temp SQLite file per race")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp, OpenAICompatServer(
            latency_s=0.02, fault_rate=0.05, fault_kinds=("rate_limit", "server_error"), seed=7) as srv:
        models = Path(tmp, "models.yaml")
        models.write_text(yaml.safe_dump(catalog(srv.url, args.input_per_1m, args.output_per_1m)))
        out = {}
        for name, naive in (("holds", False), ("naive", True)):
            url = args.warehouse_url or f"sqlite:///{Path(tmp, f'{name}.db')}"
            if args.warehouse_url:  # one database: clear the earlier race's spend
                wh = Warehouse(url=url)
                if wh.has_table("llm_spend"):
                    with wh.engine.begin() as conn:
                        conn.exec_driver_sql("DELETE FROM llm_spend")
            out[name] = race(args, models, url, naive)
            print(f"{name}: {out[name]}", file=sys.stderr)
        worst = worst_case_per_call(models)
    held = out["holds"]
    real = held["spend_usd"] / held["calls"] if held["calls"] else 0.0
    print(json.dumps({
        "processes": args.processes, "budget_usd": args.budget, "items_per_process": args.items,
        "overspend_usd": round(held["overspend_usd"], 6), "spend_usd": round(held["spend_usd"], 6),
        "calls_made": held["calls"],
        "calls_affordable_real": round(args.budget / real, 1) if real else None,
        "calls_affordable_worst": round(args.budget / worst, 1),
        "refused_calls": held["refused"], "budget_overruns": held["overruns"], "wall_s": held["wall_s"],
        "naive_overspend_usd": round(out["naive"]["overspend_usd"], 6), "naive_calls_made": out["naive"]["calls"],
        "naive_wall_s": out["naive"]["wall_s"],
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
