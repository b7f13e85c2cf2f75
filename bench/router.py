"""Benchmark: the model router vs the theoretical limit and a naive sequential loop.

Sends N records (default 1,000) of the support_triage family's ``summary`` task through the router
to the OpenAI-compatible test server (a separate process, fixed latency, default 200 ms) at
concurrency C (default 32), and prints the router's wall time, the limit N x latency / C, their
ratio (target <= 1.15), a naive sequential loop (the plain sync SDK, one call after another) timed
on a small sample and extrapolated to N, and the speed-up. Then the same run with 30 % injected
faults (500, 429, malformed JSON, wrong schema): rows lost (must be 0) and the wall-time ratio.
The local fallback is a trivial in-bench provider (the LLM path is what is measured). The last
line is one JSON object.

    .venv/bin/python bench/router.py [--n 1000] [--latency 0.2] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from orchestration_assets.family import Family  # noqa: E402
from resources.providers.base import Item, ModelProvider, TaskResult  # noqa: E402
from resources.providers.definition import TaskDefinition  # noqa: E402
from resources.router import ModelRouter  # noqa: E402
from resources.router.routes import Budget, TaskRoute  # noqa: E402

FAMILY = Family.load(ROOT / "orchestration_assets" / "defs" / "support_triage")
TASK = FAMILY.tasks["summary"]


class FirstSentenceLocal(ModelProvider):
    """The fallback: the first sentence of the text (the real local provider is not what is measured)."""

    name = "bench-local"

    def supports(self, task: TaskDefinition) -> bool:
        return task.type == "summarize"

    def run(self, task: TaskDefinition, items) -> list[TaskResult]:
        return [TaskResult(record_id=i.id, task=task.name, output={"summary": i.text.split(".")[0][:200]},
                           provider=self.name, model_id="first-sentence", model_version="1", prompt_hash="",
                           input_hash=i.input_hash) for i in items]


def start_server(latency: float, fault_rate: float = 0.0, seed: int = 7) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "openai_server.py"), "--latency", str(latency),
         "--fault-rate", str(fault_rate), "--seed", str(seed)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline().strip() if proc.stdout else ""
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"test server did not start: {line!r}")
    return proc, line.split(" ", 1)[1]


def stop_server(proc: subprocess.Popen) -> None:
    if proc.stdin:
        proc.stdin.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def make_items(n: int, prefix: str) -> list[Item]:
    out = []
    for i in range(n):
        subject = f"Order {i} question"
        body = f"Hello, my order number {i} has not arrived yet. Can you check the delivery status?"
        out.append(Item(id=f"{prefix}-{i:05d}", text=f"{subject}\n{body}", fields={"subject": subject, "body": body}))
    return out


def router_for(tmp: Path, url: str, concurrency: int, name: str) -> ModelRouter:
    catalog = {
        "concurrency": concurrency,
        "endpoints": {"bench": {
            "base_url": url, "api_key_required": False, "timeout_s": 10, "max_attempts": 4,
            "backoff": {"initial_s": 0.05, "max_s": 0.5, "jitter_s": 0.05}, "max_concurrency": concurrency,
            "cooldown": {"after_failures": 25, "seconds": 5},
        }},
        "models": {"bench-model": {"endpoint": "bench", "model": "bench-model", "params": {"max_tokens": 100},
                                   "price": {}}},  # unpriced: this bench measures throughput, not cost
        "cache": {"enabled": False},  # every record must really go over HTTP
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(catalog), encoding="utf-8")
    return ModelRouter(config_path=str(path))


def run_router(router: ModelRouter, items: list[Item]) -> tuple[float, object]:
    session = router.session(family=FAMILY.name, routes={TASK.name: TaskRoute(provider="bench-model")},
                             budget=Budget(), local=FirstSentenceLocal())
    start = time.perf_counter()
    batch = session.run(TASK, items)
    return time.perf_counter() - start, batch


def rows_lost(items: list[Item], batch) -> int:
    """Items without a valid answer, plus results out of order."""
    answered = sum(1 for r in batch.results if r.ok and (r.output or {}).get("summary"))
    misplaced = sum(1 for r, i in zip(batch.results, items) if r.record_id != i.id)
    return len(items) - answered + misplaced


def sequential_sample(url: str, items: list[Item]) -> float:
    """The naive loop: the sync SDK, one record after another, the same prompt and schema."""
    from openai import OpenAI

    from resources.providers.openai import OpenAIProvider
    from resources.router.catalog import EndpointConfig, ModelConfig

    provider = OpenAIProvider(ModelConfig(endpoint="bench", model="bench-model", params={"max_tokens": 100}),
                              EndpointConfig(base_url=url, api_key_required=False), api_key=None)
    client = OpenAI(api_key="not-needed", base_url=url, max_retries=0, timeout=10)
    start = time.perf_counter()
    for item in items:
        call = provider.prepare(TASK, item)
        client.chat.completions.create(model="bench-model", messages=call.messages, max_tokens=100,
                                       response_format=call.prompt.response_format)
    elapsed = time.perf_counter() - start
    client.close()
    return elapsed


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="router benchmark")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sample", type=int, default=20, help="records timed in the sequential loop")
    parser.add_argument("--fault-rate", type=float, default=0.3)
    args = parser.parse_args(argv)
    n, latency, c = args.n, args.latency, args.concurrency

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        proc, url = start_server(latency)
        try:
            router = router_for(tmp, url, c, "clean")
            run_router(router, make_items(min(c, n), "warmup"))  # imports, TLS context, connections
            items = make_items(n, "clean")
            wall, batch = run_router(router, items)
            lost = rows_lost(items, batch)
            paths = batch.stats.paths
            seq = sequential_sample(url, make_items(args.sample, "seq"))
        finally:
            stop_server(proc)
        seq_extrapolated = seq / args.sample * n
        limit = n * latency / c

        proc, url = start_server(latency, fault_rate=args.fault_rate)
        try:
            router = router_for(tmp, url, c, "faulty")
            faulty_items = make_items(n, "faulty")
            faulty_wall, faulty = run_router(router, faulty_items)
            faulty_lost = rows_lost(faulty_items, faulty)
        finally:
            stop_server(proc)

    s = faulty.stats
    print(f"records N={n}, task {TASK.key} ({TASK.type}), server latency {latency * 1000:.0f} ms, concurrency C={c}")
    print(f"router wall time            {wall:8.2f} s   paths {paths}")
    print(f"theoretical limit N*lat/C   {limit:8.2f} s   ratio {wall / limit:.3f} (target <= 1.15)")
    print(f"sequential loop (sample {args.sample}) {seq:6.2f} s -> extrapolated to N: {seq_extrapolated:8.2f} s")
    print(f"speed-up vs sequential      {seq_extrapolated / wall:8.1f} x")
    print(f"rows lost                   {lost}")
    print(
        f"with {args.fault_rate:.0%} injected faults: wall {faulty_wall:.2f} s (ratio to limit "
        f"{faulty_wall / limit:.3f}; {faulty_wall / (s.calls * latency / c):.3f} to the limit for the {s.calls} calls "
        f"made, {s.retries} of them retries), paths {s.paths}, rows lost {faulty_lost}"
    )
    summary = {
        "n": n, "latency_s": latency, "concurrency": c, "wall_s": round(wall, 3), "limit_s": round(limit, 3),
        "ratio_to_limit": round(wall / limit, 3), "sequential_s": round(seq_extrapolated, 2),
        "speedup_vs_sequential": round(seq_extrapolated / wall, 1), "rows_lost": lost,
        "faulty_wall_s": round(faulty_wall, 3), "faulty_ratio_to_limit": round(faulty_wall / limit, 3),
        "faulty_calls": s.calls, "faulty_retries": s.retries, "faulty_fallbacks": s.fallbacks,
        "faulty_rows_lost": faulty_lost,
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
