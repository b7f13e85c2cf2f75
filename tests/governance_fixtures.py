"""Helpers of the review, dispatch and monitoring tests: seeded governance tables and a real webhook.

:func:`seed_batch` writes a family's ``routing_decisions`` and ``enriched_records`` partitions shaped
as its graph writes them (every task's answer columns, provenance, the policy's decision and
reasons), so the review queue, decisions and dispatch run on known rows without enriching anything.
:class:`WebhookServer` is a real HTTP receiver on 127.0.0.1 that records every POST.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pandas as pd

from orchestration_assets.core.policy import policy_version
from orchestration_assets.family import Family
from orchestration_assets.loading import family_definitions
from tests.workflow import temp_resources

PARTITION = "batch-review.csv"
# the policy's decision of record i (cycled) and the reasons it gives
DECISIONS = ["auto_send", "human_review", "escalate", "auto_send", "human_review"]
REASONS = {"auto_send": [], "human_review": ["LOW_CONFIDENCE"], "escalate": ["SENSITIVE_FLAG:legal", "VIP_ACCOUNT"]}
REPLY = ("Hello, sorry about the trouble signing in. Please reset your password with the help article on "
         "sign-in issues; we checked your workspace and it is active.")


def _field_value(family: Family, name: str, i: int, created: pd.Timestamp):
    f = family.record.fields[name]
    if name == family.id_field:
        return None  # set from the record id
    if f.type == "timestamp":
        return created
    if f.type == "email":
        return None  # no PII in seeded records unless a test puts it there
    if f.type in ("integer", "number"):
        return i
    if f.type == "boolean":
        return False
    if f.values:
        return f.values[0]
    if name in family.record.text[:-1]:
        return f"Cannot sign in ({i})"
    if name in family.record.text:
        return f"Since this morning I cannot sign in to my workspace {i}; the login page rejects my password."
    return f"{name}-{i % 3}"


def _answers(family: Family, i: int) -> dict:
    row: dict = {}
    for t in family.tasks.values():
        n = t.name
        if t.type == "classify":
            row.update({n: t.labels[0], f"{n}_confidence": 0.8, f"{n}_probabilities": {t.labels[0]: 0.8},
                        f"{n}_reasons": []})
        elif t.type == "sentiment":
            row.update({n: "negative", f"{n}_score": -0.4})
        elif t.type == "summarize":
            row[n] = f"The customer cannot sign in since this morning ({i})."
        elif t.type == "draft":
            row.update({n: REPLY, f"{n}_cited_ids": ["KB-001"], f"{n}_violations": []})
        elif t.type == "flag":
            row.update({n: [], **{f"{n}_{r}": False for r in t.spec.rules}})
        else:  # extract
            row.update({f"{n}_{f}": None for f in t.spec.fields})
            row[f"{n}_confidence"] = 0.9
        row.update({f"{n}_model_version": "local@1", f"{n}_path": "local", f"{n}_cost_usd": 0.0,
                    f"{n}_latency_ms": 5.0, f"{n}_error": None})
    return row


def seed_batch(warehouse, family: Family, n: int = 10, partition: str = PARTITION,
               start: str = "2026-11-23T08:00:00Z", prefix: str | None = None,
               decisions: list[str] | None = None, newest_first: bool = False) -> pd.DataFrame:
    """Write ``n`` enriched records and their routing decisions for ``partition``; returns the decisions.

    Record i is routed ``DECISIONS[i % 5]`` (or ``decisions[i]``); it entered the queue 2 minutes
    after its own time, records 10 minutes apart, so the oldest queued item is the first pending one
    (the last one with ``newest_first``).
    """
    created = pd.date_range(start, periods=n, freq="10min", tz="UTC")
    if newest_first:
        created = created[::-1]
    prefix = prefix if prefix is not None else partition.split(".")[0]
    ids = [f"{prefix}-R{i:04d}" for i in range(n)]
    decided = decisions or [DECISIONS[i % len(DECISIONS)] for i in range(n)]
    model_task = family.model_task.name
    enriched = []
    for i, rid in enumerate(ids):
        row = {"record_id": rid, **{f: _field_value(family, f, i, created[i]) for f in family.record.fields}}
        row[family.id_field] = rid
        row.update(_answers(family, i))
        row.update({"input_hash": f"in{i:04d}", "status": "enriched", "failure_reason": None,
                    "guardrail_violations": [], "model_version": row[f"{model_task}_model_version"],
                    "model_versions": {t: "local@1" for t in family.tasks}, "prompt_version": "prompt@1",
                    "cost_usd": 0.0, "partition": partition, "run_id": "seed-run",
                    "ingested_at": created[i] + pd.Timedelta(minutes=1)})
        enriched.append(row)
    enriched_df = pd.DataFrame(enriched)
    routing = pd.DataFrame({
        "record_id": ids,
        "decision": decided,
        "reasons": [REASONS[d] for d in decided],
        "policy_version": policy_version(family),
        "policy_errors": [[] for _ in ids],
        "status": "enriched",
        "model_version": enriched_df["model_version"],
        "model_versions": enriched_df["model_versions"],
        "prompt_version": "prompt@1",
        "input_hash": enriched_df["input_hash"],
        **{t.name: enriched_df[t.name] for t in family.tasks_of("classify")},
        **{f"{t.name}_confidence": enriched_df[f"{t.name}_confidence"] for t in family.tasks_of("classify")},
        "record_time": created,
        "partition": partition,
        "run_id": "seed-run",
        "decided_at": created + pd.Timedelta(minutes=2),
    })
    warehouse.replace_partition(family.table("enriched_records"), enriched_df, partition)
    warehouse.replace_partition(family.table("routing_decisions"), routing, partition)
    return routing


def pending_ids(routing: pd.DataFrame) -> list[str]:
    """Records routed to a reviewer, oldest first."""
    return routing.loc[routing["decision"].isin(["human_review", "escalate"]), "record_id"].tolist()


def auto_ids(routing: pd.DataFrame) -> list[str]:
    return routing.loc[routing["decision"] == "auto_send", "record_id"].tolist()


def validations_meet(monkeypatch, parties: int = 2) -> None:
    """Every decision waits after its validation until ``parties`` have validated: the worst interleaving of
    concurrent reviewers (both pass validation before either writes), made certain."""
    import threading

    from orchestration_assets.core import review as core_review

    barrier = threading.Barrier(parties, timeout=30)
    validate = core_review.validate_decision

    def validate_then_wait(*args, **kwargs):
        row = validate(*args, **kwargs)
        barrier.wait()
        return row

    monkeypatch.setattr(core_review, "validate_decision", validate_then_wait)


class Env:
    """One or more families' definitions on temp resources (a fresh warehouse per test)."""

    def __init__(self, families: list[Family], root: Path, model_dir: Path, instance, **overrides):
        self.families = {f.name: f for f in families}
        self.root, self.instance = root, instance
        self.resources = temp_resources(root, model_dir, **overrides)
        self.defs = family_definitions(families, self.resources)

    @property
    def warehouse(self):
        return self.resources["warehouse"]

    @property
    def outbox(self) -> Path:
        return Path(self.resources["outbox"].folder)

    def job(self, family: str, job: str):
        return self.defs.resolve_job_def(f"{family}__{job}")

    def decide(self, family: str, **config) -> dg.ExecuteInProcessResult:
        """A decision through the launchpad: the family's record_review_decision job with it as config."""
        return self.job(family, "record_review_decision").execute_in_process(
            run_config={"ops": {f"{family}__review_decisions": {"config": config}}},
            instance=self.instance, raise_on_error=False)

    def dispatch(self, family: str) -> dg.ExecuteInProcessResult:
        return self.job(family, "dispatch").execute_in_process(instance=self.instance, raise_on_error=False)

    def materialize(self, family: str, *assets: str) -> dg.ExecuteInProcessResult:
        """Materialize some unpartitioned assets of a family (as "Materialize selected" in the UI)."""
        keys = [dg.AssetKey([family, a]) for a in assets]
        job = self.defs.resolve_implicit_job_def_def_for_assets(keys)
        return job.execute_in_process(asset_selection=keys, instance=self.instance)

    def table(self, family: str, asset: str) -> pd.DataFrame:
        return self.warehouse.read_table(self.families[family].table(asset))


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The user-facing message of every failed step of a run."""
    out = []
    for e in result.all_events:
        if e.is_step_failure:
            data = e.step_failure_data
            out.append(data.user_failure_data.description if data.user_failure_data else data.error.message)
    return " ".join(out)


def metadata_of(result: dg.ExecuteInProcessResult, family: str, asset: str) -> dict:
    """{metadata key: raw value} of the run's materialization of ``family/asset``."""
    key = dg.AssetKey([family, asset])
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if mat.asset_key == key:
            return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    raise KeyError(f"{key.to_user_string()} was not materialized")


class WebhookServer:
    """A real HTTP receiver on 127.0.0.1 that records every POST; it can refuse with a status or be slow."""

    def __init__(self, fail_with: int | None = None, delay_s: float = 0.0) -> None:
        self.posts: list[dict] = []
        self.fail_with, self.delay_s = fail_with, delay_s
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if server.delay_s:
                    time.sleep(server.delay_s)
                if server.fail_with:
                    self.send_response(server.fail_with)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with server._lock:
                    server.posts.append({"key": self.headers.get("Idempotency-Key"), "body": json.loads(body)})
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # a token in the query string: it must not appear in errors or metadata
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/outputs?token=s3cret-hook-token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "WebhookServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def keys(self) -> Counter:
        with self._lock:
            return Counter(p["key"] for p in self.posts)
