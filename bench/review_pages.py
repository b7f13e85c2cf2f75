"""Benchmark: the reviewer inbox's page times on a realistic queue, against the floor of its reads.

Seeds a temporary SQLite warehouse with ``--n`` routed records of ``--family`` (default 2,000
support_triage records, ``tests/governance_fixtures.seed_batch``: 40 % human_review, 20 % escalate,
so 1,200 pending, more than the 714 of the issue's story) and one lead account, signs in once through
the form, and times, ``--repeats`` times each (medians), through the whole ASGI app (FastAPI's
TestClient: routing, session, CSRF, templates; no network):

- **home**: counts per family and reason;
- **queue**: one page (50 items) of the family's queue, oldest first;
- **item**: one item page (record, enrichment, form);
- **decide**: one decision POST (approve), through ``record_decision`` as the CLI, plus the redirect.

The floor, in the same run: the same reads without the web layer, i.e. what ``workflow-review queue``
does (``review_queue`` over the whole routing, enriched and decision tables), and one direct
``record_decision`` call. Ratios are page over floor. The last line is one JSON object.

    .venv/bin/python bench/review_pages.py [--n 2000] [--repeats 7] [--family support_triage]
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402

from orchestration_assets.core.review import ReviewDecision, read_review_decisions, record_decision, review_queue  # noqa: E402
from orchestration_assets.inputs import whole_table  # noqa: E402
from orchestration_assets.loading import load_families  # noqa: E402
from orchestration_assets.service import accounts  # noqa: E402
from orchestration_assets.service.app import create_app  # noqa: E402
from orchestration_assets.service.settings import ServiceSettings  # noqa: E402
from resources.warehouse import Warehouse  # noqa: E402
from tests.governance_fixtures import seed_batch  # noqa: E402
from tests.service_fixtures import PASSWORD, SECRET, csrf_of, sign_in  # noqa: E402
from tests.workflow import DEFS  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="support_triage")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()

    family = next(f for f in load_families(DEFS) if f.name == args.family)
    root = Path(tempfile.mkdtemp(prefix="bench-review-"))
    url = f"sqlite:///{root / 'warehouse.db'}"
    wh = Warehouse(url=url)
    routing = seed_batch(wh, family, n=args.n)
    accounts.add_user(wh, "lead", PASSWORD, {family.name: "lead"})
    app = create_app(ServiceSettings(warehouse_url=url, defs_folder=DEFS, secret_key=SECRET), [family])
    client = TestClient(app)
    sign_in(client, "lead")
    pending = routing.loc[routing["decision"].isin(["human_review", "escalate"]), "record_id"].tolist()
    approvable = routing.loc[routing["decision"] == "human_review", "record_id"].tolist()

    def get(path):
        r = client.get(path)
        assert r.status_code == 200, (path, r.status_code)
        return r

    home_ms, _ = timed(lambda: get("/"), args.repeats)
    queue_ms, _ = timed(lambda: get(f"/families/{family.name}"), args.repeats)
    item_ms, page = timed(lambda: get(f"/families/{family.name}/items/{pending[0]}"), args.repeats)
    token = csrf_of(page.text)
    ids = iter(approvable)

    def decide():
        rid = next(ids)
        r = client.post(f"/families/{family.name}/items/{rid}", data={"csrf_token": token, "action": "approve"})
        assert r.status_code == 200 and "Recorded approve" in r.text, r.status_code
    decide_ms, _ = timed(decide, args.repeats)

    def floor_queue():
        return review_queue(family, whole_table(wh, family, "routing_decisions"),
                            whole_table(wh, family, "enriched_records"), read_review_decisions(wh, family.name))
    floor_queue_ms, queue = timed(floor_queue, args.repeats)

    def floor_decide():
        record_decision(wh, family, ReviewDecision(record_id=next(ids), decision="approve", reviewer="lead"),
                        channel="cli")
    floor_decide_ms, _ = timed(floor_decide, args.repeats)

    result = {
        "family": family.name, "n": args.n, "pending": len(queue) + 2 * args.repeats, "repeats": args.repeats,
        "home_ms": round(home_ms, 1), "queue_ms": round(queue_ms, 1), "item_ms": round(item_ms, 1),
        "decide_ms": round(decide_ms, 1), "floor_queue_ms": round(floor_queue_ms, 1),
        "floor_decide_ms": round(floor_decide_ms, 1),
        "queue_over_floor": round(queue_ms / floor_queue_ms, 2), "decide_over_floor": round(decide_ms / floor_decide_ms, 2),
    }
    print(f"{family.name}: {args.n} routed records, {result['pending']} pending at the start; medians of {args.repeats}")
    for key in ("home", "queue", "item", "decide"):
        print(f"  {key:<7} page {result[key + '_ms']:>8.1f} ms")
    print(f"  floor   queue read {floor_queue_ms:.1f} ms, record_decision {floor_decide_ms:.1f} ms "
          f"(queue page {result['queue_over_floor']}x, decision {result['decide_over_floor']}x)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
