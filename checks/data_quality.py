"""Data checks on a family's ingested tables: Great Expectations validations as Dagster asset checks.

The expectations come from the spec: the record's fields (required, allowed values, lengths,
timestamps) and each lookup's columns (key, required, values, ranges, row count). One
``multi_asset_check`` per table validates the selected checks in one GX run (for ``raw_records``
only the partition the run materialized) and yields one result per named check. The id check on
``raw_records`` is blocking: a duplicate or missing id would be enriched, paid for and
dispatched twice.
"""

from typing import Any, Iterator, Sequence

import dagster as dg

from orchestration_assets.family import Family
from orchestration_assets.partitions import batches
from resources.warehouse import PARTITION_COLUMN, Warehouse

from .expectations import SAMPLE_SIZE, DataCheck, ValidationSummary, expect, failure_description, \
    outcomes_markdown, run_data_checks

# a date, optionally a time (space or T) with seconds and a fraction and an offset; month, day, hour, minute
# and second in range (2026-13-45 fails, as it failed dateutil's parser)
ISO_8601 = (r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
            r"([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,9})?)?(Z|[+-]([01]\d|2[0-3]):?[0-5]\d)?)?$")


def record_checks(family: Family) -> list[DataCheck]:
    spec = family.record
    checks = [
        DataCheck(
            "record_ids_unique_and_present",
            f"Every record has an id ({spec.id}) and no id appears twice. Blocking: a duplicate would be "
            "enriched, paid for and dispatched twice.",
            (expect("expect_column_values_to_not_be_null", column="record_id"),
             expect("expect_column_values_to_be_unique", column="record_id")),
            blocking=True,
        ),
        DataCheck(
            "columns_match_record_spec",
            "Every field of the record spec is a column (extra columns are allowed).",
            (expect("expect_table_columns_to_match_set", column_set=["record_id", *spec.fields], exact_match=False),),
        ),
    ]
    required = [n for n, f in spec.fields.items() if f.required and n != spec.id]
    if required:
        checks.append(DataCheck("required_fields_present", f"Required fields are filled: {', '.join(required)}.",
                                tuple(expect("expect_column_values_to_not_be_null", column=n) for n in required)))
    for name, f in spec.fields.items():
        if f.values is not None:
            checks.append(DataCheck(f"{name}_in_allowed_set", f"{name} is one of {', '.join(f.values)}.",
                                    (expect("expect_column_values_to_be_in_set", column=name, value_set=list(f.values)),),
                                    severity="WARN"))
        if f.type == "timestamp":
            # the warehouse restores a timestamp column as datetimes, whose text is ISO 8601: one vectorised
            # regex holds them (a column stored as text is held to ISO 8601, the form ingestion writes)
            checks.append(DataCheck(f"{name}_parseable", f"{name} is a timestamp that parses.",
                                    (expect("expect_column_values_to_match_regex", column=name, regex=ISO_8601),),
                                    severity="WARN"))
        if f.min_length is not None or f.max_length is not None:
            bounds = {k: v for k, v in (("min_value", f.min_length), ("max_value", f.max_length)) if v is not None}
            checks.append(DataCheck(f"{name}_length_within_bounds", f"{name} is {f.min_length or 0} to "
                                    f"{f.max_length or 'any'} characters long.",
                                    (expect("expect_column_value_lengths_to_be_between", column=name, **bounds),),
                                    severity="WARN", mask_values=name in spec.text))
    return checks


def lookup_checks(family: Family, name: str) -> list[DataCheck]:
    lk = family.spec.context[name]
    checks = [DataCheck(
        f"{lk.key}_unique_and_present",
        f"Every row has a {lk.key} and no {lk.key} appears twice (a duplicate would fan out the rows joined to it).",
        (expect("expect_column_values_to_not_be_null", column=lk.key),
         expect("expect_column_values_to_be_unique", column=lk.key)),
    )]
    for col, c in lk.columns.items():
        if col == lk.key:
            continue
        exps = []
        if c.required:
            exps.append(expect("expect_column_values_to_not_be_null", column=col))
        if c.values is not None:
            exps.append(expect("expect_column_values_to_be_in_set", column=col, value_set=list(c.values)))
        if c.min is not None or c.max is not None:
            bounds = {k: v for k, v in (("min_value", c.min), ("max_value", c.max)) if v is not None}
            exps.append(expect("expect_column_values_to_be_between", column=col, strict_min=c.strict_min, **bounds))
        if c.min_length is not None:
            exps.append(expect("expect_column_value_lengths_to_be_between", column=col, min_value=c.min_length))
        if exps:
            checks.append(DataCheck(f"{col}_valid", f"{col}: " + ", ".join(e.type.removeprefix("expect_column_values_to_")
                                                                         for e in exps), tuple(exps), severity="WARN"))
    if lk.min_rows:
        checks.append(DataCheck("has_min_rows", f"The lookup holds at least {lk.min_rows} rows.",
                                (expect("expect_table_row_count_to_be_between", min_value=lk.min_rows),),
                                severity="WARN"))
    return checks


def _check_result(key: dg.AssetKey, table: str, check: DataCheck, summary: ValidationSummary,
                  partition: str | None) -> dg.AssetCheckResult:
    sample = summary.sample_unexpected
    if check.mask_values:
        sample = [f"<{len(v)} chars>" if isinstance(v, str) else v for v in sample]
    metadata: dict[str, Any] = {
        "rows_validated": dg.MetadataValue.int(summary.rows),
        "failing_expectations": dg.MetadataValue.text("; ".join(o.expectation.describe() for o in summary.failed) or "none"),
        "unexpected_count": dg.MetadataValue.int(summary.unexpected_count),
        "unexpected_sample": dg.MetadataValue.json(sample),
        "failing_rows_sample": dg.MetadataValue.json([dict(r) for o in summary.failed for r in o.sample_rows][:SAMPLE_SIZE]),
        "expectations": dg.MetadataValue.md(outcomes_markdown(summary, check.mask_values)),
        "warehouse_table": dg.MetadataValue.text(table),
    }
    if partition is not None:
        metadata["partition"] = dg.MetadataValue.text(partition)
    errors = [o.error for o in summary.failed if o.error]
    if errors:
        metadata["errors"] = dg.MetadataValue.text("; ".join(errors))
    return dg.AssetCheckResult(
        asset_key=key, check_name=check.name, passed=summary.success, severity=dg.AssetCheckSeverity(check.severity),
        metadata=metadata, description=failure_description(summary),
    )


def table_checks(family: Family, asset: str, checks: Sequence[DataCheck], *, partitioned: bool,
                 id_columns: Sequence[str] = ()) -> dg.AssetChecksDefinition:
    key, table = dg.AssetKey(family.key(asset)), family.table(asset)
    partitions_def = batches(family) if partitioned else None
    specs = [dg.AssetCheckSpec(c.name, asset=key, description=c.description, blocking=c.blocking,
                               partitions_def=partitions_def) for c in checks]
    by_name = {c.name: c for c in checks}

    @dg.multi_asset_check(name=f"{family.name}__{asset}_data_checks", specs=specs, can_subset=True,
                          compute_kind="great_expectations", description=f"Great Expectations data checks on {asset}.")
    def _checks(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> Iterator[dg.AssetCheckResult]:
        partitions = list(context.partition_keys) if partitioned else None
        df = warehouse.read_table(table, partitions=partitions).drop(columns=[PARTITION_COLUMN], errors="ignore")
        selected = [by_name[k.name] for k in context.selected_asset_check_keys]
        summaries = run_data_checks(df, selected, id_columns=id_columns)
        label = ", ".join(partitions) if partitions else None
        for check in selected:
            result = _check_result(key, table, check, summaries[check.name], label)
            if not result.passed:
                context.log.warning(f"{family.name}/{asset} check {check.name} failed: {result.description}")
            yield result

    return _checks


def data_quality_checks(family: Family) -> list[dg.AssetChecksDefinition]:
    out = [table_checks(family, "raw_records", record_checks(family), partitioned=True,
                        id_columns=("record_id", "source_row"))]
    for name, lk in family.spec.context.items():
        out.append(table_checks(family, name, lookup_checks(family, name), partitioned=False, id_columns=(lk.key,)))
    return out
