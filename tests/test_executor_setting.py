"""``PLATFORM_EXECUTOR`` picks where the workflow and ingest jobs run their steps, checked when definitions load.

Unit level (no server): the default stays the preloaded multiprocess executor; ``celery`` makes the
Celery executor the jobs' default, its broker read from the environment at run time (the URL, with
its password, is in no job snapshot the UI shows); a run config written for one executor stays
valid under another; a bad value fails the load naming the variable, with passwords masked. The
run through real workers is ``tests/test_celery.py``.
"""

from __future__ import annotations

import pytest

from orchestration_assets.executors import BACKEND_ENV, BROKER_ENV, EXECUTOR_ENV
from orchestration_assets.jobs import PARALLEL_STEPS, family_jobs
from resources.configuration import ConfigError

FAMILY = "refund_requests"
SECRET = "s3cret-broker-pw"
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in (EXECUTOR_ENV, BROKER_ENV, BACKEND_ENV):
        monkeypatch.delenv(name, raising=False)


def _jobs(families) -> dict:
    """The family's jobs, resolved against its assets as the code location resolves them."""
    from orchestration_assets.loading import family_definitions

    defs = family_definitions([families[FAMILY]])
    return {j.name.split("__")[-1]: defs.resolve_job_def(j.name) for j in family_jobs(families[FAMILY])}


def _job_default(job) -> dict:
    """The run config a run of ``job`` gets when it asks for none (a sensor's, a schedule's, the UI's)."""
    partitioned = job.partitioned_config
    return dict(partitioned.get_run_config_for_partition_key("batch.csv")) if partitioned else {}


def _execution(job, run_config: dict | None = None) -> dict:
    """The executor config a run with ``run_config`` (default: none) resolves to, defaults and env applied."""
    import dagster as dg

    resolved = dg.validate_run_config(job, _job_default(job) if run_config is None else run_config)
    (config,) = resolved["execution"].values()  # keyed by the executor's name once resolved
    return config


def test_by_default_the_workflow_runs_a_process_per_step_from_a_preloaded_forkserver(families):
    jobs = _jobs(families)
    assert _execution(jobs["workflow"])["multiprocess"]["start_method"] == \
        PARALLEL_STEPS["execution"]["config"]["multiprocess"]["start_method"]
    assert list(_execution(jobs["ingest"])) == ["multiprocess"]
    for name in ("workflow", "ingest"):
        assert list(_execution(jobs[name], IN_PROCESS)) == ["in_process"]


def test_celery_becomes_the_default_with_the_broker_read_at_run_time(families, monkeypatch):
    import dagster as dg
    from dagster._serdes import serialize_value

    broker = f"redis://:{SECRET}@redis.internal:6379/0"
    monkeypatch.setenv(EXECUTOR_ENV, " Celery")  # as written in a .env file: case and spaces do not matter
    monkeypatch.setenv(BROKER_ENV, broker)
    jobs = _jobs(families)
    assert _job_default(jobs["workflow"])["execution"]["config"]["celery"]["broker"] == {"env": BROKER_ENV}
    for name in ("workflow", "ingest"):
        # Celery's default backend (rpc://), which workers started without CELERY_RESULT_BACKEND use too
        assert _execution(jobs[name])["celery"] | {"retries": None} == {"broker": broker, "backend": "rpc://",
                                                                         "retries": None}
        assert SECRET not in serialize_value(jobs[name].get_job_snapshot())
        # the sensors' and the quick start's in-process runs, and the local preloaded default, stay valid
        assert list(_execution(jobs[name], IN_PROCESS)) == ["in_process"]
        assert list(_execution(jobs[name], PARALLEL_STEPS)) == ["multiprocess"]
    monkeypatch.setenv(BACKEND_ENV, "redis://redis.internal:6379/1")
    assert _execution(_jobs(families)["workflow"])["celery"]["backend"] == "redis://redis.internal:6379/1"
    # the small jobs never leave their one process
    assert {n: j.executor_def for n, j in jobs.items() if n in ("kpis", "dispatch")} == {
        "kpis": dg.in_process_executor, "dispatch": dg.in_process_executor}


@pytest.mark.parametrize("settings, expected", [
    ({EXECUTOR_ENV: "kubernetes"},
     ["environment: PLATFORM_EXECUTOR: unknown executor 'kubernetes'; expected one of multiprocess, in_process, "
      "celery"]),
    ({EXECUTOR_ENV: "celery"},
     ["environment: CELERY_BROKER_URL: not set; PLATFORM_EXECUTOR=celery needs the URL of the Celery broker the "
      "workers listen on, e.g. redis://:password@redis-host:6379/0"]),
    ({EXECUTOR_ENV: "celery", BROKER_ENV: f"reddis://:{SECRET}@redis.internal:6379/0",
      BACKEND_ENV: f"mongo://ops:{SECRET}@db.internal/results"},
     ["environment: CELERY_BROKER_URL: reddis://:***@redis.internal:6379/0: unknown broker transport 'reddis'; "
      "expected e.g. redis, rediss or amqp",
      "environment: CELERY_RESULT_BACKEND: mongo://ops:***@db.internal/results: unknown result backend 'mongo'; "
      "expected e.g. redis://host:6379/1 or rpc://"]),
    ({EXECUTOR_ENV: "celery", BROKER_ENV: "redis.internal:6379"},
     ["environment: CELERY_BROKER_URL: redis.internal:6379: not a broker URL; expected e.g. redis://host:6379/0 or "
      "amqp://user:password@host:5672//"]),
])
def test_a_bad_executor_setting_fails_the_load_naming_the_variable(families, monkeypatch, settings, expected):
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        family_jobs(families[FAMILY])
    assert str(err.value).splitlines() == expected


def test_the_quickstart_prints_a_bad_executor_setting_and_runs_nothing(tmp_path, monkeypatch, capsys):
    from orchestration_assets import quickstart

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(EXECUTOR_ENV, "celery")
    monkeypatch.setenv(BROKER_ENV, f"kafka://:{SECRET}@broker.internal:9092")
    assert quickstart.main(["--family", FAMILY]) == 2
    err = capsys.readouterr().err
    assert err == ("the configuration is invalid:\nenvironment: CELERY_BROKER_URL: kafka://:***@broker.internal:9092: "
                   "the 'kafka' transport cannot be loaded; is its client library installed?\n")
