"""A dropped file starts its run quickly: taken on first sight when already complete, small ones in one process.

The inbox sensor runs with ``dg.build_sensor_context`` on a fake clock (``tests/test_inbox_drop.py``'s
``Ticks``); here each file's mtime is set relative to that clock, as a writer on the same machine
would leave it. The run requests are checked against the real code location's workflow job: the
config the daemon would launch with (``with_resolved_tags_and_config``) is validated by Dagster.
"""

import os
from pathlib import Path

import dagster as dg
import pytest

from orchestration_assets.definitions import build_definitions
from resources.sources import SHA256_TAG, Inbox, sha256_of
from sensors.inbox import in_process_config
from tests.test_inbox_drop import FAMILY, SETTLE, Ticks, batch_text, skip

pytestmark = pytest.mark.filterwarnings("ignore")

TICK = SETTLE + 5  # seconds between two ticks (Ticks' default step)


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return build_definitions()


@pytest.fixture(scope="module")
def instance():
    """One instance for the module (each test's files have names of their own): a new one costs seconds."""
    with dg.instance_for_test() as inst:
        yield inst


class ClockedTicks(Ticks):
    """Ticks whose files carry mtimes on the fake clock, and whose context holds the code location."""

    def __init__(self, family, instance, root: Path, defs: dg.Definitions | None = None):
        super().__init__(family, instance, root)
        self.defs = defs

    def write(self, name: str, text: str, *, age: float, append: bool = False) -> Path:
        """Write ``name`` so that at the NEXT tick its last write is ``age`` seconds old."""
        path = self.folder / name
        with path.open("a" if append else "w", encoding="utf-8") as f:
            f.write(text)
        self.stamp(path, age)
        return path

    def stamp(self, path: Path, age: float) -> None:
        mtime_ns = int((self.now + TICK - age) * 1e9)
        os.utime(path, ns=(mtime_ns, mtime_ns))

    def __call__(self, after: float = TICK) -> dg.SensorResult:
        self.now += after
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor, resources=self.resources,
                                          definitions=self.defs)
        result = self.sensor(context)
        self.cursor = result.cursor
        return result


@pytest.fixture
def family(families):
    return families[FAMILY]


def test_a_file_renamed_in_complete_is_taken_on_the_first_tick_and_a_fresh_one_is_not(family, instance, tmp_path):
    ticks = ClockedTicks(family, instance, tmp_path)
    text = batch_text(family, 8, tmp_path)
    old = ticks.write("written-elsewhere.csv", text, age=60)  # copied elsewhere a minute ago, then renamed in
    ticks.write("just-written.csv", text, age=SETTLE / 2)  # its writer was at it a moment ago

    first = ticks()
    assert [r.partition_key for r in first.run_requests] == ["written-elsewhere.csv"]
    assert first.run_requests[0].tags[SHA256_TAG] == sha256_of(old)
    assert list(first.dynamic_partitions_requests[0].partition_keys) == ["written-elsewhere.csv"]
    ticks.register(first)

    second = ticks()  # unchanged since, and now settle_seconds old: taken, once
    assert [r.partition_key for r in second.run_requests] == ["just-written.csv"]
    ticks.register(second)
    assert "no new batch files" in skip(ticks())


def test_a_file_still_growing_is_not_taken_while_its_writer_moves_its_mtime(family, instance, tmp_path):
    ticks = ClockedTicks(family, instance, tmp_path)
    full = batch_text(family, 40, tmp_path)
    chunks = [full[i:i + len(full) // 4] for i in range(0, len(full), len(full) // 4)]
    for i, chunk in enumerate(chunks):  # a slow `cp`: a chunk between ticks, the last write 1 s before each tick
        path = ticks.write("export.csv", chunk, age=1.0, append=i > 0)
        assert "export.csv" in skip(ticks())

    (run,) = ticks().run_requests  # no write since: complete
    assert path.read_text(encoding="utf-8") == full and run.tags[SHA256_TAG] == sha256_of(path)


def test_an_mtime_ahead_of_the_clock_falls_back_to_two_ticks(family, instance, tmp_path):
    ticks = ClockedTicks(family, instance, tmp_path)
    ticks.write("skewed.csv", batch_text(family, 5, tmp_path), age=-3600)  # a producer's clock an hour ahead
    assert "skewed.csv" in skip(ticks())
    assert "skewed.csv" in skip(ticks(after=1.0))  # unchanged, but not for settle_seconds yet
    (run,) = ticks().run_requests
    assert run.partition_key == "skewed.csv"


def test_a_small_batch_runs_in_process_and_a_large_one_with_the_jobs_parallel_executor(family, instance, tmp_path,
                                                                                          defs):
    ticks = ClockedTicks(family, instance, tmp_path, defs)
    small = ticks.write("small.csv", batch_text(family, 5, tmp_path), age=60)
    large = ticks.write("large.csv", batch_text(family, 40, tmp_path), age=60)
    limit = (small.stat().st_size + large.stat().st_size) // 2
    ticks.resources["inbox"] = Inbox(root=ticks.resources["inbox"].root, settle_seconds=SETTLE,
                                     in_process_max_bytes=limit)

    result = ticks()
    job = defs.resolve_job_def(family.job_name("workflow"))
    launched = {}
    for request in result.run_requests:  # what the daemon launches: the request's config, else the job's
        resolved = request.with_resolved_tags_and_config(job, result.dynamic_partitions_requests, instance)
        assert dg.validate_run_config(job, resolved.run_config)
        launched[request.partition_key] = resolved.run_config["execution"]["config"]
    assert launched["small.csv"] == {"in_process": {}}
    assert list(launched["large.csv"]) == ["multiprocess"]  # the job's own default, untouched


def test_a_job_whose_executor_has_no_in_process_mode_keeps_it():
    @dg.op
    def step():
        return 1

    job_name = "probe_job"
    probe = dg.Definitions(jobs=[dg.GraphDefinition(name=job_name, node_defs=[step]).to_job(
        executor_def=dg.multiprocess_executor)])
    assert in_process_config(dg.build_sensor_context(definitions=probe), job_name, "b.csv") is None
    assert in_process_config(dg.build_sensor_context(), job_name, "b.csv") is None  # no code location in the context


def test_the_quickstart_instance_ticks_sensors_in_threads_and_dequeues_runs_every_second(tmp_path):
    from orchestration_assets.quickstart import DAGSTER_YAML

    (tmp_path / "dagster.yaml").write_text(DAGSTER_YAML)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:  # Dagster validates every key
        coordinator = instance.run_coordinator
        assert type(coordinator).__name__ == "QueuedRunCoordinator"
        assert coordinator.dequeue_interval_seconds == 1  # Dagster's default is 5
        assert instance.get_sensor_settings()["use_threads"] is True
