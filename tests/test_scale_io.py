"""Reads and writes that stay bounded as a batch grows (bench/scale.py measures the figures).

Each test asserts what a user would see (same rows, same KPIs, files delivered once) and how much
the database is asked for it (statements counted with a SQLAlchemy event listener), never a time.
"""

import json
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from orchestration_assets.core.dispatch import candidate_columns, dispatch_candidates
from orchestration_assets.core.kpis import kpi_by_model_version, kpi_by_model_version_columns, kpi_daily, \
    kpi_daily_columns
from orchestration_assets.core.review import review_queue, review_queue_columns
from orchestration_assets.ingestion import ids_elsewhere
from orchestration_assets.inputs import whole_table
from resources.outbox import Dispatcher, read_ledger
from resources.warehouse import Warehouse
from tests.governance_fixtures import seed_batch

ST = "support_triage"


@contextmanager
def statements(engine: sa.Engine):
    """The SQL statements sent while the block runs: (statement, number of parameter sets)."""
    seen: list[tuple[str, int]] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, len(parameters) if executemany else 1))

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


@pytest.fixture
def wh(tmp_path) -> Warehouse:
    return Warehouse(url=f"sqlite:///{tmp_path / 'wh.db'}")


def test_a_partition_of_six_thousand_rows_is_written_in_a_few_statements_and_reads_back_the_same(wh):
    n = 6_000
    df = pd.DataFrame({
        "record_id": [f"R{i:05d}" for i in range(n)],
        "score": [i / 7 if i % 10 else None for i in range(n)],
        "count": range(n),
        "flags": [["a", "b"] if i % 3 else [] for i in range(n)],
        "ok": [i % 2 == 0 for i in range(n)],
        "note": [None if i % 5 == 0 else f"note {i}" for i in range(n)],
        "at": pd.date_range("2026-11-23", periods=n, freq="min", tz="UTC"),
    })
    wh.replace_partition("t", df.head(10), "p1")  # the table and its type records exist: a re-write is measured
    with statements(wh.engine) as seen:
        assert wh.replace_partition("t", df, "p1") == n
    inserts = [(s, k) for s, k in seen if s.lstrip().upper().startswith("INSERT INTO T ")]
    assert sum(k for _, k in inserts) == n and len(inserts) == 2  # 5,000 rows per executemany
    assert len(seen) < 40  # schema look-ups, the delete, the inserts: not one statement per row

    back = wh.read_table("t", partitions=["p1"]).drop(columns=["_partition"])
    pd.testing.assert_frame_equal(back.drop(columns=["note"]), df.drop(columns=["note"]), check_dtype=False)
    assert back["note"].tolist() == [None if i % 5 == 0 else f"note {i}" for i in range(n)]
    assert back["flags"].iloc[1] == ["a", "b"] and back["ok"].iloc[0] is True


def test_whole_table_reads_only_the_columns_asked_for(families, wh):
    family = families[ST]
    seed_batch(wh, family, n=12)
    with statements(wh.engine) as seen:
        df = whole_table(wh, family, "enriched_records", ["status", "reply", "no_such_column"])
    selects = [s for s, _ in seen if s.lstrip().upper().startswith("SELECT") and "enriched_records" in s]
    assert list(df.columns) == ["record_id", "status", "reply"] and len(df) == 12
    assert selects and all("category_probabilities" not in s for s in selects)


def test_kpis_queue_and_dispatch_from_their_columns_equal_those_from_whole_rows(families, wh):
    family = families[ST]
    seed_batch(wh, family, n=20, partition="batch-one.csv")
    table = family.table("enriched_records")  # as enriched_records writes it: with its time of enrichment
    rows = wh.read_table(table).drop(columns=["_partition"])
    wh.replace_partition(table, rows.assign(enriched_at=pd.Timestamp("2026-11-23T12:00:00Z")), "batch-one.csv")
    full = {a: whole_table(wh, family, a) for a in ("routing_decisions", "enriched_records")}
    tasks = list(family.tasks)
    routed, enriched = kpi_daily_columns(tasks)
    pd.testing.assert_frame_equal(
        kpi_daily(whole_table(wh, family, "routing_decisions", routed), whole_table(wh, family, "enriched_records", enriched), tasks),
        kpi_daily(full["routing_decisions"], full["enriched_records"], tasks))
    task, truth = family.model_task.name, family.truth_field(family.model_task.name)
    pd.testing.assert_frame_equal(
        kpi_by_model_version(whole_table(wh, family, "enriched_records", kpi_by_model_version_columns(task, truth)),
                             task, truth, None, None, None),
        kpi_by_model_version(full["enriched_records"], task, truth, None, None, None))
    empty = pd.DataFrame(columns=["record_id", "decision", "reviewer", "edited_text", "decided_at"])
    now = pd.Timestamp("2026-11-25T00:00:00Z")
    routed, enriched = review_queue_columns(family)
    queue = review_queue(family, whole_table(wh, family, "routing_decisions", routed),
                         whole_table(wh, family, "enriched_records", enriched), empty, now=now)
    assert len(queue) == 12  # 3 of every 5 records go to a reviewer
    pd.testing.assert_frame_equal(queue, review_queue(family, full["routing_decisions"], full["enriched_records"], empty, now=now))
    routed, enriched = candidate_columns(family)
    out = dispatch_candidates(family, whole_table(wh, family, "routing_decisions", routed),
                              whole_table(wh, family, "enriched_records", enriched), empty)
    assert len(out) == 8 and set(out["source"]) == {"auto_send"}
    pd.testing.assert_frame_equal(out, dispatch_candidates(family, full["routing_decisions"], full["enriched_records"], empty))


def test_ingestion_looks_up_only_the_batch_ids_in_other_partitions(families, wh):
    family = families[ST]
    seed_batch(wh, family, n=10, partition="old.csv", prefix="X")
    table = family.table("enriched_records")
    with statements(wh.engine) as seen:
        found = ids_elsewhere(wh, table, "new.csv", [f"X-R{i:04d}" for i in range(5, 1205)])
    assert found == {f"X-R{i:04d}": "old.csv" for i in range(5, 10)}
    assert sum(1 for s, _ in seen if " IN (" in s) == 3  # three chunks of ids, not every id ever ingested
    assert ids_elsewhere(wh, table, "old.csv", ["X-R0001"]) == {}  # its own partition is not "elsewhere"


def items(n: int) -> list[dict]:
    return [{"record_id": f"R{i:05d}", "text": f"reply {i}", "source": "auto_send"} for i in range(n)]


def test_a_chunked_delivery_commits_a_chunk_at_a_time_and_never_sends_twice(wh, tmp_path):
    folder, n = tmp_path / "out", 1_200
    dispatcher = Dispatcher(wh.engine, ST, folder)
    batches = []
    with statements(wh.engine) as seen:
        report = dispatcher.deliver(items(n), run_id="run-1", on_delivered_many=batches.append)
    assert sorted(report.delivered) == [f"R{i:05d}" for i in range(n)] and not report.failed
    assert [len(b) for b in batches] == [500, 500, 200]  # each chunk reported once the ledger has it
    ledger_writes = [s for s, _ in seen if s.lstrip().upper().startswith(("INSERT INTO DISPATCH", "UPDATE DISPATCH"))]
    assert len(ledger_writes) == 6  # a claim and a "delivered" per chunk, not two per item
    files = sorted(folder.glob("*.json"))
    assert len(files) == n and json.loads(files[7].read_text())["record_id"] == "R00007"
    assert not list(folder.glob(".*.tmp"))
    ledger = read_ledger(wh.engine, family=ST)
    assert set(ledger["status"]) == {"delivered"} and len(ledger) == n

    again = dispatcher.deliver(items(n), run_id="run-2")
    assert again.delivered == [] and again.already_delivered == n


def test_a_chunk_that_crashed_before_its_ledger_commit_is_recovered_without_a_second_file(wh, tmp_path, monkeypatch):
    folder = tmp_path / "out"
    crashed = Dispatcher(wh.engine, ST, folder)

    def die(rows):
        raise KeyboardInterrupt("killed between the writes and the ledger's commit")

    monkeypatch.setattr(crashed, "_finish_many", die)
    with pytest.raises(KeyboardInterrupt):
        crashed.deliver(items(30), run_id="dead-run")
    in_doubt = read_ledger(wh.engine, status="claimed", family=ST)
    assert len(in_doubt) == 30
    first = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.json")}
    assert len(first) == 30

    live = Dispatcher(wh.engine, ST, folder)  # within the lease: the claims may belong to a live dispatcher
    assert len(live.deliver(items(30)).held) == 30
    report = Dispatcher(wh.engine, ST, folder, lease_seconds=0.0).deliver(items(30), run_id="next-run")
    assert len(report.recovered) == 30 and not report.delivered and not report.failed
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*.json")} == first  # not written again
    ledger = read_ledger(wh.engine, family=ST)
    assert set(ledger["status"]) == {"delivered"} and set(ledger["attempts"]) == {2}
    assert Path(ledger["file_path"].iloc[0]).parent == folder


@pytest.mark.parametrize("text", ["2026-11-23T00:27:29+00:00", "2026-11-23T00:27:29Z", "2026-11-23 01:27:29.5+01:00",
                                  "2026-11-23T00:27+05:30", "1800-01-01T00:00:00+00:00", "2026-02-30T00:00:00+00:00",
                                  "2026-11-23T00:27:29", "23/11/2026 10:00"])
def test_the_fast_iso_reading_of_a_timestamp_is_the_full_readers(text):
    from orchestration_assets.core.iso_timestamps import read_record_timestamp
    from orchestration_assets.core.timestamps import read_timestamp
    from orchestration_assets.spec_inputs import TimestampSpec

    rules = TimestampSpec(date_order="day_first")
    assert read_record_timestamp(text, rules) == read_timestamp(text, rules)
