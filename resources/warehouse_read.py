"""Reading warehouse rows: the catalog look-ups and the SELECT, as the driver returns them. No pandas."""

from typing import Any, Sequence

import sqlalchemy as sa

SCHEMA_TABLE = "_column_types"
POSITIONAL = {"qmark": "?", "format": "%s", "pyformat": "%s"}  # driver paramstyle -> its positional marker


def table_columns(conn: sa.Connection, table: str) -> list[str] | None:
    """The table's column names in their order, None when it does not exist (one catalog query)."""
    try:
        return [c["name"] for c in sa.inspect(conn).get_columns(table)]
    except sa.exc.NoSuchTableError:
        return None


def select_rows(conn: sa.Connection, table: str, names: Sequence[str],
                filters: Sequence[tuple[str, list[Any]]]) -> Sequence[Sequence[Any]]:
    """The rows of ``names`` whose columns hold one of the given values, as the driver's tuples.

    pd.read_sql builds a Row per row and infers every column's dtype, then the types were restored
    over again: half a wide read. A driver with positional markers gets one plain statement.
    """
    mark = POSITIONAL.get(conn.dialect.paramstyle)
    if mark is None:
        tbl = sa.table(table, *(sa.column(n) for n in dict.fromkeys([*names, *(c for c, _ in filters)])))
        stmt = sa.select(*(tbl.c[n] for n in names)).where(*(tbl.c[c].in_(v) for c, v in filters))
        return conn.execute(stmt).all()
    quote = conn.dialect.identifier_preparer.quote
    conditions = [f"{quote(c)} IN ({', '.join([mark] * len(v))})" if v else "1 = 0" for c, v in filters]
    sql = f"SELECT {', '.join(quote(n) for n in names)} FROM {quote(table)}"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    result = conn.exec_driver_sql(sql, tuple(v for _, values in filters for v in values))
    rows = result.cursor.fetchall()
    result.close()
    return rows


def recorded_kinds(conn: sa.Connection, table: str) -> dict[str, str]:
    """The logical type recorded for each of the table's columns (none before its first write)."""
    if not sa.inspect(conn).has_table(SCHEMA_TABLE):
        return {}
    return dict(conn.execute(
        sa.text(f"SELECT column_name, dtype FROM {SCHEMA_TABLE} WHERE table_name = :t"), {"t": table}).all())
