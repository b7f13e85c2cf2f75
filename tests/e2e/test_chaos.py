"""Chaos: a family's workflow run SIGKILLed during ingest, during enrichment and during dispatch, then re-run.

refund_requests on a 30-row batch, as a user would have it with an LLM switched on: its ``summary`` task
goes to a real local OpenAI-compatible server (so that step takes a slot of the ``model_calls`` pool,
limited to 1 here: one leaked slot blocks every later run) and its replies go to a real webhook. Each run
is a process of its own (forked from a warm parent, ``tests.e2e.chaos_run``) that recovers like the
quick start before running. The test kills run 1 at the ingest step, run 2 while its LLM calls are in
flight, run 3 in the middle of delivering, lets run 4 finish, and checks what a user would check:
the killed runs are failed with the reason, no pool slot is left claimed, no table has a duplicate
row, every input row is accounted for, and every reply went out exactly once. The outbox lease (how
long a dead dispatcher's claim is respected) is 1 s here instead of 60 s, so run 4 need not wait.
Takes ~35 s on 2 idle cores, ~75 s when they are busy.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
import yaml

from orchestration_assets.quickstart import DAGSTER_YAML
from resources.audit import read_audit
from resources.outbox import read_ledger
from tests.conformance.guarantees import rows_accounted, snapshot
from tests.e2e.chaos_run import MODEL, WEBHOOK_ENV, family_at, resources_for
from tests.governance_fixtures import WebhookServer
from tests.openai_server import OpenAICompatServer
from tests.workflow import DEFS, copy_batch, inbox_of, sample_files

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(300)]

FAMILY = "refund_requests"
BATCH = "chaos.csv"
ROWS = 30
POOL = "model_calls"
REPO = Path(__file__).resolve().parents[2]


class Runs:
    """The warm parent of the runs, and what the test sees of them through the Dagster instance."""

    def __init__(self, root: Path, env: dict):
        self.root = root
        self.log = (root / "parent.log").open("w")
        self.proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "python"), "-m", "tests.e2e.chaos_run", str(root)],
                                     cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        self.instance = None
        self.seen: set[str] = set()

    def _ask(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def ready(self) -> None:
        assert self.proc.stdout.readline().strip() == "READY", self.logs()
        self.instance = dg.DagsterInstance.from_config(str(self.root / "home"))

    def start(self) -> int:
        return int(self._ask(f"run {BATCH}").split()[1])

    def wait(self, pid: int) -> int:
        return int(self._ask(f"wait {pid}").split()[2])

    def new_run_id(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ids = [r.run_id for r in self.instance.get_runs(limit=1)]
            if ids and ids[0] not in self.seen:
                self.seen.add(ids[0])
                return ids[0]
            time.sleep(0.05)
        raise AssertionError(f"no run started; logs:\n{self.logs()}")

    def started(self, run_id: str, step: str) -> bool:
        return any(e.step_key == step for e in self.instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START))

    def kill_when(self, what: str, ready, timeout: float = 120) -> str:
        """Start a run, SIGKILL it as soon as ``ready(run_id)`` holds; the killed run's id."""
        pid = self.start()
        run_id = self.new_run_id()
        deadline = time.monotonic() + timeout
        while not ready(run_id):
            assert time.monotonic() < deadline, f"run {run_id} never reached {what}; logs:\n{self.logs()}"
            assert not self.instance.get_run_by_id(run_id).is_finished, \
                f"run {run_id} ended before {what}; logs:\n{self.logs()}"
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        assert self.wait(pid) == -signal.SIGKILL
        return run_id

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.root.rglob("*.log")))

    def close(self) -> None:
        if self.instance is not None:
            self.instance.dispose()
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def family_copy(root: Path) -> None:
    """refund_requests with its summary on the test LLM (falling back to local) and its replies to a webhook."""
    folder = root / "defs" / FAMILY
    shutil.copytree(DEFS / FAMILY, folder)
    doc = yaml.safe_load((folder / "defs.yaml").read_text(encoding="utf-8"))
    doc["attributes"]["routing"] = {"summary": {"provider": MODEL, "fallbacks": ["local"]}}
    doc["attributes"]["dispatch"]["webhook_url_env"] = WEBHOOK_ENV
    (folder / "defs.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def catalog(url: str) -> dict:
    return {"endpoints": {"testllm": {"base_url": url, "timeout_s": 10.0, "max_attempts": 2}},
            "models": {MODEL: {"endpoint": "testllm", "model": "test-small",
                               "price": {"input_per_1m": 0.15, "output_per_1m": 0.60}}},
            "cache": {"enabled": True, "table": "llm_cache"}}


@pytest.fixture
def chaos_root():
    # tmpfs: four runs' worth of SQLite commits (Dagster's event log, the warehouse) cost seconds on disk
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    root = Path(tempfile.mkdtemp(prefix="chaos-", dir=base))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_runs_killed_during_ingest_enrichment_and_dispatch_lose_and_duplicate_nothing(chaos_root):
    t0 = time.monotonic()
    root = chaos_root
    family_copy(root)
    (root / "home").mkdir()
    # the quick start's instance, with one slot in the pool: a single leaked slot would block every later run
    (root / "home" / "dagster.yaml").write_text(DAGSTER_YAML.replace("default_limit: 4", "default_limit: 1"))
    with OpenAICompatServer(latency_s=0.5) as llm, WebhookServer(delay_s=0.2) as hook:
        (root / "models.yaml").write_text(yaml.safe_dump(catalog(llm.url)), encoding="utf-8")
        family = family_at(root)
        resources = resources_for(root)
        copy_batch(sample_files(family)[0], inbox_of(family, resources), n=ROWS, name=BATCH)
        env = {k: v for k, v in os.environ.items() if k not in ("DATA_DIR", "WAREHOUSE_URL", "OPENAI_API_KEY")}
        env.update({"DAGSTER_HOME": str(root / "home"), WEBHOOK_ENV: hook.url, "GX_ANALYTICS_ENABLED": "False",
                    "DATA_DIR": str(root / "data")})
        runs = Runs(root, env)
        try:
            runs.ready()
            step = (family.name + "__{}").format
            killed = [
                runs.kill_when("ingest", lambda r: runs.started(r, step("batch"))),
                runs.kill_when("enrichment with LLM calls in flight",
                               lambda r: runs.started(r, step("summary")) and llm.in_flight > 0),
                runs.kill_when("dispatch, mid-delivery",
                               lambda r: runs.started(r, step("dispatches")) and len(hook.posts) >= 2),
            ]
            pid = runs.start()
            last = runs.new_run_id()
            assert runs.wait(pid) == 0, runs.logs()
            instance = runs.instance

            # the killed runs are failed with the reason; nothing is left STARTED or holding the pool
            for run_id in killed:
                assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
                (failure,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
                assert "is gone: it was killed or crashed" in failure.message
            assert instance.get_run_by_id(last).status == dg.DagsterRunStatus.SUCCESS
            info = instance.event_log_storage.get_concurrency_info(POOL)
            assert info.claimed_slots == [] and info.pending_steps == []

            wh = resources["warehouse"]
            assert rows_accounted(wh, family, BATCH, ROWS) == []
            snap = snapshot(wh, family, BATCH, root / "run" / "outbox")
            assert snap.duplicates and not any(snap.duplicates.values()), snap.duplicates
            quarantined = wh.read_table(family.table("quarantined_records"), partitions=[BATCH])
            assert not quarantined.duplicated(["source_row", "field"]).any()
            audit = read_audit(wh)
            assert audit["natural_key"].is_unique
            decided = audit[(audit["event_type"] == "routing_decision") & (audit["partition"] == BATCH)]
            assert len(decided) == snap.rows["routing_decisions"]
            spend = wh.query('SELECT * FROM "llm_spend"').drop(columns=["id", "recorded_at"])
            assert len(spend) and not spend.duplicated().any()

            # every reply out exactly once: one ledger row, one file, one webhook key (a repeat only for the
            # one delivery in flight at the kill, with the same key, as resources/outbox.py documents)
            ledger = read_ledger(wh.engine, family=FAMILY)
            decisions = wh.read_table(family.table("routing_decisions"), partitions=[BATCH])
            expected = set(decisions.loc[decisions["decision"] == "auto_send", "record_id"])
            assert ledger["record_id"].is_unique and set(ledger["record_id"]) == expected
            assert expected and set(ledger["status"]) == {"delivered"}
            files = sorted((root / "run" / "outbox" / FAMILY).glob("*.json"))
            assert sorted(json.loads(f.read_text())["record_id"] for f in files) == sorted(expected)
            keys = Counter(p["key"] for p in hook.posts)
            assert set(keys) == {f"dispatch:{FAMILY}:{r}" for r in expected}
            assert sum(keys.values()) - len(keys) <= 1, keys
        finally:
            runs.close()
    print(f"chaos test: {time.monotonic() - t0:.1f}s")
