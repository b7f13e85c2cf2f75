"""How a DataFrame column is stored: its logical type, SQL type and database values. No I/O.

A column's logical type (``str``, ``int``, ``float``, ``bool``, ``datetime``, ``json``) is
recorded beside each table so a read gives back the dtypes a write was given.
"""

import json
import json.decoder
import json.encoder
import json.scanner
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import sqlalchemy as sa

_JSON = json.JSONEncoder(sort_keys=True)  # json.dumps(sort_keys=True) builds one per call: a third of its cost
SQL_TYPES = {"bool": sa.Boolean, "int": sa.BigInteger, "float": sa.Float, "datetime": lambda: sa.String(40),
             "json": sa.Text, "str": sa.Text}


def _json_encoder():
    """``_JSON.encode`` without its two Python frames and the C encoder it builds per value (0.6x the time).

    A fresh one per column: a failed encode may leave its circular-reference markers behind.
    """
    c_make = json.encoder.c_make_encoder
    if c_make is None:  # an interpreter without the C accelerator
        return _JSON.encode
    encode = c_make({}, _JSON.default, json.encoder.encode_basestring_ascii, None, _JSON.key_separator,
                    _JSON.item_separator, _JSON.sort_keys, _JSON.skipkeys, _JSON.allow_nan)
    join = "".join
    return lambda v: join(encode(v, 0))


_SCAN = json.scanner.make_scanner(json.decoder.JSONDecoder())


def _json_decode(v: str) -> Any:
    """``json.loads`` for the texts this warehouse wrote, scanned in one C call (a quarter of its time);
    anything else (surrounding blanks, bad JSON) goes through ``json.loads`` itself, errors included."""
    try:
        obj, end = _SCAN(v, 0)
    except (StopIteration, ValueError):
        return json.loads(v)
    return obj if end == len(v) else json.loads(v)


def db_values(series: pd.Series, kind: str) -> list[Any]:
    """A column as the database takes it: JSON text, ISO timestamps, None for missing values."""
    if kind == "json":
        encode = _json_encoder()
        return [None if v is None else encode(v if v.__class__ is dict or v.__class__ is list else _jsonable(v))
                for v in series.tolist()]
    dtype = series.dtype
    if kind == "datetime":
        return _iso_values(series)
    if kind == "int" and not pd.api.types.is_integer_dtype(dtype):  # a declared int column with gaps
        return [int(v) if ok else None for v, ok in zip(series.tolist(), series.notna().tolist())]
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":  # numpy ints and bools have no missing value
        return series.tolist()
    missing = series.isna().to_numpy()
    if not missing.any():
        return series.tolist()
    values = series.to_numpy(dtype=object, copy=True)
    values[missing] = None
    return values.tolist()


def _iso_values(series: pd.Series) -> list[Any]:
    """``Timestamp.isoformat()`` of each value (None when missing), through ``datetime.isoformat`` (C)
    when no value has nanoseconds: the text is the same, it costs a fifth."""
    present = series.notna().tolist()
    dtype = series.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype) and not (series.dt.nanosecond.to_numpy() != 0).any():
        values = series.dt.to_pydatetime().tolist()
        return [v.isoformat() if ok else None for v, ok in zip(values, present)]
    return [pd.Timestamp(v).isoformat() if ok else None for v, ok in zip(series.tolist(), present)]


def _jsonable(v: Any) -> Any:
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, (set, tuple)):
        return list(v)
    return v


def logical_type(series: pd.Series) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    first = _first_present(series)
    if first is not _ABSENT:
        if isinstance(first, (list, dict, tuple, set)) or hasattr(first, "tolist") and not isinstance(first, str):
            return "json"
        if isinstance(first, pd.Timestamp):
            return "datetime"
        if isinstance(first, bool):
            return "bool"
    return "str"


_ABSENT = object()


def _first_present(series: pd.Series) -> Any:
    """``series.dropna().iloc[0]`` (``_ABSENT`` when every value is missing) without a whole-column
    ``isna`` when one of the first values is present, as it nearly always is."""
    for v in series.iloc[:64].tolist():
        if not (pd.api.types.is_scalar(v) and pd.isna(v)):
            return v
    non_null = series.dropna()
    return non_null.iloc[0] if len(non_null) else _ABSENT


def sql_type(kind: str) -> sa.types.TypeEngine:
    return SQL_TYPES[kind]()


def settle_kinds(table: str, df: pd.DataFrame, declared: Mapping[str, str], settled: dict[str, str],
                 guessed: set[str]) -> dict[str, str]:
    """The logical type of each of ``df``'s columns when it is one chunk of a larger write.

    ``declared`` types win; otherwise a column's type is the one its first chunk showed. A column
    with only missing values shows none: it is taken as ``str`` (in ``guessed``) until a later
    chunk shows values, which may only turn it into ``json`` (same SQL type); any other change
    would make the stored type depend on where the chunks were cut, so it is refused.
    """
    for col in df.columns:
        if col in declared:
            settled[col] = declared[col]
            continue
        if col in settled and col not in guessed:
            continue  # its type is known: no look at its values
        series = df[col]
        kind = logical_type(series)
        blank = kind == "str" and _first_present(series) is _ABSENT
        if col not in settled:
            settled[col] = kind
            if blank:
                guessed.add(col)
        elif col in guessed and not blank:
            if kind not in ("str", "json"):
                raise ValueError(f"table {table!r}, column {col!r}: no values in the first chunk, then {kind} "
                                 "values; declare its type")
            settled[col] = kind
            guessed.discard(col)
    return {c: settled[c] for c in df.columns}


def frame_from_rows(names: Sequence[str], rows: Sequence[Sequence[Any]], kinds: Mapping[str, str]) -> pd.DataFrame:
    """Database rows as a frame: each column with a recorded type as ``from_db`` restores it, the
    others as pandas infers them (as ``pd.read_sql`` does)."""
    untyped = [name for name in names if name not in kinds]
    if len(untyped) == len(names):  # a table this warehouse did not write (no recorded types)
        return pd.DataFrame.from_records(rows, columns=names, coerce_float=True)
    columns = list(zip(*rows)) if rows else [()] * len(names)
    inferred = pd.DataFrame.from_records(
        list(zip(*(columns[names.index(n)] for n in untyped))), columns=untyped, coerce_float=True) if untyped else None
    index = pd.RangeIndex(len(rows))
    return pd.DataFrame({name: _series(from_db(col, kinds[name]), index) if name in kinds else inferred[name]
                         for name, col in zip(names, columns)}, index=index)


def _series(values: Any, index: pd.Index) -> pd.Series:
    # the array's own dtype: pandas would infer its string dtype from an object array of texts
    return pd.Series(values, index=index, dtype=values.dtype, copy=False)


def from_db(values: Sequence[Any], kind: str) -> Any:
    """One column's database values (None for NULL) as an array of its logical type."""
    if kind == "json":
        # what the old pd.read_sql reader gave: pandas' string inference made a missing value NaN beside texts
        missing = np.nan if any(isinstance(v, str) for v in values) else None
        return _objects([_json_decode(v) if isinstance(v, str) else missing if v is None else v for v in values])
    if kind == "datetime":
        return pd.to_datetime(_objects(values), utc=True, errors="coerce", format="ISO8601").array
    if kind == "bool":
        return _objects([None if v is None or (isinstance(v, float) and v != v) else bool(v) for v in values])
    if kind == "int":
        return pd.array(values, dtype="Int64") if None in values else np.array(values, dtype=np.int64)
    if kind == "float":
        try:
            return np.array(values, dtype=np.float64)
        except (TypeError, ValueError):  # text in a float column (SQLite keeps what it is given)
            return pd.to_numeric(pd.Series(_objects(values)), errors="coerce").astype("float64").to_numpy()
    return _objects(values)


def _objects(values: Sequence[Any]) -> np.ndarray:
    """A 1-D object array of ``values``, lists kept as elements (``np.array`` would nest them)."""
    return np.fromiter(values, dtype=object, count=len(values))
