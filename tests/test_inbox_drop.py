"""Dropping files into an inbox: only complete files are taken, a changed file is run again, junk is named.

The family's inbox sensor is evaluated with ``dg.build_sensor_context`` on a temp instance, tick after
tick with the returned cursor, on a clock the test moves (no sleeping). The batch asset's refusal of a
file that changed after the sensor saw it runs for real, on the asset alone.
"""

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from orchestration_assets.ingestion import batch_asset
from resources.sources import SHA256_TAG, Inbox, sha256_of
from sensors.inbox import inbox_sensor
from tests.governance_fixtures import failure_message, metadata_of
from tests.workflow import copy_batch, inbox_of, sample_files, temp_resources

pytestmark = pytest.mark.filterwarnings("ignore")

FAMILY = "it_service_desk"
SETTLE = 5.0


class Ticks:
    """The family's inbox sensor on an inbox of its own, ticking on a fake clock.

    The clock starts decades before the files' real mtimes, so to the sensor every file here was
    just written and is taken by the two-tick rule; tests/test_inbox_latency.py sets mtimes on the
    clock to test the first-tick rule for files already complete.
    """

    def __init__(self, family, instance, root: Path, cursor: str | None = None):
        self.family, self.instance, self.now, self.cursor = family, instance, 1_000_000.0, cursor
        self.sensor = inbox_sensor(family, clock=lambda: self.now)
        self.resources = {"inbox": Inbox(root=str(root / "inbox"), settle_seconds=SETTLE)}
        self.folder = inbox_of(family, self.resources)

    def __call__(self, after: float = SETTLE + 5) -> dg.SensorResult:
        self.now += after
        result = self.sensor(dg.build_sensor_context(instance=self.instance, cursor=self.cursor, resources=self.resources))
        self.cursor = result.cursor
        return result

    def register(self, result: dg.SensorResult) -> None:
        """What the daemon does with the result's partition requests."""
        for req in result.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))


def skip(result: dg.SensorResult) -> str:
    assert not result.run_requests, [r.partition_key for r in result.run_requests]
    return result.skip_reason.skip_message


@pytest.fixture
def family(families):
    return families[FAMILY]


@pytest.fixture
def ticks(family, instance, tmp_path) -> Ticks:
    return Ticks(family, instance, tmp_path)


def batch_text(family, n: int, tmp_path: Path) -> str:
    return copy_batch(sample_files(family)[0], tmp_path / "src", n=n, name="b.csv").read_text(encoding="utf-8")


def test_a_file_still_being_copied_is_taken_only_once_complete_and_settled(ticks, family, tmp_path):
    full = batch_text(family, 40, tmp_path)
    half = len(full) // 2
    dropped = ticks.folder / "export.csv"
    dropped.write_text(full[:half], encoding="utf-8")  # a slow `cp`, halfway

    assert "export.csv" in skip(ticks())  # first sight: not taken, and the reason says which file waits
    with dropped.open("a", encoding="utf-8") as f:
        f.write(full[half:])
    assert "export.csv" in skip(ticks())  # it grew since the last tick
    assert "export.csv" in skip(ticks(after=1.0))  # unchanged, but for less than the settle time

    taken = ticks()
    (run,) = taken.run_requests
    assert run.partition_key == "export.csv" and run.run_key == f"inbox:{FAMILY}:export.csv"
    assert run.tags[SHA256_TAG] == sha256_of(dropped) and run.tags["inbox_file"] == "export.csv"
    (add,) = taken.dynamic_partitions_requests
    assert list(add.partition_keys) == ["export.csv"]
    ticks.register(taken)
    assert "no new batch files" in skip(ticks())  # and once only


def test_temporary_names_are_ignored_until_the_file_is_renamed(ticks, family, tmp_path):
    text = batch_text(family, 5, tmp_path)
    for name in (".export.csv", "export.csv.part", "export.csv.tmp"):
        (ticks.folder / name).write_text(text, encoding="utf-8")
    for _ in range(3):
        message = skip(ticks())
        assert "3 file(s) under a temporary name" in message and "unsupported" not in message

    (ticks.folder / "export.csv.part").rename(ticks.folder / "export.csv")
    assert "export.csv" in skip(ticks())  # renamed just now: settles like any new file
    (run,) = ticks().run_requests
    assert run.partition_key == "export.csv"


def test_a_file_changed_after_ingestion_is_run_again_as_a_new_version(ticks, family, tmp_path):
    dropped = ticks.folder / "export.csv"
    dropped.write_text(batch_text(family, 5, tmp_path), encoding="utf-8")
    ticks()
    first = ticks()
    ticks.register(first)
    (v1,) = first.run_requests

    st = dropped.stat()
    os.utime(dropped, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # `touch`: same content, no new run
    ticks()
    assert "no new batch files" in skip(ticks())

    dropped.write_text(batch_text(family, 12, tmp_path), encoding="utf-8")  # corrected export, same name
    assert "export.csv" in skip(ticks())
    again = ticks()
    (v2,) = again.run_requests
    assert v2.partition_key == v1.partition_key == "export.csv"
    assert v2.run_key != v1.run_key and v2.tags[SHA256_TAG] == sha256_of(dropped) != v1.tags[SHA256_TAG]
    assert not again.dynamic_partitions_requests  # the partition is there already: re-materialized
    assert "no new batch files" in skip(ticks())

    dropped.write_text(batch_text(family, 5, tmp_path), encoding="utf-8")  # back to the first content
    ticks()
    (v3,) = ticks().run_requests
    assert v3.tags[SHA256_TAG] == v1.tags[SHA256_TAG] and v3.run_key not in (v1.run_key, v2.run_key)


def test_a_crowded_inbox_is_taken_a_tick_budget_at_a_time(ticks, family, tmp_path, monkeypatch):
    monkeypatch.setattr("sensors.inbox.MAX_FILES_PER_TICK", 1)
    for name in ("a.csv", "b.csv"):
        (ticks.folder / name).write_text(batch_text(family, 3, tmp_path), encoding="utf-8")
    ticks()
    first = ticks()
    assert [r.partition_key for r in first.run_requests] == ["a.csv"]
    assert [r.partition_key for r in ticks(after=0).run_requests] == ["b.csv"]


def test_files_handed_over_elsewhere_are_fingerprinted_without_a_run_then_watched(family, instance, tmp_path):
    folder = inbox_of(family, {"inbox": Inbox(root=str(tmp_path / "inbox"))})
    for name in ("quickstart.csv", "legacy.csv"):
        copy_batch(sample_files(family)[0], folder, n=4, name=name)
    instance.add_dynamic_partitions(family.partitions_name, ["quickstart.csv"])  # the quickstart ran it
    ticks = Ticks(family, instance, tmp_path, cursor=json.dumps({"seen": ["legacy.csv"]}))  # the old cursor format
    skip(ticks())
    assert "no new batch files" in skip(ticks())
    assert "no new batch files" in skip(ticks())

    for name in ("quickstart.csv", "legacy.csv"):
        copy_batch(sample_files(family)[0], folder, n=9, name=name)
    ticks()
    changed = ticks()
    assert sorted(r.partition_key for r in changed.run_requests) == ["legacy.csv", "quickstart.csv"]
    assert all(r.tags[SHA256_TAG] == sha256_of(folder / r.partition_key) for r in changed.run_requests)


def test_unsupported_files_are_named_once_not_on_every_tick(ticks, capfd):
    (ticks.folder / "notes.txt").write_text("not a batch")
    (ticks.folder / "export.xlsx").write_bytes(b"PK\x03\x04")
    capfd.readouterr()
    first = skip(ticks())
    later = [skip(ticks()) for _ in range(3)]
    assert "export.xlsx" in first and "notes.txt" in first and ".csv" in first
    assert all("notes.txt" not in m and "2 unsupported file(s)" in m for m in later)
    warned = [line for line in capfd.readouterr().err.splitlines() if "notes.txt" in line]  # the sensor's log
    assert len(warned) == 1 and "WARNING" in warned[0] and "export.xlsx" in warned[0]

    (ticks.folder / "more.docx").write_text("x")
    assert "more.docx" in skip(ticks()) and "notes.txt" not in skip(ticks())


def test_the_batch_run_refuses_a_file_that_changed_after_the_sensor_saw_it(family, instance, tmp_path, model_dir):
    resources = temp_resources(tmp_path, model_dir)
    dropped = copy_batch(sample_files(family)[0], inbox_of(family, resources), n=6, name="export.csv")
    seen = sha256_of(dropped)
    copy_batch(sample_files(family)[0], dropped.parent, n=3, name="export.csv")  # rewritten before the run read it
    instance.add_dynamic_partitions(family.partitions_name, ["export.csv"])

    def run(sha: str):
        return dg.materialize([batch_asset(family)], instance=instance, partition_key="export.csv", resources=resources,
                              tags={SHA256_TAG: sha, "inbox_file": "export.csv"}, raise_on_error=False)

    refused = run(seen)
    assert not refused.success
    message = failure_message(refused)
    assert "export.csv" in message and "changed since it was registered" in message and "picked up again" in message
    assert not refused.get_asset_materialization_events()

    ok = run(sha256_of(dropped))
    assert ok.success
    assert metadata_of(ok, FAMILY, "raw_records")["rows_in"] == 3
