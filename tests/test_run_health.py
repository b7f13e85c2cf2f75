"""Run health: a killed run's pool slots are freed and it is failed with the reason; a run blocked on a pool
beyond the bound is failed and alerted; a live run is left alone.

The runs are real runs of a one-asset job in a pool, in a test instance with a pool limit of 1, brought into the
state a SIGKILL leaves (STARTED, a recorded worker pid that no longer exists, a claimed slot); the pool is then
used by a real in-process run, which would wait forever on the dead run's slot without the recovery.
"""

import json
import os
import subprocess
import sys
import time

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, EngineEventData

from resources.audit import read_audit
from resources.notifier import Notifier
from resources.router.resource import ModelRouter
from resources.warehouse import Warehouse
from sensors.run_health import build_run_health_sensor, process_alive, recover_runs

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(120)]

POOL = "model_calls"
STEP = "answers"


@dg.asset(pool=POOL)
def answers() -> int:
    return 1


JOB = dg.define_asset_job("pooled", [answers])
DEFS = dg.Definitions(assets=[answers], jobs=[JOB])


@pytest.fixture
def instance():
    with dg.instance_for_test(overrides={"concurrency": {"pools": {"granularity": "op", "default_limit": 1}}}) as inst:
        inst.event_log_storage.initialize_concurrency_limit_to_default(POOL)  # as a run's first claim does
        yield inst


@pytest.fixture
def sensor_resources(tmp_path):
    return {"notifier": Notifier(folder=str(tmp_path / "alerts")),
            "warehouse": Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}"), "router": ModelRouter()}


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def started_run(instance, pid: int | None, *, claim: bool = True) -> dg.DagsterRun:
    """A run as its worker leaves it: STARTED, its process recorded, and (``claim``) a slot of the pool taken."""
    run = instance.create_run_for_job(DEFS.resolve_job_def("pooled"), tags={"family": "fam", "dagster/partition": "b.csv"})
    instance.report_dagster_event(DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=run.job_name), run.run_id)
    if pid is not None:
        instance.report_engine_event(f"Executing steps in process (pid: {pid})", run, EngineEventData.in_process(pid))
    status = instance.event_log_storage.claim_concurrency_slot(POOL, run.run_id, STEP, 0)
    assert status.is_claimed == claim
    if claim:
        instance.report_dagster_event(DagsterEvent(dg.DagsterEventType.STEP_START.value, job_name=run.job_name,
                                                   step_key=STEP), run.run_id)
    return instance.get_run_by_id(run.run_id)


def claimed(instance) -> list[str]:
    return [s.run_id for s in instance.event_log_storage.get_concurrency_info(POOL).claimed_slots]


def evaluate(sensor, instance, resources):
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        return sensor(context)


def test_a_killed_run_is_failed_with_the_reason_its_slot_freed_and_the_next_run_does_not_wait(instance,
                                                                                           sensor_resources):
    killed = started_run(instance, dead_pid())
    assert claimed(instance) == [killed.run_id]  # what a SIGKILL leaves: nobody will ever free it

    evaluate(build_run_health_sensor(), instance, sensor_resources)

    run = instance.get_run_by_id(killed.run_id)
    assert run.status == dg.DagsterRunStatus.FAILURE
    (failure,) = instance.all_logs(killed.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert "is gone: it was killed or crashed" in failure.message and STEP in failure.message
    assert claimed(instance) == []
    alert = json.loads(sensor_resources["notifier"].path_for(f"run_failure:{killed.run_id}").read_text())
    assert "killed or crashed" in alert["error"] and alert["family"] == "fam" and alert["failed_step"] == STEP
    result = DEFS.resolve_job_def("pooled").execute_in_process(instance=instance)  # would wait forever before
    assert result.success and claimed(instance) == []


def test_a_run_marked_failed_that_still_holds_slots_has_them_freed(instance):
    run = started_run(instance, None)
    instance.report_run_failed(run, "the worker was lost")
    assert claimed(instance) == [run.run_id]  # marking a dead run failed does not free its slots

    found = recover_runs(instance)

    assert claimed(instance) == [] and instance.event_log_storage.get_concurrency_info(POOL).pending_steps == []
    assert [(f.run_id, f.failed, f.freed) for f in found] == [(run.run_id, False, 1)]


def test_a_reused_pid_is_not_the_run_s_process():
    assert process_alive(os.getpid(), since=time.time())
    assert not process_alive(os.getpid(), since=0.0)  # this process started after the record: another program
    assert not process_alive(dead_pid(), since=time.time())


def test_a_run_blocked_on_the_pool_beyond_the_bound_is_failed_with_the_reason_and_alerted(instance, sensor_resources):
    holder = started_run(instance, os.getpid())
    blocked = started_run(instance, os.getpid(), claim=False)
    assert recover_runs(instance, max_pool_wait_seconds=600) == []  # live runs, and a wait within the bound

    evaluate(build_run_health_sensor(max_pool_wait_seconds=0), instance, sensor_resources)

    run = instance.get_run_by_id(blocked.run_id)
    assert run.status == dg.DagsterRunStatus.FAILURE
    (failure,) = instance.all_logs(blocked.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert f"for a slot of pool '{POOL}' (limit 1)" in failure.message and holder.run_id in failure.message
    alert = json.loads(sensor_resources["notifier"].path_for(f"run_failure:{blocked.run_id}").read_text())
    assert f"pool '{POOL}'" in alert["error"] and alert["failed_step"] == STEP
    audit = read_audit(sensor_resources["warehouse"])
    assert (audit["natural_key"] == f"alert:run_failure:{blocked.run_id}").sum() == 1
    # the live holder keeps its slot, and the blocked run's queued claim no longer stands in line
    assert instance.get_run_by_id(holder.run_id).status == dg.DagsterRunStatus.STARTED
    assert claimed(instance) == [holder.run_id]
    assert [p.run_id for p in instance.event_log_storage.get_concurrency_info(POOL).pending_steps] == [holder.run_id]


def test_the_instance_the_quick_start_writes_watches_runs_and_frees_finished_runs_slots(tmp_path):
    from orchestration_assets.quickstart import DAGSTER_YAML

    (tmp_path / "dagster.yaml").write_text(DAGSTER_YAML)
    with dg.DagsterInstance.from_config(str(tmp_path)) as inst:
        assert inst.run_monitoring_enabled
        assert inst.run_monitoring_max_runtime_seconds > 0 and inst.run_monitoring_start_timeout_seconds > 0
        assert inst.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
        assert inst.run_monitoring_max_resume_run_attempts == 0  # the local launcher cannot resume a run
        assert inst.event_log_storage.get_pool_config().default_pool_limit == 4


def test_an_alert_the_webhook_refused_is_sent_again_on_the_next_tick(instance, sensor_resources):
    from tests.governance_fixtures import WebhookServer

    killed = started_run(instance, dead_pid())
    sensor = build_run_health_sensor()
    with WebhookServer(fail_with=400) as hook:
        resources = {**sensor_resources, "notifier": Notifier(folder=sensor_resources["notifier"].folder,
                                                              webhook_url=hook.url)}
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            sensor(context)  # the run is failed now, and found no more: only the cursor remembers its alert
            cursor = context.cursor
        assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE and hook.posts == []
        hook.fail_with = None
        with dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor) as context:
            sensor(context)
        assert [p["key"] for p in hook.posts] == [f"run_failure:{killed.run_id}"]
        assert json.loads(context.cursor) == []
