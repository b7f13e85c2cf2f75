"""What the router keeps when a step dies mid-batch, and how loud a rejected API key is.

Spend and answers reach the warehouse every few calls, not when the batch ends: a step killed
with SIGKILL keeps the ledger and cache rows of the calls it completed, and its re-run pays only
for the rest. A 401/403 is recorded in the ledger and fails the blocking spend check, naming the
endpoint, the model and the env var of the key (never the key); a few 5xx still pass.
"""

import itertools
import json
import logging
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from checks.spend import spend_check
from orchestration_assets.partitions import batches
from resources.router import ModelRouter, ledger_spend
from resources.router.journal import BatchJournal
from resources.router.ledger import ResultCache, Spend
from resources.router.limits import BudgetGuard
from resources.router.routes import Budget
from tests.openai_server import OpenAICompatServer
from tests.router_fixtures import SECRET, budget_catalog, catalog, make_items, routed, router_for, session_for
from tests.router_fixtures import family, local, warehouse  # noqa: F401 - pytest fixtures

ROOT = Path(__file__).resolve().parent.parent
ST = "support_triage"

# the step of the crash test: one batch of `n` summaries, run in its own process so it can be SIGKILLed
STEP = """
import sys
from orchestration_assets.family import Family
from resources.router import ModelRouter
from resources.router.routes import Budget
from resources.warehouse import Warehouse
from tests.router_fixtures import FAMILY_DIR, SECRET, FakeLocal, make_items, routed

config, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
router = ModelRouter(config_path=config, api_key=SECRET)
session = router.session(family="support_triage", routes=routed("summary"), budget=Budget(per_day_usd=1.0),
                         local=FakeLocal(), warehouse=Warehouse(url=url), run_id="crashed", partition="b1")
session.run(Family.load(FAMILY_DIR).tasks["summary"], make_items(n))
"""


def cache_rows(warehouse) -> int:
    with warehouse.engine.connect() as conn:
        return conn.execute(sa.text("SELECT COUNT(*) FROM llm_cache WHERE family = :f"), {"f": ST}).scalar_one()


def test_a_step_killed_mid_batch_keeps_what_it_paid_for_and_the_rerun_pays_only_the_rest(family, local, tmp_path,
                                                                                          warehouse):
    n, answered = 20, 8
    requests = itertools.count()
    # the first `answered` calls are answered; the rest hang until the step is killed
    with OpenAICompatServer(hang_s=30, fault_when=lambda rec: "hang" if next(requests) >= answered else None) as srv:
        config = catalog(srv.url, concurrency=4, endpoint_overrides={"timeout_s": 30})
        path = tmp_path / "models.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        step = subprocess.Popen([sys.executable, "-c", STEP, str(path), warehouse.resolved_url, str(n)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and step.poll() is None:
                if warehouse.has_table("llm_spend") and ledger_spend(warehouse, run_id="crashed").calls >= answered:
                    break
                time.sleep(0.05)
            alive = step.poll() is None
            step.kill()  # SIGKILL: no finally block, no atexit
            step.wait(10)
        finally:
            if step.poll() is None:
                step.kill()
        output = step.stdout.read().decode("utf-8", "replace")
        assert alive, f"the step ended before it was killed:\n{output}"
        assert srv.call_count == answered + 4  # the answered ones and one hanging call per slot

        paid = ledger_spend(warehouse, family=ST, run_id="crashed", partition="b1")
        assert paid.calls == answered and paid.cost_usd > 0, "the completed calls' spend was lost with the step"
        assert cache_rows(warehouse) == answered, "the completed calls' answers were lost with the step"

        srv.clear_faults()
        srv.reset()
        rerun = session_for(router_for(tmp_path, config, name="rerun.yaml"), local, routed("summary"),
                            Budget(per_day_usd=1.0), warehouse=warehouse, run_id="rerun", partition="b1")
        batch = rerun.run(family.tasks["summary"], make_items(n))
    assert srv.call_count == n - answered
    assert batch.stats.paths == {"cache": answered, "llm": n - answered}
    assert all(r.output["summary"].startswith(f"[{r.record_id}]") for r in batch.results)
    again = ledger_spend(warehouse, family=ST, run_id="rerun")
    assert again.calls == n - answered and again.cost_usd == pytest.approx(batch.stats.cost_usd)
    day = ledger_spend(warehouse, family=ST)  # the per-day budget sees both runs, nothing twice
    assert day.calls == n and day.cost_usd == pytest.approx(paid.cost_usd + again.cost_usd)
    assert cache_rows(warehouse) == n


def test_writing_after_every_call_keeps_parallel_budgets_exact(family, local, tmp_path, warehouse):
    """Ledger rows written mid-batch lower the session's hold by as much: nothing counted twice or not at all."""
    per_call = 0.001
    with OpenAICompatServer(completion_tokens_from_max_tokens=True, latency_s=0.02) as srv:
        router = router_for(tmp_path, budget_catalog(srv.url, per_call))
        sessions = [session_for(router, local, routed("summary", "sentiment"), Budget(per_run_usd=10.5 * per_call),
                                warehouse=warehouse, run_id="chunked-run") for _ in range(2)]
        for s in sessions:
            s.flush_every = 1
        tasks = [family.tasks["summary"], family.tasks["sentiment"]]
        batches_: dict[int, object] = {}

        def step(k: int) -> None:
            batches_[k] = sessions[k].run(tasks[k], make_items(20, f"C{k}"))

        workers = [threading.Thread(target=step, args=(k,)) for k in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    assert srv.call_count == sum(b.stats.paths.get("llm", 0) for b in batches_.values()) == 10
    spend = ledger_spend(warehouse, family=ST, run_id="chunked-run")
    assert spend.calls == 10 and spend.cost_usd == pytest.approx(10 * per_call) and spend.rows >= 10
    with warehouse.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM llm_spend_holds")).scalar_one() == 0


# ---- a rejected API key ------------------------------------------------------------------------


def spend_checks(family, router: ModelRouter, warehouse, runs: dict[str, str]) -> dict[str, dg.AssetCheckEvaluation]:
    """The spend check of each partition, in the run (id) whose enrichment spent: partition -> run id."""
    check = spend_check(family)
    job = dg.define_asset_job("spend_guard", partitions_def=batches(family), selection=dg.AssetSelection.checks(check))
    defs = dg.Definitions(asset_checks=[check], jobs=[job], resources={"router": router, "warehouse": warehouse})
    out = {}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(family.partitions_name, list(runs))
        for partition, run_id in runs.items():
            result = defs.resolve_job_def("spend_guard").execute_in_process(
                tags={"dagster/partition": partition}, instance=instance, raise_on_error=False, run_id=run_id)
            (out[partition],) = result.get_asset_check_evaluations()
    return out


def test_a_rejected_key_fails_the_spend_check_and_a_few_5xx_do_not(family, local, tmp_path, warehouse, caplog,
                                                                     monkeypatch):
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("ROUTER_TEST_KEY", SECRET)
    runs = {"wrong-key": str(uuid.uuid4()), "flaky": str(uuid.uuid4())}
    with OpenAICompatServer() as srv:
        path = tmp_path / "models.yaml"
        path.write_text(yaml.safe_dump(catalog(srv.url)), encoding="utf-8")
        router = ModelRouter(config_path=str(path), api_key=SECRET, api_key_env="ROUTER_TEST_KEY")

        def enrich(partition: str):
            srv.reset()
            return session_for(router, local, routed("summary"), warehouse=warehouse, run_id=runs[partition],
                               partition=partition).run(family.tasks["summary"], make_items(4, partition))

        srv.fail("auth", times=4)  # a wrong key on every call (the 401 body echoes it)
        wrong = enrich("wrong-key")
        assert srv.call_count == 4 and wrong.stats.paths == {"fallback:auth": 4}  # never retried
        # transient: one record gets a 500 on each of its 3 attempts and is answered locally
        srv.settings.fault_when = lambda rec: "server_error" if rec.record_id == "flaky-0000" else None
        flaky = enrich("flaky")
        assert flaky.stats.retries == 2 and flaky.stats.paths == {"llm": 3, "fallback:server_error": 1}
    assert wrong.stats.as_metadata()["llm.auth_failures"] == 4 and flaky.stats.auth_failures == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("'testllm'" in m and "test-small" in m and "env var ROUTER_TEST_KEY" in m for m in errors), errors

    # as a Dagster run configures it: the key from an EnvVar, whose name the router keeps
    checks = spend_checks(family, ModelRouter(config_path=str(path), api_key=dg.EnvVar("ROUTER_TEST_KEY")),
                          warehouse, runs)
    failed = checks["wrong-key"]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    for word in ("'testllm'", "test-small", "4 call", "HTTP 401", "env var ROUTER_TEST_KEY"):
        assert word in failed.description, (word, failed.description)
    assert failed.metadata["auth_failures"].value == 4
    assert checks["flaky"].passed and checks["flaky"].metadata["auth_failures"].value == 0, checks["flaky"].description
    shown = json.dumps([[c.description, {k: str(v.value) for k, v in c.metadata.items()}] for c in checks.values()])
    for text in (shown, caplog.text):
        assert SECRET not in text and SECRET[8:] not in text


def test_a_write_retried_after_a_commit_in_doubt_is_not_counted_twice(warehouse):
    guard = BudgetGuard(None, None)
    journal = BatchJournal(warehouse, ledger="llm_spend", cache=ResultCache(warehouse, "llm_cache", True), guard=guard,
                           family=ST, run_id="in-doubt", partition="b1", task="summary", every=10, interval_s=1.0)
    spend = Spend("testllm", "test-small", 1, 120, 30, 0.00024)
    journal.spend(spend)
    journal.flush()
    # the commit went through but the connection broke before the router heard: the same write comes again
    journal._spend, journal._written = [spend], 0
    journal.flush()
    journal.close()
    paid = ledger_spend(warehouse, family=ST, run_id="in-doubt")
    assert paid.calls == 1 and paid.cost_usd == pytest.approx(0.00024)
