"""Dagster-level tests of ingestion: materialize against a temp warehouse; the inbox sensor."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from orchestration_assets.ingestion import context_assets, ticket_batch, ticket_batches
from sensors.inbox import inbox_sensor
from tests.conftest import copy_sample_file, materialization_metadata

pytestmark = pytest.mark.filterwarnings("ignore")


def _materialize(resources, instance, key):
    return dg.materialize(
        [ticket_batch, *context_assets], resources=resources, partition_key=key, instance=instance
    )


def test_ingesting_a_batch_accounts_for_every_row_and_is_idempotent(test_resources, data_dir, instance):
    key = "batch-2026-11-23.csv"
    copy_sample_file(data_dir / "inbox", key)
    instance.add_dynamic_partitions(ticket_batches.name, [key])
    wh = test_resources["warehouse"]

    result = _materialize(test_resources, instance, key)
    assert result.success
    raw = materialization_metadata(result)["raw_tickets"]
    rows_in, ok, bad = raw["rows_in"], raw["rows_ok"], raw["rows_quarantined"]
    assert rows_in == ok + bad and bad >= 3 and ok > 400
    assert wh.count_rows("raw_tickets", key) == ok
    assert wh.count_rows("quarantined_tickets", key) == bad
    q = wh.read_table("quarantined_tickets", partitions=[key])
    assert q["reason"].str.len().gt(0).all() and q["field"].notna().all()
    assert set(q["source_file"]) == {key}
    assert wh.count_rows("crm_accounts") >= 200 and wh.count_rows("knowledge_base") >= 20

    again = _materialize(test_resources, instance, key)
    assert again.success
    assert wh.count_rows("raw_tickets", key) == ok
    assert wh.count_rows("quarantined_tickets", key) == bad
    assert wh.count_rows("raw_tickets") == ok  # nothing from the first run left behind


def test_same_ticket_in_a_second_batch_is_quarantined_not_ingested_twice(test_resources, data_dir, instance):
    inbox = data_dir / "inbox"
    first = copy_sample_file(inbox, "batch-2026-11-23.csv")
    (inbox / "batch-resent.csv").write_bytes(first.read_bytes())
    instance.add_dynamic_partitions(ticket_batches.name, [first.name, "batch-resent.csv"])
    assert _materialize(test_resources, instance, first.name).success
    assert _materialize(test_resources, instance, "batch-resent.csv").success
    wh = test_resources["warehouse"]
    assert wh.count_rows("raw_tickets", "batch-resent.csv") == 0
    q = wh.read_table("quarantined_tickets", partitions=["batch-resent.csv"])
    assert q["reason"].str.contains("already ingested from batch 'batch-2026-11-23.csv'").sum() == wh.count_rows(
        "raw_tickets", first.name
    )


def test_inbox_sensor_registers_new_files_once(test_resources, data_dir, instance):
    inbox = data_dir / "inbox"
    copy_sample_file(inbox, "batch-2026-11-23.csv")
    copy_sample_file(inbox, "batch-2026-11-24.jsonl")
    (inbox / "notes.txt").write_text("not a batch")
    res = {"inbox": test_resources["inbox"]}

    ctx = dg.build_sensor_context(instance=instance, resources=res)
    result = inbox_sensor(ctx)
    assert isinstance(result, dg.SensorResult)
    assert [r.partition_key for r in result.run_requests] == ["batch-2026-11-23.csv", "batch-2026-11-24.jsonl"]
    assert all(r.job_name in (None, "triage_job") for r in result.run_requests)
    (add,) = result.dynamic_partitions_requests
    assert add.partitions_def_name == "ticket_batches"
    assert list(add.partition_keys) == ["batch-2026-11-23.csv", "batch-2026-11-24.jsonl"]
    cursor = result.cursor
    assert sorted(json.loads(cursor)["seen"]) == ["batch-2026-11-23.csv", "batch-2026-11-24.jsonl"]

    # same files, next tick: nothing to do
    ctx2 = dg.build_sensor_context(instance=instance, resources=res, cursor=cursor)
    idle = inbox_sensor(ctx2)
    assert not idle.run_requests and idle.skip_reason is not None

    # a new file: only it is requested
    copy_sample_file(inbox, "batch-2026-11-25.csv")
    ctx3 = dg.build_sensor_context(instance=instance, resources=res, cursor=cursor)
    result3 = inbox_sensor(ctx3)
    assert [r.partition_key for r in result3.run_requests] == ["batch-2026-11-25.csv"]
    assert list(result3.dynamic_partitions_requests[0].partition_keys) == ["batch-2026-11-25.csv"]


def test_inbox_sensor_leaves_batches_registered_elsewhere_alone(test_resources, data_dir, instance):
    """After the quickstart ran the sample batches, a fresh sensor (empty cursor) does not re-run them."""
    inbox = data_dir / "inbox"
    copy_sample_file(inbox, "batch-2026-11-23.csv")
    copy_sample_file(inbox, "batch-2026-11-24.jsonl")
    instance.add_dynamic_partitions(ticket_batches.name, ["batch-2026-11-23.csv"])
    ctx = dg.build_sensor_context(instance=instance, resources={"inbox": test_resources["inbox"]})
    result = inbox_sensor(ctx)
    assert [r.partition_key for r in result.run_requests] == ["batch-2026-11-24.jsonl"]


def test_definitions_load_without_heavy_imports():
    """Loading the code location must stay fast: Great Expectations and model training load lazily."""
    import subprocess
    import sys

    code = (
        "import sys; from orchestration_assets.definitions import defs; defs.resolve_all_job_defs();"
        "heavy = [m for m in ('great_expectations', 'sklearn.svm', 'sklearn.linear_model') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at load time: {out.stdout.strip()}"
