"""Family workflow runs in processes of their own, so the chaos test can SIGKILL one at any point.

    DAGSTER_HOME=... python -m tests.e2e.chaos_run ROOT          # a warm parent; one run per command

ROOT holds ``defs/<family>/`` (the family folder), ``models.yaml`` (the model catalog) and ``run/``
(the warehouse, inbox, outbox and alerts of ``tests.workflow.temp_resources``). The parent imports
everything once (Dagster, the platform, Great Expectations), then for each ``run BATCH`` line on
stdin forks a child and answers ``PID <pid>``; ``wait <pid>`` answers ``EXIT <pid> <status>``
once that child has ended (killed or not). A fork costs nothing, so each run pays only for its
steps, not for the ~15 s of imports a fresh interpreter needs.

A child does what the quick start does: it first recovers what killed runs left behind
(``sensors.run_health.recover_at_start``), then runs the family's workflow job for the batch
in-process against the instance in ``$DAGSTER_HOME``, logging to ``ROOT/logs/run-<n>.log``.
"""

import faulthandler
import os
import sys
from pathlib import Path

import dagster as dg

from orchestration_assets.family import Family
from orchestration_assets.loading import family_definitions
from orchestration_assets.quickstart import IN_PROCESS, QUIET
from resources.outbox import Outbox
from resources.router.resource import ModelRouter
from sensors.run_health import recover_at_start
from tests.workflow import temp_resources

MODEL = "chaos"  # the catalog's one remote model
API_KEY = "sk-chaos-test-0c9b2f"
WEBHOOK_ENV = "CHAOS_WEBHOOK_URL"
# a dispatcher killed mid-delivery leaves claims; the next run takes them over once this lease expired
LEASE_SECONDS = 1.0
HANG_DUMP_SECONDS = 90  # the test gives up on a run after 120 s


def resources_for(root: Path) -> dict:
    router = ModelRouter(config_path=str(root / "models.yaml"), api_key=API_KEY)
    outbox = Outbox(folder=str(root / "run" / "outbox"), lease_seconds=LEASE_SECONDS)
    return temp_resources(root / "run", root / "models", router=router, outbox=outbox)


def family_at(root: Path) -> Family:
    (folder,) = (root / "defs").iterdir()
    return Family.load(folder, known_models={MODEL})


def run_once(root: Path, batch: str) -> bool:
    family = family_at(root)
    instance = dg.DagsterInstance.get()
    recover_at_start(instance)
    defs = family_definitions([family], resources_for(root))
    if batch not in instance.get_dynamic_partitions(family.partitions_name):
        instance.add_dynamic_partitions(family.partitions_name, [batch])
    result = defs.resolve_job_def(family.job_name("workflow")).execute_in_process(
        partition_key=batch, instance=instance, run_config={**QUIET, **IN_PROCESS}, raise_on_error=False,
        tags={"family": family.name})
    print(f"RESULT {result.success} {result.run_id}", flush=True)
    return result.success


def _child(root: Path, batch: str, n: int) -> None:
    log = root / "logs" / f"run-{n}.log"
    log.parent.mkdir(exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    faulthandler.dump_traceback_later(HANG_DUMP_SECONDS)  # a run that hangs says where, in its log
    code = 1
    try:
        code = 0 if run_once(root, batch) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(root: Path) -> int:
    import great_expectations  # noqa: F401  (the data checks import it: once here, not in every child)

    print("READY", flush=True)
    n = 0
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "run":
            n += 1
            pid = os.fork()
            if pid == 0:
                _child(root, arg, n)
            print(f"PID {pid}", flush=True)
        elif command == "wait":
            _, status = os.waitpid(int(arg), 0)
            print(f"EXIT {arg} {os.waitstatus_to_exitcode(status)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(serve(Path(sys.argv[1])))
