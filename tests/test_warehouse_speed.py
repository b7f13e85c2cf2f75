"""The warehouse's fast read and write paths give back exactly what was written (bench/scale.py times them).

Reads go through the driver's row tuples and decode each column once; writes convert a column at a
time. These tests pin the edge cases those paths handle: missing values of every kind, empty
frames and reads, map/list columns, time zones and nanoseconds, booleans and integers with gaps,
tables this warehouse did not write, and JSON text written by someone else.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from resources.warehouse import Warehouse


@pytest.fixture
def wh(tmp_path) -> Warehouse:
    return Warehouse(url=f"sqlite:///{tmp_path / 'wh.db'}")


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "record_id": ["a", "b", "c", "d"],
        "text": ["x", None, "z", np.nan],
        "labels": [["p", "q"], [], None, ["r"]],
        "probs": [{"b": 0.25, "a": 0.75}, {}, None, {"nested": {"k": [1, 2]}}],
        "n": [1, 2, 3, 4],
        "n_gaps": pd.array([1, None, 3, None], dtype="Int64"),
        "score": [0.5, np.nan, None, 2.0],
        "ok": [True, None, False, True],
        "flag": [True, False, True, False],
        "at": pd.to_datetime(["2026-11-23T10:00:00Z", None, "2026-11-23T10:00:00.000001Z",
                              "2026-11-24T00:00:00Z"], utc=True, format="ISO8601"),
    })


def _cells(series: pd.Series) -> list[str]:
    """Each value with its type, so None and NaN (or 1 and 1.0) are told apart."""
    return [f"{type(v).__name__}:{v!r}" for v in series.tolist()]


def test_every_kind_of_column_and_missing_value_reads_back_as_written(wh):
    wh.replace_partition("t", _frame(), "p1")
    back = wh.read_table("t", partitions=["p1"])
    assert list(back.columns) == [*_frame().columns, "_partition"]
    assert {c: str(t) for c, t in back.dtypes.items()} == {
        "record_id": "object", "text": "object", "labels": "object", "probs": "object", "n": "int64",
        "n_gaps": "Int64", "score": "float64", "ok": "object", "flag": "object", "at": "datetime64[us, UTC]",
        "_partition": "object"}
    assert back["text"].tolist() == ["x", None, "z", None]
    # a missing map/list value beside texts comes back NaN, as the pd.read_sql reader gave it
    assert back["labels"].tolist()[:2] == [["p", "q"], []] and math.isnan(back["labels"].iloc[2])
    assert back["labels"].iloc[3] == ["r"]
    assert back["probs"].iloc[0] == {"a": 0.75, "b": 0.25} and back["probs"].iloc[3] == {"nested": {"k": [1, 2]}}
    assert back["n"].tolist() == [1, 2, 3, 4]
    assert back["n_gaps"].tolist() == [1, pd.NA, 3, pd.NA]
    assert _cells(back["score"])[0] == "float:0.5" and back["score"].isna().tolist() == [False, True, True, False]
    assert _cells(back["ok"]) == ["bool:True", "NoneType:None", "bool:False", "bool:True"]
    assert _cells(back["flag"]) == ["bool:True", "bool:False", "bool:True", "bool:False"]
    assert back["at"].iloc[2] == pd.Timestamp("2026-11-23T10:00:00.000001Z") and pd.isna(back["at"].iloc[1])
    assert isinstance(back.index, pd.RangeIndex)


def test_a_map_column_with_no_value_at_all_reads_back_none(wh):
    wh.replace_partition_chunks("t", [pd.DataFrame({"record_id": ["a", "b"], "m": [None, None]})], "p1",
                                kinds={"m": "json"})
    assert _cells(wh.read_table("t")["m"]) == ["NoneType:None", "NoneType:None"]


def test_an_empty_read_and_an_empty_write_keep_the_column_types(wh):
    wh.replace_partition("t", _frame(), "p1")
    assert wh.replace_partition("t", _frame().head(0), "p2") == 0
    empty = wh.read_table("t", partitions=["p2"])
    assert len(empty) == 0 and list(empty.columns) == [*_frame().columns, "_partition"]
    assert str(empty["n"].dtype) == "int64" and str(empty["score"].dtype) == "float64"
    assert str(empty["at"].dtype).startswith("datetime64[") and "UTC" in str(empty["at"].dtype)
    assert len(wh.read_table("t", where_in=("record_id", []))) == 0
    assert wh.read_table("no_such_table", columns=["a"]).columns.tolist() == ["a"]


def test_a_read_filters_by_partition_and_ids_and_keeps_the_columns_asked_for(wh):
    wh.replace_partition("t", _frame(), "p1")
    wh.replace_partition("t", _frame().assign(record_id=["e", "f", "g", "h"]), "p2")
    df = wh.read_table("t", partitions=["p2"], columns=["score", "record_id"], where_in=("record_id", ["f", "a", "h"]))
    assert list(df.columns) == ["score", "record_id"] and df["record_id"].tolist() == ["f", "h"]
    with pytest.raises(KeyError, match="table 't' has no column 'nope'"):
        wh.read_table("t", columns=["record_id", "nope"])
    wh.replace_table("u", pd.DataFrame({"a": [1]}))
    with pytest.raises(ValueError, match="table 'u' is not partitioned"):
        wh.read_table("u", partitions=["p1"])


def test_stored_timestamps_are_the_iso_text_of_each_value_whatever_the_zone_or_precision(wh):
    paris = pd.Series(pd.to_datetime(["2026-03-29T00:30:00", "2026-03-29T03:30:00"]).tz_localize("Europe/Paris"))
    cases = {
        "paris": paris,
        "naive": pd.Series(pd.to_datetime(["2026-11-23T10:00:00", "2026-11-23T10:00:00.5"], format="ISO8601")),
        "nanos": pd.Series(pd.to_datetime(["2026-11-23T10:00:00.000000001Z", None], utc=True, format="ISO8601")),
        "objects": pd.Series([pd.Timestamp("2026-11-23T10:00:00Z"), None], dtype=object),
    }
    for name, values in cases.items():
        wh.replace_partition(name, pd.DataFrame({"at": values}), "p1")
        with wh.engine.connect() as conn:
            stored = [r[0] for r in conn.exec_driver_sql(f'SELECT "at" FROM "{name}"')]
        assert stored == [pd.Timestamp(v).isoformat() if pd.notna(v) else None for v in values], name
    assert wh.read_table("nanos")["at"].iloc[0].nanosecond == 1


def test_map_text_is_sorted_json_and_text_written_by_others_still_decodes(wh):
    values = [{"b": [1, 2], "a": [3]}, np.array([3, 1]), ("u", "v")]
    wh.replace_partition("t", pd.DataFrame({"record_id": ["a", "a2", "a3"], "m": values}), "p1")
    with wh.engine.begin() as conn:
        assert [r[0] for r in conn.exec_driver_sql("SELECT m FROM t")] == [
            '{"a": [3], "b": [1, 2]}', "[3, 1]", '["u", "v"]']
        conn.exec_driver_sql("""INSERT INTO t (record_id, m, _partition) VALUES ('b', ' {"x": 1} ', 'p1')""")
    assert wh.read_table("t")["m"].tolist() == [{"a": [3], "b": [1, 2]}, [3, 1], ["u", "v"], {"x": 1}]
    with wh.engine.begin() as conn:
        conn.exec_driver_sql("""INSERT INTO t (record_id, m, _partition) VALUES ('c', '[1] [2]', 'p1')""")
    with pytest.raises(json.JSONDecodeError, match="Extra data"):
        wh.read_table("t")


def test_a_table_the_warehouse_did_not_write_reads_with_pandas_inferred_types(wh):
    with wh.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE ext (id INTEGER, v REAL, s TEXT, gap INTEGER)")
        conn.exec_driver_sql("INSERT INTO ext VALUES (1, 0.5, 'x', NULL), (2, NULL, NULL, 7)")
    df = wh.read_table("ext")
    assert str(df["id"].dtype) == "int64" and str(df["v"].dtype) == "float64" and str(df["gap"].dtype) == "float64"
    assert df["s"].iloc[0] == "x" and pd.isna(df["s"].iloc[1]) and df["gap"].iloc[1] == 7.0


def test_a_query_result_gets_the_recorded_types_back(wh):
    wh.replace_partition("t", _frame(), "p1")
    rows = wh.query('SELECT * FROM t WHERE record_id IN (:a, :b)', a="a", b="b")
    df = wh._restore_types("t", rows)
    assert df["labels"].iloc[0] == ["p", "q"] and str(df["n_gaps"].dtype) == "Int64"
    assert _cells(df["ok"]) == ["bool:True", "NoneType:None"] and str(df["at"].dtype) == "datetime64[us, UTC]"


def test_a_column_blank_in_the_first_chunk_takes_the_type_of_the_next(wh):
    first = pd.DataFrame({"record_id": ["a"], "tags": [None]})
    later = pd.DataFrame({"record_id": ["b"], "tags": [["x"]]})
    assert wh.replace_partition_chunks("t", iter([first, later]), "p1") == 2
    assert wh.column_kinds("t")["tags"] == "json" and wh.read_table("t")["tags"].tolist()[1] == ["x"]
    with pytest.raises(ValueError, match="column 'n': no values in the first chunk, then int values"):
        wh.replace_partition_chunks("t", iter([first.assign(n=[None]), later.assign(n=[1])]), "p2")
    assert wh.count_rows("t", "p2") == 0  # the failed write left nothing behind
    with wh.engine.connect() as conn:
        assert sa.inspect(conn).has_table("t")
