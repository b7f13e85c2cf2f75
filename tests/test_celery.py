"""A family's workflow through real Celery workers (``PLATFORM_EXECUTOR=celery``) equals the in-process run.

The deployment of README "Production" on one machine: a real Redis broker
(:mod:`tests.redis_server`), the Dagster instance (runs, events) on a real PostgreSQL server
(:mod:`tests.postgres_server`), a ``dagster-celery`` worker of two pool processes started with the
README's command (:mod:`tests.celery_workers`), and the code location loaded from its module as a
worker machine loads it. One ``refund_requests`` batch runs through the worker while the same batch
runs in-process in the test; every step of the Celery run must have executed in a worker process,
and the warehouse tables must hold what the in-process run wrote (run ids and clock readings aside).
"""

from __future__ import annotations

import os
import threading

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from tests.celery_workers import CeleryWorkers
from tests.postgres_server import postgres_server  # noqa: F401 - the session fixture
from tests.redis_server import redis_url  # noqa: F401 - the session fixture
from tests.redis_server import unavailable
from tests.workflow import copy_batch, inbox_of, run_workflow, sample_files, temp_resources

pytestmark = [pytest.mark.celery, pytest.mark.filterwarnings("ignore")]

FAMILY = "refund_requests"  # no classifier to train: the whole graph, nothing before it
ROWS = 40  # its sample's first rows hold a malformed one, so quarantine is exercised too
PG_URL_ENV = "DAGSTER_PG_URL"
RUN_TIMEOUT = 240  # a lost task would block the run forever: fail with the workers' logs instead
# per run or per clock, never per record: left out of the comparison
# (a dispatch's payload holds its approval time, so its hash is a clock reading too)
VOLATILE = ("run_id", "audit_id", "claim_token", "payload", "payload_hash")
VOLATILE_SUFFIXES = ("_at", "_hours")
TIMINGS = "latency"  # latency_ms, latency_p50_ms_<task>, ...

CONTENT_TABLES = ("raw_records", "quarantined_records", "enriched_records", "routing_decisions", "review_queue",
                  "dispatches")


@pytest.fixture
def deployment(tmp_path, redis_url, postgres_server, model_dir, monkeypatch):  # noqa: F811
    """The settings of a Celery deployment, in this process's environment (the workers inherit it)."""
    try:
        import dagster_celery  # noqa: F401
    except ImportError:
        unavailable("dagster-celery is not installed (the project's test extra: make setup)")
    home, root = tmp_path / "dagster_home", tmp_path / "celery"
    home.mkdir()
    root.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump({
        "telemetry": {"enabled": False},
        "storage": {"postgres": {"postgres_url": {"env": PG_URL_ENV}}},
    }))
    settings = {
        "DAGSTER_HOME": str(home),
        # dagster-postgres needs the psycopg2 driver (README "Production")
        PG_URL_ENV: postgres_server.create_database("dagster").replace("+psycopg://", "+psycopg2://"),
        "PLATFORM_EXECUTOR": "celery", "CELERY_BROKER_URL": redis_url,
        # the layout of tests.workflow.temp_resources, as the in-process run has it
        "DATA_DIR": str(root), "WAREHOUSE_URL": f"sqlite:///{root / 'warehouse.db'}", "INBOX_DIR": str(root / "inbox"),
        "OUTBOX_DIR": str(root / "outbox"), "ALERTS_DIR": str(root / "alerts"),
        "MODEL_DIR": str(model_dir), "GX_ANALYTICS_ENABLED": "False",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)
    return tmp_path


def test_a_batch_run_on_celery_workers_writes_what_an_in_process_run_writes(deployment, model_dir):
    import dagster as dg
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from orchestration_assets.loading import family_definitions, find_family
    from resources.sources import Inbox

    family = find_family(FAMILY)
    sample = sample_files(family)[0]
    with dg.DagsterInstance.get() as instance:  # creates the PostgreSQL schema before any worker opens it
        with CeleryWorkers(deployment / "workers", count=1, concurrency=2) as workers:
            copy_batch(sample, inbox_of(family, {"inbox": Inbox(root=os.environ["INBOX_DIR"])}), n=ROWS)
            instance.add_dynamic_partitions(family.partitions_name, [sample.name])
            # the job as a worker reconstructs it: from the code location module, with this environment
            job = ReconstructableRepository.for_module(
                "orchestration_assets.definitions", "defs", os.getcwd()).get_reconstructable_job(
                family.job_name("workflow"))
            # the reference run, in this process, while the workers start. Not while the Celery run goes on in
            # a thread of this process: two runs setting up Dagster's loggers at once can deadlock on the
            # logging module's lock against a handler's (seen once: dictConfig in one, a log call in the other)
            reference = temp_resources(deployment / "in_process", model_dir)
            copy_batch(sample, inbox_of(family, reference), n=ROWS)
            with dg.instance_for_test() as local:
                expected = run_workflow(family_definitions([family], reference), family, local, sample.name)
            assert expected.success
            result = CeleryRun(dg, job, instance, sample.name, workers).result()
            worker_pids = workers.pids()

        assert result.success, _failures(result) + workers.logs()
        steps = _step_events(result)
        assert steps, "the run executed no step"
        on_workers = {key: pid for key, (pid, _host) in steps.items() if pid in worker_pids}
        assert on_workers.keys() == steps.keys(), (
            f"steps not run in a worker process: {sorted(set(steps) - set(on_workers))}; "
            f"this process is {os.getpid()}, the workers' are {sorted(worker_pids)}")
        hosts = {host for _pid, host in steps.values()}
        assert hosts and all(h.split("@")[0] in workers.names for h in hosts), hosts

    celery_wh = (sa.create_engine(os.environ["WAREHOUSE_URL"]), str(deployment / "celery"))
    in_process_wh = (reference["warehouse"].engine, str(deployment / "in_process"))
    for asset in CONTENT_TABLES:
        table = f"{FAMILY}__{asset}"
        got, want = _comparable(*celery_wh, table), _comparable(*in_process_wh, table)
        assert not want.empty, f"the in-process run wrote no {table}: the comparison would prove nothing"
        pd.testing.assert_frame_equal(got, want, check_dtype=False, obj=table)
    for table, where in (("audit_log", f"family = '{FAMILY}'"), ("dispatch_ledger", f"family = '{FAMILY}'"),
                         (f"{FAMILY}__kpi_daily", "1 = 1")):
        pd.testing.assert_frame_equal(_comparable(*celery_wh, table, where), _comparable(*in_process_wh, table, where),
                                      check_dtype=False, obj=table)


class CeleryRun:
    """Once the workers are ready, the run, launched from a thread of this process with the job's default
    (Celery) executor; :meth:`result` waits for it at most RUN_TIMEOUT."""

    def __init__(self, dg, job, instance, partition: str, workers: CeleryWorkers):
        self.workers = workers
        self.out: dict = {}

        def run() -> None:
            try:
                workers.wait_ready()
                self.out["result"] = dg.execute_job(job, instance, raise_on_error=False,
                                                    tags={"dagster/partition": partition, "family": FAMILY})
            except BaseException as exc:  # re-raised in the test's thread
                self.out["error"] = exc

        # a daemon: a run stuck on a lost task must not keep the test process alive
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def result(self):
        self.thread.join(RUN_TIMEOUT)
        if self.thread.is_alive():
            pytest.fail(f"the Celery run did not finish in {RUN_TIMEOUT} s; the workers' logs:\n{self.workers.logs()}")
        if "error" in self.out:
            raise self.out["error"]
        return self.out["result"]


def _step_events(result) -> dict[str, tuple[int, str]]:
    """step key -> (pid of its STEP_START, the Celery worker that took it)."""
    pids, hosts = {}, {}
    for event in result.all_events:
        if event.event_type_value == "STEP_START":
            pids[event.step_key] = event.pid
        elif event.event_type_value == "ENGINE_EVENT" and event.step_key:
            worker = event.event_specific_data.metadata.get("Celery worker")
            if worker is not None:
                hosts[event.step_key] = worker.value
    assert pids.keys() == hosts.keys(), f"steps without a Celery worker: {sorted(set(pids) - set(hosts))}"
    return {key: (pid, hosts[key]) for key, pid in pids.items()}


def _failures(result) -> str:
    return "\n".join(e.message or "" for e in result.all_events if e.is_failure) + "\n"


def _comparable(engine: sa.Engine, root: str, table: str, where: str = "1 = 1") -> pd.DataFrame:
    """The table's rows without run ids and clock readings, in a fixed order."""
    frame = pd.read_sql(sa.text(f'SELECT * FROM "{table}" WHERE {where}'), engine)
    keep = [c for c in frame.columns if c not in VOLATILE and not c.endswith(VOLATILE_SUFFIXES) and TIMINGS not in c]
    frame = frame[keep].copy()
    # each run has its own folders (same layout): a path names the file under its run's root
    for column in frame.columns:
        frame[column] = frame[column].map(lambda v: v.replace(root, "<root>") if isinstance(v, str) else v)
    return frame.sort_values(keep, ignore_index=True, key=lambda s: s.astype(str))
