"""Outbox delivery throughput without a webhook, against the file system's own cost.

    python bench/dispatch.py [--n 10000] [--reps 3]

Run from the repo root in the project's virtualenv. Builds N deliveries shaped like a family's
auto_send outputs (a ~1 KB reply text, labels, confidences, reason lists, versions, timestamps) and
delivers them with ``Dispatcher.deliver`` into a temp SQLite ledger and outbox folder, with the
audit callback the ``dispatches`` asset uses (one ``record_events`` per chunk). Measured in the same
run, as the physical limit: N files of the same size created under temp names, one ``syncfs``,
renamed, folder fsynced, nothing else. Each figure is the median of ``--reps`` fresh runs (wall,
user and system CPU seconds). Last line: one JSON object with n, deliver and files_only medians,
ratio_to_files_only (wall), deliveries_per_s.
"""

import argparse
import ctypes
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = "thank you for contacting us about your order we have checked the shipment and carrier tracking".split()


def clocks() -> tuple[float, float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), r.ru_utime, r.ru_stime


def since(start: tuple[float, float, float]) -> dict[str, float]:
    return {m: b - a for m, a, b in zip(("wall", "user", "sys"), start, clocks())}


def items(n: int):
    import pandas as pd

    text = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(170)) + f" #{i}" for i in range(n)]
    return pd.DataFrame({
        "record_id": [f"R-{i:07d}" for i in range(n)], "text": text, "account_id": [f"ACC-{i % 997:04d}" for i in range(n)],
        "category": [("billing", "shipping", "product_question")[i % 3] for i in range(n)],
        "category_confidence": [(i % 100) / 100 for i in range(n)],
        "category_reasons": [[f"model:{('billing', 'shipping', 'product_question')[i % 3]}"] for i in range(n)],
        "priority": [("low", "medium", "high")[i % 3] for i in range(n)],
        "priority_confidence": [(i % 37) / 37 for i in range(n)], "priority_reasons": [["model:low"]] * n,
        "source": "auto_send", "approved_by": "policy", "model_version": "fc299694757a2359",
        "prompt_version": "e697c61ba5b940f3", "policy_version": "5f56d5bfe132d531",
        "record_time": pd.to_datetime(["2026-11-23T00:30:44"] * n, utc=True),
        "approved_at": ["2026-12-01T23:33:25.919103+00:00"] * n,
    })


def deliver_once(frame, root: Path) -> dict[str, float]:
    import pandas as pd

    from orchestration_assets.core.dispatch import dispatch_audit_events
    from resources.audit import record_events
    from resources.outbox import Outbox
    from resources.warehouse import Warehouse

    warehouse = Warehouse(url=f"sqlite:///{root / 'w.db'}")
    dispatcher = Outbox(folder=str(root / "outbox")).dispatcher(warehouse, "bench")
    start = clocks()
    report = dispatcher.deliver(frame, run_id="bench", on_delivered_many=lambda d: record_events(
        warehouse, dispatch_audit_events("bench", pd.DataFrame(d))))  # a frame: what older code took
    took = since(start)
    if len(report.delivered) != len(frame):
        raise SystemExit(f"error: {len(report.delivered)} of {len(frame)} delivered ({len(report.failed)} failed)")
    return took


def files_only(n: int, size: int, root: Path) -> dict[str, float]:
    folder = root / "limit"
    folder.mkdir()
    data, start = b"x" * size, clocks()
    for i in range(n):
        fd = os.open(folder / f".f{i}.json.1.abcdef01.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        os.write(fd, data)
        os.close(fd)
    fd = os.open(folder, os.O_RDONLY)
    ctypes.CDLL(None).syncfs(fd)
    for i in range(n):
        os.replace(folder / f".f{i}.json.1.abcdef01.tmp", folder / f"f{i}.json")
    os.fsync(fd)
    os.close(fd)
    return since(start)


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {m: round(statistics.median(r[m] for r in runs), 3) for m in ("wall", "user", "sys")}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="deliveries per run (default 10,000)")
    ap.add_argument("--reps", type=int, default=3, help="runs of each (default 3)")
    args = ap.parse_args(argv)
    frame = items(args.n)
    size = len(json.dumps(frame.iloc[0].astype(str).to_dict(), indent=2).encode())
    deliver, limit = [], []
    for _ in range(args.reps):
        root = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
        try:
            limit.append(files_only(args.n, size, root))
            deliver.append(deliver_once(frame, root))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    d, f = median(deliver), median(limit)
    print(f"deliver {args.n:,}: {d['wall']:.2f}s wall (user {d['user']:.2f}s, sys {d['sys']:.2f}s); the same number "
          f"of files alone: {f['wall']:.2f}s wall (sys {f['sys']:.2f}s)")
    result = {"n": args.n, "reps": args.reps, "deliver": d, "files_only": f,
              "ratio_to_files_only": round(d["wall"] / f["wall"], 2), "deliveries_per_s": round(args.n / d["wall"], 1)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
