"""The SQL warehouse (SQLAlchemy 2): SQLite file by default, PostgreSQL (or any URL) by config.

Asset DataFrames are stored as real tables a user can query. Partitioned assets carry a
``_partition`` column; writing a partition deletes the old rows of that partition and
inserts the new ones in one transaction, so re-materializing never duplicates rows.
"""


import os
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from resources.warehouse_read import POSITIONAL, SCHEMA_TABLE, recorded_kinds, select_rows, table_columns
from resources.warehouse_types import db_values, frame_from_rows, from_db, logical_type, settle_kinds, sql_type
from resources.warehouse_url import check_url, mask_url, report_connect_failures

PARTITION_COLUMN = "_partition"
INSERT_CHUNK = 5000  # rows per executemany: bounded memory for the converted rows, few round trips

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The project's data folder (``DATA_DIR`` env var, default ``<repo>/data``)."""
    path = Path(os.getenv("DATA_DIR", PROJECT_ROOT / "data"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_warehouse_url() -> str:
    return f"sqlite:///{data_dir() / 'warehouse.db'}"


_ENGINES: dict[str, sa.Engine] = {}
_ENGINES_LOCK = threading.Lock()
# The connection of a chunked write in progress, by URL: the reads that produce its chunks go
# through it, since SQLite's write lock (taken at BEGIN) would make any other connection wait.
_WRITING: ContextVar[dict[str, sa.Connection]] = ContextVar("warehouse_writing", default={})


def engine_for(url: str) -> sa.Engine:
    """One engine per URL per process; SQLite gets WAL mode and a busy timeout."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            engine = _make_engine(url)
            _ENGINES[url] = engine
        return engine


def _make_engine(url: str) -> sa.Engine:
    check_url(url)  # a missing driver or a bad URL: one error naming WAREHOUSE_URL, not an ImportError per step
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = sa.create_engine(url, pool_pre_ping=True, future=True)
        report_connect_failures(engine)
        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
    report_connect_failures(engine)

    @sa.event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every test
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    # Make SQLite take the write lock at BEGIN, so concurrent writers queue instead of failing.
    @sa.event.listens_for(engine, "begin")
    def _begin_immediate(conn):  # pragma: no cover
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    @sa.event.listens_for(engine, "connect")
    def _no_pysqlite_autobegin(dbapi_conn, _record):  # pragma: no cover
        dbapi_conn.isolation_level = None

    return engine


def make_append_only(conn: sa.Connection, table: str) -> None:
    """Database triggers that refuse UPDATE, DELETE and (PostgreSQL) TRUNCATE on ``table``.

    For history tables (audit log, model alias history): rows can be added, never rewritten.
    SQLite has no TRUNCATE (its ``DELETE FROM t`` fires the delete trigger).
    """
    if conn.dialect.name == "sqlite":
        for op in ("update", "delete"):
            conn.exec_driver_sql(
                f"""CREATE TRIGGER IF NOT EXISTS {table}_no_{op} BEFORE {op.upper()} ON {table}
                BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"""
            )
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            f"""CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION '{table} is append-only'; END; $$ LANGUAGE plpgsql"""
        )
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        conn.exec_driver_sql(
            f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"""
        )
        # TRUNCATE fires no row trigger: without a statement trigger it would empty the table silently
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        conn.exec_driver_sql(
            f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()"""
        )


class Warehouse(dg.ConfigurableResource):
    """The SQL database that holds every table; a SQLite file under the data dir by default.

    Set ``WAREHOUSE_URL`` (e.g. ``postgresql+psycopg://user:pw@host/db``) to use another database.
    """

    url: str = ""

    @property
    def resolved_url(self) -> str:
        return self.url or default_warehouse_url()

    @property
    def engine(self) -> sa.Engine:
        return engine_for(self.resolved_url)

    @property
    def display_url(self) -> str:
        return mask_url(self.resolved_url)

    # ---- reading ---------------------------------------------------------------------------
    @contextmanager
    def _connection(self):
        active = _WRITING.get().get(self.resolved_url)
        if active is not None:
            yield active
            return
        with self.engine.connect() as conn:
            yield conn

    def has_table(self, table: str) -> bool:
        with self._connection() as conn:
            return sa.inspect(conn).has_table(table)

    def columns(self, table: str) -> list[str]:
        """The table's column names (none when it does not exist)."""
        with self._connection() as conn:
            return table_columns(conn, table) or []

    def column_kinds(self, table: str) -> dict[str, str]:
        """The logical type recorded for each of the table's columns (none before its first write)."""
        with self._connection() as conn:
            return recorded_kinds(conn, table)

    def read_table(
        self,
        table: str,
        partitions: Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
        where_in: tuple[str, Sequence[Any]] | None = None,
    ) -> pd.DataFrame:
        """Rows of ``table`` (optionally only the given partitions, or rows whose column ``where_in[0]``
        is one of ``where_in[1]``), with stored dtypes restored."""
        with self._connection() as conn:
            present = table_columns(conn, table)
            if present is None:
                return pd.DataFrame(columns=list(columns) if columns else None)
            names = list(columns) if columns else present
            for name in [*names, *([where_in[0]] if where_in is not None else [])]:
                if name not in present:
                    raise KeyError(f"table {table!r} has no column {name!r} (columns: {', '.join(present)})")
            if partitions is not None and PARTITION_COLUMN not in present:
                raise ValueError(f"table {table!r} is not partitioned; cannot filter by partition")
            filters = ([(PARTITION_COLUMN, list(partitions))] if partitions is not None else []) + (
                [(where_in[0], list(where_in[1]))] if where_in is not None else [])
            rows = select_rows(conn, table, names, filters)
            kinds = recorded_kinds(conn, table)
        return frame_from_rows(names, rows, kinds)

    def query(self, sql: str, **params: Any) -> pd.DataFrame:
        with self.engine.connect() as conn:
            return pd.read_sql(sa.text(sql), conn, params=params)

    def count_rows(self, table: str, partition: str | None = None) -> int:
        if not self.has_table(table):
            return 0
        tbl = sa.table(table, sa.column(PARTITION_COLUMN))
        stmt = sa.select(sa.func.count()).select_from(tbl)
        if partition is not None:
            stmt = stmt.where(tbl.c[PARTITION_COLUMN] == partition)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    # ---- writing ---------------------------------------------------------------------------
    def replace_partition(self, table: str, df: pd.DataFrame, partition: str) -> int:
        """Delete the rows of ``partition`` and insert ``df`` in one transaction."""
        return self.replace_partition_chunks(table, [df], partition)

    def replace_partition_chunks(self, table: str, chunks: Iterable[pd.DataFrame], partition: str,
                                 kinds: Mapping[str, str] | None = None) -> int:
        """Delete the rows of ``partition`` and insert every chunk, in one transaction.

        Chunks are consumed one at a time, so a large partition need never be whole in memory;
        an exception raised while producing one rolls the whole write back. ``kinds`` declares
        columns' logical types, so they do not depend on which values the first chunk has.
        """
        settled: dict[str, str] = {}
        with self.engine.begin() as conn:
            token = _WRITING.set({**_WRITING.get(), self.resolved_url: conn})
            try:
                n = self._write_chunks(conn, table, chunks, partition, dict(kinds or {}), settled)
            finally:
                _WRITING.reset(token)
            if settled:
                self._record_types(conn, table, settled)
        return n

    def _write_chunks(self, conn: sa.Connection, table: str, chunks: Iterable[pd.DataFrame], partition: str,
                      declared: dict[str, str], settled: dict[str, str]) -> int:
        n, guessed = 0, set()
        for i, chunk in enumerate(chunks):
            chunk = chunk.assign(**{PARTITION_COLUMN: partition})  # copy-on-write: columns not copied
            chunk_kinds = settle_kinds(table, chunk, declared, settled, guessed)
            self._ensure_table(conn, table, chunk_kinds)
            if i == 0:
                tbl = sa.table(table, sa.column(PARTITION_COLUMN))  # no reflection: one column is named
                conn.execute(sa.delete(tbl).where(tbl.c[PARTITION_COLUMN] == partition))
            self._insert(conn, table, chunk, chunk_kinds)
            n += len(chunk)
            del chunk  # released before the next is built
        return n

    def replace_table(self, table: str, df: pd.DataFrame) -> int:
        """Replace every row of an unpartitioned table in one transaction (schema kept, columns added)."""
        kinds = {c: logical_type(df[c]) for c in df.columns}
        with self.engine.begin() as conn:
            self._ensure_table(conn, table, kinds)
            conn.execute(sa.delete(sa.table(table)))
            self._insert(conn, table, df, kinds)
            self._record_types(conn, table, kinds)
        return len(df)

    # ---- schema helpers --------------------------------------------------------------------
    def _ensure_table(self, conn: sa.Connection, table: str, kinds: Mapping[str, str]) -> None:
        """Create the table with these columns (name -> logical type) or add the ones it is missing."""
        insp = sa.inspect(conn)
        if not insp.has_table(table):
            meta = sa.MetaData()
            cols = [sa.Column(name, sql_type(kind)) for name, kind in kinds.items()]
            t = sa.Table(table, meta, *cols)
            if PARTITION_COLUMN in kinds:
                sa.Index(f"ix_{table}_partition", t.c[PARTITION_COLUMN])
            meta.create_all(conn)
        else:
            existing = {c["name"] for c in insp.get_columns(table)}
            for name, kind in kinds.items():
                if name not in existing:
                    col_type = sql_type(kind).compile(dialect=conn.dialect)
                    conn.execute(sa.text(f'ALTER TABLE "{table}" ADD COLUMN "{name}" {col_type}'))

    def _record_types(self, conn: sa.Connection, table: str, kinds: Mapping[str, str]) -> None:
        meta = sa.MetaData()
        types = sa.Table(
            SCHEMA_TABLE,
            meta,
            sa.Column("table_name", sa.String(200), primary_key=True),
            sa.Column("column_name", sa.String(200), primary_key=True),
            sa.Column("dtype", sa.String(50), nullable=False),
        )
        meta.create_all(conn, checkfirst=True)
        rows = [{"table_name": table, "column_name": c, "dtype": kind} for c, kind in kinds.items()]
        conn.execute(sa.delete(types).where(types.c.table_name == table, types.c.column_name.in_(list(kinds))))
        if rows:
            conn.execute(sa.insert(types), rows)

    def _restore_types(self, table: str, df: pd.DataFrame) -> pd.DataFrame:
        """``df`` (rows of ``table`` read by other means, e.g. ``query``) with the recorded dtypes."""
        if df.empty and not len(df.columns):
            return df
        for col, kind in self.column_kinds(table).items():
            if col in df.columns:
                values = df[col].astype(object)
                restored = from_db(values.where(values.notna(), None).tolist(), kind)
                df[col] = pd.Series(restored, index=df.index, dtype=restored.dtype)
        return df

    @staticmethod
    def _insert(conn: sa.Connection, table: str, df: pd.DataFrame, kinds: Mapping[str, str]) -> None:
        """Insert ``df`` a chunk at a time: one executemany per chunk, rows converted only for their chunk."""
        if df.empty:
            return
        names = list(df.columns)
        mark = POSITIONAL.get(conn.dialect.paramstyle)
        tbl = None if mark else sa.Table(table, sa.MetaData(), autoload_with=conn)
        quote = conn.dialect.identifier_preparer.quote
        # one plain positional INSERT through the driver: SQLAlchemy's compiled insert costs a
        # parameter dict and its processing per row, a third of a wide table's write
        sql = (f"INSERT INTO {quote(table)} ({', '.join(quote(n) for n in names)}) "
               f"VALUES ({', '.join([mark or '?'] * len(names))})")
        for start in range(0, len(df), INSERT_CHUNK):
            part = df.iloc[start : start + INSERT_CHUNK]
            columns = [db_values(part[c], kinds[c]) for c in names]
            if tbl is None:
                conn.exec_driver_sql(sql, list(zip(*columns)))
            else:
                conn.execute(sa.insert(tbl), [dict(zip(names, row)) for row in zip(*columns)])


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Stores each asset's DataFrame as a warehouse table named after the asset.

    Partitioned assets: delete-then-insert of the partition's rows in one transaction.
    Unpartitioned assets: the table's rows are replaced in one transaction.
    """

    warehouse: dg.ResourceDependency[Warehouse]

    @staticmethod
    def table_for(key: dg.AssetKey) -> str:
        """``family/asset`` -> ``family__asset``: one plain SQL table per asset."""
        return "__".join(key.path)

    def _table(self, context: dg.OutputContext | dg.InputContext) -> str:
        return self.table_for(context.asset_key)

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | None) -> None:
        if obj is None:
            return
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(
                f"WarehouseIOManager stores DataFrames; asset {context.asset_key.to_user_string()} "
                f"returned {type(obj).__name__}"
            )
        table = self._table(context)
        partition = None
        if context.has_asset_partitions:
            keys = context.asset_partition_keys
            if len(keys) != 1:
                raise ValueError(f"{table}: one partition per write expected, got {len(keys)}")
            partition = keys[0]
        context.add_output_metadata(store(self.warehouse, table, obj, partition))

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        table = self._table(context.upstream_output) if context.upstream_output else self.table_for(context.asset_key)
        partitions = None
        if context.has_asset_partitions:
            partitions = list(context.asset_partition_keys)
        df = self.warehouse.read_table(table, partitions=partitions)
        # the partition column is a storage detail; assets see the rows as they returned them
        return df.drop(columns=[PARTITION_COLUMN], errors="ignore")


def store(warehouse: Warehouse, table: str, df: pd.DataFrame, partition: str | None) -> dict[str, Any]:
    """Write ``df`` as ``partition`` of ``table`` (the whole table when None); the write's metadata.

    Assets with large outputs write through this and return a ``MaterializeResult``: an output
    returned to Dagster stays referenced for the rest of an ``execute_in_process`` run (it keeps
    every output for the result object), so a 100,000-row batch held every step's frame at once.
    """
    n = warehouse.replace_partition(table, df, partition) if partition is not None else warehouse.replace_table(table, df)
    return {
        "warehouse_table": dg.MetadataValue.text(table),
        "warehouse": dg.MetadataValue.text(warehouse.display_url),
        "rows_written": dg.MetadataValue.int(n),
    }
