"""Benchmark: the model router vs the theoretical limit and a naive sequential loop.

Sends N tickets (default 1,000) through the router to the local OpenAI-compatible test server
(run as a separate process, fixed latency, default 200 ms) at concurrency C (default 32) and
prints the router's wall time, the limit N x latency / C, their ratio, a naive sequential loop
(the plain sync SDK, one call after another) timed on a small sample and extrapolated to N, and
the speed-up. Then the same run with 30 % injected faults (500, 429, malformed JSON, wrong schema):
rows lost (must be 0) and the wall-time ratio. The last line is one JSON object.

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

from resources.providers.base import ModelProvider, Task, TicketInput  # noqa: E402
from resources.router import ModelRouter  # noqa: E402

TASK = Task.summarize


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


def make_tickets(n: int, prefix: str) -> list[TicketInput]:
    return [
        TicketInput(
            ticket_id=f"{prefix}-{i:05d}",
            subject=f"Order {i} question",
            body=f"Hello, my order number {i} has not arrived yet. Can you check the delivery status?",
            channel="email",
        )
        for i in range(n)
    ]


def local_provider(tmp: Path) -> ModelProvider:
    from resources.providers.local import LocalModelStore

    return LocalModelStore(model_dir=str(tmp / "models")).provider()


def router_for(tmp: Path, url: str, concurrency: int, name: str) -> ModelRouter:
    config = {
        "concurrency": concurrency,
        "endpoints": {
            "bench": {
                "base_url": url,
                "api_key_required": False,
                "timeout_s": 10,
                "max_attempts": 4,
                "backoff": {"initial_s": 0.05, "max_s": 0.5, "jitter_s": 0.05},
                "max_concurrency": concurrency,
                "cooldown": {"after_failures": 25, "seconds": 5},
            }
        },
        "models": {"bench-model": {"endpoint": "bench", "model": "bench-model", "params": {"max_tokens": 100}}},
        "tasks": {TASK.value: {"provider": "bench-model"}},
        "cache": {"enabled": False},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return ModelRouter(config_path=str(path))


def run_router(router: ModelRouter, local: ModelProvider, tickets: list[TicketInput]) -> tuple[float, object]:
    session = router.session(local=local)
    start = time.perf_counter()
    batch = session.run(TASK, tickets)
    return time.perf_counter() - start, batch


def rows_lost(tickets: list[TicketInput], batch) -> int:
    ids = [r.ticket_id for r in batch.results]
    answered = sum(1 for r in batch.results if r.ok and getattr(r, "summary", None))
    return len(tickets) - answered + sum(1 for a, b in zip(ids, (t.ticket_id for t in tickets)) if a != b)


def sequential_sample(url: str, tickets: list[TicketInput]) -> float:
    """The naive loop: the sync SDK, one ticket after another."""
    from openai import OpenAI

    from resources.providers.openai import system_prompt

    client = OpenAI(api_key="not-needed", base_url=url, max_retries=0, timeout=10)
    start = time.perf_counter()
    for t in tickets:
        client.chat.completions.create(
            model="bench-model",
            messages=[
                {"role": "system", "content": system_prompt(TASK)},
                {"role": "user", "content": json.dumps({"ticket_id": t.ticket_id, "subject": t.subject, "body": t.body})},
            ],
            max_tokens=100,
        )
    elapsed = time.perf_counter() - start
    client.close()
    return elapsed


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="router benchmark")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sample", type=int, default=20, help="tickets timed in the sequential loop")
    parser.add_argument("--fault-rate", type=float, default=0.3)
    args = parser.parse_args(argv)
    n, latency, c = args.n, args.latency, args.concurrency

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        local = local_provider(tmp)
        local.run(TASK, make_tickets(2, "warm"))  # load/train outside the timed part

        proc, url = start_server(latency)
        try:
            router = router_for(tmp, url, c, "clean")
            run_router(router, local, make_tickets(min(c, n), "warmup"))  # import/connection warm-up
            wall, batch = run_router(router, local, make_tickets(n, "clean"))
            lost = rows_lost(make_tickets(n, "clean"), batch)
            paths = batch.stats.paths
            seq = sequential_sample(url, make_tickets(args.sample, "seq"))
        finally:
            stop_server(proc)
        seq_extrapolated = seq / args.sample * n
        limit = n * latency / c

        proc, url = start_server(latency, fault_rate=args.fault_rate)
        try:
            router = router_for(tmp, url, c, "faulty")
            faulty_tickets = make_tickets(n, "faulty")
            faulty_wall, faulty = run_router(router, local, faulty_tickets)
            faulty_lost = rows_lost(faulty_tickets, faulty)
        finally:
            stop_server(proc)

    print(f"tickets N={n}, server latency {latency * 1000:.0f} ms, concurrency C={c}")
    print(f"router wall time            {wall:8.2f} s   paths {paths}")
    print(f"theoretical limit N*lat/C   {limit:8.2f} s   ratio {wall / limit:.3f} (target <= 1.15)")
    print(f"sequential loop (sample {args.sample}) {seq:6.2f} s -> extrapolated to N: {seq_extrapolated:8.2f} s")
    print(f"speed-up vs sequential      {seq_extrapolated / wall:8.1f} x")
    print(f"rows lost                   {lost}")
    s = faulty.stats
    print(
        f"with {args.fault_rate:.0%} injected faults: wall {faulty_wall:.2f} s (ratio to limit "
        f"{faulty_wall / limit:.3f}; {faulty_wall / (s.calls * latency / c):.3f} to the limit for the {s.calls} calls "
        f"made, {s.retries} of them retries), paths {s.paths}, rows lost {faulty_lost}"
    )
    summary = {
        "n": n,
        "latency_s": latency,
        "concurrency": c,
        "wall_s": round(wall, 3),
        "limit_s": round(limit, 3),
        "ratio_to_limit": round(wall / limit, 3),
        "speedup_vs_sequential": round(seq_extrapolated / wall, 1),
        "rows_lost": lost,
        "faulty_wall_s": round(faulty_wall, 3),
        "faulty_rows_lost": faulty_lost,
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
