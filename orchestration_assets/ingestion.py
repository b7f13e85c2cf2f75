"""Ingestion assets of a family: its batches (valid and quarantined records) and its context lookups."""

from pathlib import Path

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from resources.sources import Inbox
from resources.warehouse import PARTITION_COLUMN, Warehouse, store

from .core.lookups import read_lookup
from .core.records import BatchFileError, ParseResult, parse_file, quarantine_ids_seen_elsewhere
from .family import Family
from .partitions import batches
from .spec import WorkflowSpec
from .ui_metadata import column_schema, counts_md, preview_md

_SCHEMA_TYPES = {"string": "string", "email": "string (e-mail)", "timestamp": "timestamp (UTC)",
                 "integer": "int", "number": "float", "boolean": "bool"}


def raw_schema(family: Family) -> dg.TableSchema:
    cols = {"record_id": f"string (= {family.id_field})"}
    for name, f in family.record.fields.items():
        cols[name] = _SCHEMA_TYPES[f.type] + (" required" if f.required else "")
    cols.update({"source_file": "string", "source_row": "int", "input_hash": "string", "ingested_at": "timestamp (UTC)"})
    return column_schema(cols)


def inbox_folder(family: Family, inbox: Inbox):
    return inbox.folder(family.name, family.spec.source.inbox)


def read_batch(path: Path, spec: WorkflowSpec) -> ParseResult:
    """The parsed batch file; a file that is not text of its format fails the run with the file's reason, once."""
    try:
        return parse_file(path, spec.record, spec.source.formats)
    except BatchFileError as exc:
        # retrying cannot change the file's bytes; the reason says what to export instead
        raise dg.Failure(description=str(exc), metadata={"source_file": dg.MetadataValue.path(str(path))},
                         allow_retries=False) from None


def timestamp_reading(spec: WorkflowSpec) -> str:
    ts = spec.record.timestamps
    order = ts.date_order or "not declared (a date that reads both ways is quarantined)"
    return f"times without an offset read in {ts.timezone}; day/month order {order}; years {ts.min_year}-{ts.max_year}"


def batch_asset(family: Family) -> dg.AssetsDefinition:
    spec = family.spec

    @dg.multi_asset(
        name=f"{family.name}__batch",
        outs={
            "raw_records": dg.AssetOut(
                key=dg.AssetKey(family.key("raw_records")),
                group_name=family.group("ingestion"),
                description=(
                    f"Valid records of one {family.name} batch file; one row per `{family.id_field}`.\n\n"
                    "Partitioned by batch file. Every input row ends here or in `quarantined_records`."
                ),
                kinds={"python", "pandas", "sql"},
                owners=family.owners,
                code_version="2",
                metadata={"dagster/column_schema": raw_schema(family)},
            ),
            "quarantined_records": dg.AssetOut(
                key=dg.AssetKey(family.key("quarantined_records")),
                group_name=family.group("ingestion"),
                description=(
                    "Rows of a batch file that failed parsing or validation; one row per rejected input "
                    "row with the file, row number, field(s) and reason."
                ),
                kinds={"python", "pandas", "sql"},
                owners=family.owners,
                code_version="2",
            ),
        },
        partitions_def=batches(family),
    )
    def batch(context: dg.AssetExecutionContext, inbox: Inbox, warehouse: Warehouse):
        key = context.partition_key
        path = inbox.file_for(inbox_folder(family, inbox), key, context.run.tags)  # refuses content the run was not launched for
        parsed = read_batch(path, spec)
        # a record id already ingested from another batch would be enriched (and paid for) twice
        table = family.table("raw_records")
        seen: dict[str, str] = {}
        if warehouse.has_table(table) and not parsed.records.empty:
            seen = ids_elsewhere(warehouse, table, key, parsed.records["record_id"].astype(str).tolist())
        parsed = quarantine_ids_seen_elsewhere(parsed, seen, family.id_field)
        records = parsed.records.copy()
        records["ingested_at"] = pd.Timestamp.now(tz="UTC")
        quarantined = parsed.quarantined
        for err in parsed.file_errors:
            context.log.warning(err)
        if parsed.naive_timestamps:
            context.log.info(f"{path.name}: {parsed.naive_timestamps} timestamp(s) without a UTC offset "
                             f"read in {spec.record.timestamps.timezone}")
        if len(quarantined):
            first = quarantined.iloc[0]
            context.log.warning(f"{path.name}: {len(quarantined)} of {parsed.rows_in} rows quarantined; "
                                f"first: row {first['source_row']}: {first['reason']}")
        if parsed.rows_in != len(records) + len(quarantined):  # the guarantee every later step relies on
            raise dg.Failure(f"{path.name}: row accounting broken: {parsed.rows_in} in, "
                             f"{len(records)} valid, {len(quarantined)} quarantined")
        by_field = quarantined["field"].value_counts().to_dict() if len(quarantined) else {}
        preview = ["record_id", *spec.record.fields][:7]
        yield dg.MaterializeResult(asset_key=dg.AssetKey(family.key("raw_records")), metadata={
            **store(warehouse, family.table("raw_records"), records, key),
            "source_file": dg.MetadataValue.path(str(path)),
            "rows_in": parsed.rows_in,
            "rows_ok": len(records),
            "rows_quarantined": len(quarantined),
            "dagster/row_count": len(records),
            "file_errors": dg.MetadataValue.text("; ".join(parsed.file_errors) or "none"),
            "naive_timestamps": parsed.naive_timestamps,
            "timestamp_reading": dg.MetadataValue.text(timestamp_reading(spec)),
            "preview": preview_md(records, preview),
        })
        yield dg.MaterializeResult(asset_key=dg.AssetKey(family.key("quarantined_records")), metadata={
            **store(warehouse, family.table("quarantined_records"), quarantined, key),
            "rows_in": parsed.rows_in,
            "rows_quarantined": len(quarantined),
            "dagster/row_count": len(quarantined),
            "by_field": counts_md(by_field, "field"),
            "preview": preview_md(quarantined, ["source_file", "source_row", "record_id", "field", "reason"]),
        })

    return batch


def ids_elsewhere(warehouse: Warehouse, table: str, partition: str, ids: list[str]) -> dict[str, str]:
    """Which of ``ids`` another partition of ``table`` already holds: {record id: that partition}.

    Asked a chunk of ids at a time, so the read grows with the batch, not with every batch ever ingested.
    """
    tbl = sa.Table(table, sa.MetaData(), autoload_with=warehouse.engine)
    seen: dict[str, str] = {}
    with warehouse.engine.connect() as conn:
        for start in range(0, len(ids), 500):
            stmt = sa.select(tbl.c.record_id, tbl.c[PARTITION_COLUMN]).where(
                tbl.c[PARTITION_COLUMN] != partition, tbl.c.record_id.in_(ids[start:start + 500]))
            seen.update(conn.execute(stmt).all())
    return seen


def lookup_asset(family: Family, name: str) -> dg.AssetsDefinition:
    lk = family.spec.context[name]
    source = lk.file or (f"table {lk.sql.table}" if lk.sql.table else "a SQL query")
    described = lk.description.strip() or f"Context lookup {name!r}; one row per {lk.key}."
    kinds = {"python", "pandas", "sql"} | ({"csv"} if (lk.file or "").endswith(".csv") else set())

    @dg.asset(
        key=dg.AssetKey(family.key(name)),
        group_name=family.group("ingestion"),
        description=f"{described}\n\nRead from {source}; every row validated against the spec's columns.",
        kinds=kinds,
        owners=lk.owners or family.owners,
        code_version="2",
    )
    def lookup() -> dg.Output[pd.DataFrame]:
        df = read_lookup(name, lk, family.root)
        preview = list(lk.columns)[:6]
        meta: dict = {"dagster/row_count": len(df), "preview": preview_md(df, preview)}
        if lk.min_rows and len(df) < lk.min_rows:  # the has_min_rows check fails on it too
            meta["warning"] = dg.MetadataValue.text(f"{len(df)} rows; the spec expects at least {lk.min_rows}")
        for col, spec in lk.columns.items():
            if spec.values is not None and len(df):
                meta[f"values.{col}"] = counts_md(df[col].value_counts().to_dict(), col)
        return dg.Output(df, metadata=meta)

    return lookup


def ingestion_assets(family: Family) -> list[dg.AssetsDefinition]:
    return [batch_asset(family), *(lookup_asset(family, name) for name in family.spec.context)]
