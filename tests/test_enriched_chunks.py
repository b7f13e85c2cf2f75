"""``enriched_records`` built a slice of record ids at a time is the table joined whole.

A batch of 23 records in slices of 5 (five slices) whose first slice has no value in some
answer columns, a record one task never answered and a task error: the stored table, its
column types and the step's metadata equal those of one slice (and of the old whole join);
a re-run replaces the partition's rows; a failure while a slice is built leaves them as they were.
"""

import json

import pandas as pd
import pytest

from orchestration_assets.core.enrichment import assemble_enriched, label_agreement
from orchestration_assets.enriched_chunks import write_enriched
from orchestration_assets import inputs
from resources.warehouse import Warehouse
from tests.governance_fixtures import _field_value

ST, KEY, N, SLICE = "support_triage", "2026-11-23.batch", 23, 5
MISSING, ERRORED = 17, 8  # record 17 has no row in one task's table; record 8's answer is an error


def _value(kind: str, task: str, col: str, i: int):
    if i < SLICE and kind in ("str", "json", "bool") and col != task:  # nothing in the first slice
        return None
    return {"str": f"{col}-{i % 3}", "float": i / 4, "int": i, "bool": i % 2 == 0,
            "json": {"n": i} if i % 2 else [f"v{i}"]}[kind]


@pytest.fixture
def batch(families, tmp_path):
    family, wh = families[ST], Warehouse(url=f"sqlite:///{tmp_path / 'wh.db'}")
    created = pd.date_range("2026-11-23T08:00:00Z", periods=N, freq="10min", tz="UTC")
    ids = [f"R{i:03d}" for i in range(N)]
    records = pd.DataFrame([{**{f: _field_value(family, f, i, created[i]) for f in family.record.fields},
                             family.id_field: rid, "record_id": rid, "input_hash": f"h{i}",
                             "ingested_at": created[i]} for i, rid in enumerate(ids)])
    wh.replace_partition(family.table("raw_records"), records, KEY)
    for t, task in enumerate(family.tasks.values()):
        rows = [{"record_id": rid, "input_hash": f"h{i}",
                 **{c: _value(k, task.name, c, i) for c, k in task.columns().items()}}
                for i, rid in enumerate(ids) if not (t == 0 and i == MISSING)]
        df = pd.DataFrame(rows)
        df[f"{task.name}_error"] = [("model timed out" if t == 1 and r["record_id"] == ids[ERRORED] else None)
                                    for r in rows]
        df[f"{task.name}_path"] = "local"
        wh.replace_partition(family.table(task.name), df, KEY)
    return family, wh


def _stored(wh: Warehouse, family) -> pd.DataFrame:
    return wh.read_table(family.table("enriched_records"), partitions=[KEY]).drop(columns=["enriched_at", "_partition"])


def _values(col: pd.Series) -> list:
    """Comparable cells: one missing value; lists and dicts as JSON (a dict's NaN equals itself there)."""
    return [json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else None if pd.isna(v) else v
            for v in col.tolist()]


def _truths(family):
    return [(t, family.truth_field(t)) for t in family.tasks if family.truth_field(t)]


def test_slices_store_the_same_rows_columns_and_types_as_one_slice(batch, tmp_path):
    family, wh = batch
    sliced_meta = write_enriched(wh, family, KEY, "run-1", _truths(family), chunk_records=SLICE)
    sliced, sliced_kinds = _stored(wh, family), wh.column_kinds(family.table("enriched_records"))
    whole_meta = write_enriched(wh, family, KEY, "run-1", _truths(family), chunk_records=10 * N)
    whole, whole_kinds = _stored(wh, family), wh.column_kinds(family.table("enriched_records"))

    assert len(sliced) == N and list(sliced["record_id"]) == [f"R{i:03d}" for i in range(N)]
    pd.testing.assert_frame_equal(sliced, whole)
    assert sliced_kinds == whole_kinds
    for task in family.tasks.values():  # declared by the task, whatever the first slice held
        assert {c: sliced_kinds[c] for c in task.columns()} == task.columns()
    first_task = next(iter(family.tasks))
    assert sliced.loc[MISSING, "status"] == "failed" and f"{first_task}: no result" in sliced.loc[MISSING, "failure_reason"]
    assert "model timed out" in sliced.loc[ERRORED, "failure_reason"]
    for key in ("dagster/row_count", "rows_in", "rows_enriched", "rows_failed", "model_versions", "preview",
                "failures", "guardrail_violations", "tokens", "fallbacks", "cost_usd"):
        assert sliced_meta[key] == whole_meta[key], key
    assert sliced_meta["rows_failed"] == 2 and sliced_meta["rows_in"] == N


def test_slices_give_the_rows_and_metadata_of_the_whole_join(batch):
    family, wh = batch
    meta = write_enriched(wh, family, KEY, "run-1", _truths(family), chunk_records=SLICE)
    records = inputs.records(wh, family, KEY)
    frames = {n: inputs.answers(wh, family, n, KEY) for n in family.tasks}
    base = inputs.with_lookups(wh, family, records, inputs.record_lookups(family))
    base = inputs.with_lookups(wh, family, base, inputs.answer_lookups(family), answers_by_task=frames)
    old = assemble_enriched(base, family.tasks, frames, model_task=family.model_task.name, run_id="run-1",
                            partition=KEY)
    new = _stored(wh, family)
    assert list(new.columns) == list(old.drop(columns=["enriched_at"]).columns)
    for col in new.columns:  # values equal; the int columns with a gap are Int64 now, not float64
        assert _values(new[col]) == _values(old[col]), col
    for name, value in label_agreement(old, _truths(family)).items():
        assert meta[name].value == pytest.approx(value)
    assert meta["rows_failed"] == int((old["status"] == "failed").sum()) == 2


def test_a_rerun_replaces_the_partition_and_a_failed_slice_leaves_it_as_it_was(batch, monkeypatch):
    family, wh = batch
    table = family.table("enriched_records")
    write_enriched(wh, family, KEY, "run-1", _truths(family), chunk_records=SLICE)
    write_enriched(wh, family, KEY, "run-2", _truths(family), chunk_records=SLICE)
    stored = _stored(wh, family)
    assert len(stored) == N and set(stored["run_id"]) == {"run-2"}

    import orchestration_assets.enriched_chunks as chunks
    real, calls = chunks.assemble_enriched, []

    def third_slice_breaks(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(chunks, "assemble_enriched", third_slice_breaks)
    with pytest.raises(RuntimeError, match="disk full"):
        write_enriched(wh, family, KEY, "run-3", _truths(family), chunk_records=SLICE)
    after = _stored(wh, family)
    assert wh.count_rows(table, KEY) == N and set(after["run_id"]) == {"run-2"}


def test_a_column_with_no_value_in_the_first_chunk_and_an_undeclared_type_is_refused(tmp_path):
    wh = Warehouse(url=f"sqlite:///{tmp_path / 'wh.db'}")
    wh.replace_partition("t", pd.DataFrame({"record_id": ["a"], "ok": [True]}), "p")
    first = pd.DataFrame({"record_id": ["b"], "ok": pd.Series([None], dtype=object)})
    later = pd.DataFrame({"record_id": ["c"], "ok": pd.Series([True], dtype=object)})
    with pytest.raises(ValueError, match="table 't', column 'ok'.*declare its type"):
        wh.replace_partition_chunks("t", iter([first, later]), "p")
    assert wh.read_table("t", partitions=["p"])["record_id"].tolist() == ["a"]
    wh.replace_partition_chunks("t", iter([first, later]), "p", kinds={"ok": "bool"})
    back = wh.read_table("t", partitions=["p"])
    assert back["record_id"].tolist() == ["b", "c"] and back["ok"].tolist() == [None, True]
