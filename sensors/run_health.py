"""Run health: no run waits forever on a pool slot that a dead run still holds.

A run killed (SIGKILL, out of memory, a closed laptop) while its steps hold slots of a concurrency
pool (``model_calls``) keeps them: Dagster frees slots from the run itself, or from the daemon a
while after the run is *marked* finished (``free_slots_after_run_end_seconds``), and the local run
launcher cannot tell that a worker is gone, so the killed run stays STARTED and every later run
waits on the pool. :func:`recover_runs` closes these holes; ``run_health_sensor`` calls it on every
tick, and the quick start calls it before its runs (they execute in-process, with no daemon):

1. a STARTED run whose recorded process is gone from this host is marked failed, with that reason;
2. a finished run that still holds slots or queued claims has them freed;
3. a run whose step has waited on a pool longer than the bound is terminated (when its launcher
   can: a run in-process in another program cannot be interrupted from outside) and marked failed,
   naming the pool, the wait and the runs holding the slots.

The sensor alerts each run it fails through the notifier and the audit log under the alert id of
the run-failure alerts (``run_failure:<run id>``), so one incident is one alert whichever sensor
sees it first.

Process ids mean something only on the host (and in the container) that recorded them, so they are
trusted only when the instance keeps its runs in SQLite (one host, ``$DAGSTER_HOME``) and the run
executed in-process or through the default launcher. With shared storage (PostgreSQL) or container
launchers, dead workers are found by Dagster's run monitoring, with a launcher that checks worker
health (dagster-k8s, dagster-docker), and by ``max_runtime_seconds``.
"""

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import dagster as dg

from resources.audit import record_events
from resources.notifier import Notifier, alert_audit_event, run_failure_alert, scrub
from resources.outbox import DeliveryError
from resources.router.resource import ModelRouter
from resources.warehouse import Warehouse

POOL_WAIT_ENV = "POOL_WAIT_TIMEOUT_SECONDS"
DEFAULT_POOL_WAIT_SECONDS = 1800.0
_LOCAL_RUN_STORAGES = {"SqliteRunStorage", "InMemoryRunStorage"}
_WATCHED = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
_FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dataclasses.dataclass(frozen=True)
class Finding:
    """What :func:`recover_runs` did about one run."""

    run_id: str
    job_name: str
    reason: str
    failed: bool  # this call marked the run failed (the sensor alerts it)
    freed: int = 0  # slots and queued claims released
    steps: tuple[str, ...] = ()
    partition: str | None = None
    family: str | None = None

    def line(self) -> str:
        freed = f"; freed {self.freed} pool slot(s)/claim(s)" if self.freed else ""
        return f"run {self.run_id} ({self.job_name}): {self.reason}{freed}"


# ---- is the run's process still there? ---------------------------------------------------------
def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def process_alive(pid: int, since: float) -> bool:
    """Whether ``pid`` is a live process on this host that already existed at ``since`` (epoch s).

    Pids are reused: a process younger than the record is another program, and an exited process
    its parent has not reaped yet (a zombie) runs nothing.
    """
    if not Path("/proc/self/stat").exists():  # no procfs (macOS): a signal-0 probe
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        started = _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return False
    return fields[0] != "Z" and started <= since + 2.0  # btime has whole seconds


def recorded_worker(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """(pid, when) of the latest process that executed ``run_id``, as Dagster's engine events record it.

    The in-process and multiprocess executors ("Executing steps ... (pid: N)") and the run worker
    a code server starts ("Started process for run (pid: N)") all carry a ``pid`` metadata entry.
    """
    found = None
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        value = (getattr(data, "metadata", None) or {}).get("pid")
        text = getattr(value, "value", value)
        if text is not None and str(text).isdigit():
            found = (int(str(text)), entry.timestamp)
    return found


def pids_are_local(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Whether ``run``'s recorded pid is one of this host's: runs kept in SQLite, executed in-process or by
    the default launcher (a subprocess of a local code server; a container's pid means nothing here)."""
    return type(instance.run_storage).__name__ in _LOCAL_RUN_STORAGES and (
        run.remote_job_origin is None or type(instance.run_launcher).__name__ == "DefaultRunLauncher")


# ---- recovery ------------------------------------------------------------------------------------
def _steps_in_progress(instance: dg.DagsterInstance, run_id: str) -> tuple[str, ...]:
    return tuple(s.step_key for s in instance.get_run_step_stats(run_id)
                 if s.status is None or s.status.value == "IN_PROGRESS")


def _finding(run: dg.DagsterRun, reason: str, *, failed: bool, steps=(), freed: int = 0) -> Finding:
    return Finding(run_id=run.run_id, job_name=run.job_name, reason=reason, failed=failed, freed=freed,
                   steps=tuple(steps), partition=run.tags.get("dagster/partition"), family=run.tags.get("family"))


def _fail(instance: dg.DagsterInstance, run: dg.DagsterRun, reason: str) -> bool:
    current = instance.get_run_by_id(run.run_id)
    if current is None or current.status in _FINISHED:
        return False
    instance.report_run_failed(current, f"{reason} (marked failed by run_health_sensor)")
    return True


def _dead_workers(instance: dg.DagsterInstance) -> list[Finding]:
    found = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=_WATCHED)):
        run = record.dagster_run
        if not pids_are_local(instance, run):
            continue
        worker = recorded_worker(instance, run.run_id)
        if worker is None or process_alive(*worker):
            continue
        steps = _steps_in_progress(instance, run.run_id)
        reason = (f"the run's process (pid {worker[0]}) is gone: it was killed or crashed while the run was "
                  f"{run.status.value}" + (f", in step(s) {', '.join(steps)}" if steps else ""))
        if _fail(instance, run, reason):
            found.append(_finding(run, reason, failed=True, steps=steps))
    return found


def _holdings(instance: dg.DagsterInstance):
    """{run id: number of the pools' steps it holds a slot or a queued claim for}, and the pools' infos.

    A queued claim of a dead run matters too: a freed slot may be assigned to it, and it never takes it.
    """
    storage = instance.event_log_storage
    infos = storage.get_concurrency_infos(sorted(storage.get_concurrency_keys()))
    held: dict[str, set[tuple[str, str]]] = {}
    for pool, info in infos.items():
        for item in [*info.claimed_slots, *info.pending_steps]:
            held.setdefault(item.run_id, set()).add((pool, item.step_key))
    return {run_id: len(steps) for run_id, steps in held.items()}, infos


def _blocked(instance: dg.DagsterInstance, infos, bound: float, now: float, skip: set[str]) -> list[Finding]:
    found = []
    for pool, info in infos.items():
        holders = sorted({s.run_id for s in info.claimed_slots})
        for step in info.pending_steps:
            waited = now - step.enqueued_timestamp.timestamp()
            if step.assigned_timestamp is not None or waited < bound or step.run_id in skip:
                continue
            run = instance.get_run_by_id(step.run_id)
            if run is None or run.status in _FINISHED:
                continue
            reason = (f"step {step.step_key} waited {waited:.0f}s for a slot of pool '{pool}' (limit {info.limit}), "
                      f"more than the {bound:.0f}s allowed ({POOL_WAIT_ENV}); the slots are held by run(s) "
                      f"{', '.join(holders) or 'none'}")
            if run.remote_job_origin is not None:  # launched by a run launcher, which can stop it
                try:
                    instance.run_launcher.terminate(run.run_id)
                except Exception as exc:  # the run is marked failed all the same, as Dagster's max runtime does
                    reason += f"; terminating it failed ({type(exc).__name__})"
            else:
                reason += "; it runs in-process in another program, which must be stopped to end the wait"
            if _fail(instance, run, reason):
                skip.add(run.run_id)
                found.append(_finding(run, reason, failed=True, steps=[step.step_key]))
    return found


def recover_runs(instance: dg.DagsterInstance, *, max_pool_wait_seconds: float = DEFAULT_POOL_WAIT_SECONDS,
                 now: float | None = None) -> list[Finding]:
    """Fail runs whose process is gone or that waited on a pool beyond the bound; free finished runs' slots."""
    now = time.time() if now is None else now
    found = _dead_workers(instance)
    if not instance.event_log_storage.supports_global_concurrency_limits:
        return found
    held, infos = _holdings(instance)
    found += _blocked(instance, infos, max_pool_wait_seconds, now, {f.run_id for f in found})
    failed_now = {f.run_id: i for i, f in enumerate(found)}
    grace = instance.run_monitoring_settings.get("free_slots_after_run_end_seconds") or 0
    records = {r.dagster_run.run_id: r for r in instance.get_run_records(filters=dg.RunsFilter(run_ids=list(held)))} \
        if held else {}
    for run_id, count in held.items():
        record = records.get(run_id)
        if record is not None and record.dagster_run.status not in _FINISHED:
            continue
        ended = (record.end_time or record.update_timestamp.timestamp()) if record is not None else 0.0
        if run_id not in failed_now and now - ended < grace:
            continue  # Dagster's own grace for steps still winding down after their run ended
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        if run_id in failed_now:
            found[failed_now[run_id]] = dataclasses.replace(found[failed_now[run_id]], freed=count)
        else:
            status = record.dagster_run.status.value if record is not None else "deleted"
            run = record.dagster_run if record is not None else None
            found.append(Finding(run_id=run_id, job_name=run.job_name if run else "?", failed=False, freed=count,
                                 reason=f"the run is {status} but still held pool slots",
                                 partition=run.tags.get("dagster/partition") if run else None,
                                 family=run.tags.get("family") if run else None))
    return found


def pool_wait_bound() -> float:
    raw = os.getenv(POOL_WAIT_ENV, "").strip()
    if not raw:
        return DEFAULT_POOL_WAIT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ValueError(f"{POOL_WAIT_ENV}={raw!r}: expected a positive number of seconds")
    return value


def recover_at_start(instance: dg.DagsterInstance) -> list[Finding]:
    """For programs that run jobs in-process (the quick start): recover, and say what was done on stderr."""
    try:
        bound = pool_wait_bound()
    except ValueError as exc:
        print(f"{exc}; using {DEFAULT_POOL_WAIT_SECONDS:.0f}s", file=sys.stderr)
        bound = DEFAULT_POOL_WAIT_SECONDS
    try:
        found = recover_runs(instance, max_pool_wait_seconds=bound)
    except Exception as exc:  # best effort: the runs to come must not fail because a check of old ones did
        print(f"could not check for killed runs ({type(exc).__name__}: {exc}); run_health_sensor will",
              file=sys.stderr)
        return []
    for finding in found:
        print(f"recovered {finding.line()}", file=sys.stderr)
    return found


# ---- the sensor ----------------------------------------------------------------------------------
def alert_for(finding: Finding, secrets=()) -> dict:
    """The run-failure alert of a run this module failed (same id as the run-failure sensor's)."""
    steps = [{"step": s, "error": finding.reason} for s in finding.steps] or [{"step": "", "error": finding.reason}]
    alert = run_failure_alert(run_id=finding.run_id, job_name=finding.job_name, failed_steps=steps,
                              error=finding.reason, partition=finding.partition, family=finding.family)
    return scrub(alert, secrets)


def build_run_health_sensor(max_pool_wait_seconds: float | None = None) -> dg.SensorDefinition:
    """The sensor; the pool-wait bound is ``max_pool_wait_seconds``, else ``$POOL_WAIT_TIMEOUT_SECONDS``, else 30 min."""

    @dg.sensor(
        name="run_health_sensor",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Fails runs whose process is gone or that waited on a concurrency pool beyond the bound "
                    f"({POOL_WAIT_ENV}, default {DEFAULT_POOL_WAIT_SECONDS:.0f}s), alerting each, and frees the "
                    "pool slots finished runs still hold.",
    )
    def run_health_sensor(context: dg.SensorEvaluationContext, notifier: Notifier, warehouse: Warehouse,
                          router: ModelRouter):
        bound = pool_wait_bound() if max_pool_wait_seconds is None else max_pool_wait_seconds
        found = recover_runs(context.instance, max_pool_wait_seconds=bound)
        secrets = router.secrets()
        for finding in found:
            context.log.warning(scrub(finding.line(), secrets))
        # a failed run is found once: an alert the webhook refused is kept in the cursor and sent again
        alerts = json.loads(context.cursor or "[]") + [alert_for(f, secrets) for f in found if f.failed]
        unsent = []
        for alert in alerts:
            try:
                sent = notifier.send(alert)
            except DeliveryError as exc:
                context.log.warning(f"alert {alert['alert_id']} not delivered, retried next tick: {exc}")
                unsent.append(alert)
                continue
            record_events(warehouse, alert_audit_event(alert))
            context.log.info(f"alert {alert['alert_id']}: sent={sent}")
        context.update_cursor(json.dumps(unsent))
        return dg.SkipReason(f"{len(found)} run(s) recovered" if found else "every run is healthy")

    return run_health_sensor


run_health_sensor = build_run_health_sensor()
