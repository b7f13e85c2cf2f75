"""How a DataFrame column is stored: its logical type, SQL type and database values. No I/O.

A column's logical type (``str``, ``int``, ``float``, ``bool``, ``datetime``, ``json``) is
recorded beside each table so a read gives back the dtypes a write was given.
"""

import json
from typing import Any, Mapping

import pandas as pd
import sqlalchemy as sa

_JSON = json.JSONEncoder(sort_keys=True)  # json.dumps(sort_keys=True) builds one per call: a third of its cost
SQL_TYPES = {"bool": sa.Boolean, "int": sa.BigInteger, "float": sa.Float, "datetime": lambda: sa.String(40),
             "json": sa.Text, "str": sa.Text}


def db_values(series: pd.Series, kind: str) -> list[Any]:
    """A column as the database takes it: JSON text, ISO timestamps, None for missing values."""
    values = series.tolist()
    if kind == "json":
        return [None if v is None else _JSON.encode(_jsonable(v)) for v in values]
    present = series.notna().tolist()
    if kind == "datetime":
        return [pd.Timestamp(v).isoformat() if ok else None for v, ok in zip(values, present)]
    if kind == "int" and not pd.api.types.is_integer_dtype(series.dtype):  # a declared int column with gaps
        return [int(v) if ok else None for v, ok in zip(values, present)]
    return [v if ok else None for v, ok in zip(values, present)]


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
    non_null = series.dropna()
    if not non_null.empty:
        first = non_null.iloc[0]
        if isinstance(first, (list, dict, tuple, set)) or hasattr(first, "tolist") and not isinstance(first, str):
            return "json"
        if isinstance(first, pd.Timestamp):
            return "datetime"
        if isinstance(first, bool):
            return "bool"
    return "str"


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
        series = df[col]
        kind = logical_type(series)
        blank = kind == "str" and not series.notna().any()
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
