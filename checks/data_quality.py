"""Data checks on the ingested tables: Great Expectations validations surfaced as Dagster asset checks.

Two layers in this module:

* Plain logic, no Dagster: :class:`Expectation` names a Great Expectations expectation and its
  arguments; :func:`validate_dataframe` runs a list of them against a DataFrame in an ephemeral
  GX context and returns a :class:`ValidationSummary` (per expectation: success, unexpected
  count, a sample of the unexpected values and the ids of the rows that hold them).
* Thin Dagster checks: one ``@dg.multi_asset_check`` per table reads the table (for
  ``raw_tickets`` only the partition the run materialized), validates every selected check's
  expectations in one GX run, and yields one ``AssetCheckResult`` per named check.

``great_expectations`` takes ~5-7 s to import, so it is imported inside :func:`validate_dataframe`
only; loading the code location never pays for it.
"""

import os
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Callable, Iterator, Literal, Mapping, Sequence, get_args

import dagster as dg
import pandas as pd

from orchestration_assets.core.tickets import BODY_MAX_CHARS, BODY_MIN_CHARS, CHANNELS
from orchestration_assets.ingestion import ticket_batches
from resources.sources import AccountRow
from resources.warehouse import PARTITION_COLUMN, Warehouse

SAMPLE_SIZE = 10
_MAX_VALUE_CHARS = 80

# ---------------------------------------------------------------------------------------------
# Plain logic: run expectations with Great Expectations, summarise the outcome
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    """One Great Expectations expectation by its type name, e.g. ``expect_column_values_to_be_unique``."""

    type: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column")

    def describe(self) -> str:
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.kwargs.items())
        return f"{self.type}({args})"


def expect(type_: str, **kwargs: Any) -> Expectation:
    """Shorthand: ``expect("expect_column_values_to_not_be_null", column="ticket_id")``."""
    return Expectation(type_, dict(kwargs))


@dataclass(frozen=True)
class ExpectationOutcome:
    """How one expectation fared on the data."""

    expectation: Expectation
    success: bool
    unexpected_count: int = 0
    unexpected_percent: float | None = None
    # distinct unexpected values (or, for a schema expectation, the missing columns)
    sample_unexpected: tuple[Any, ...] = ()
    # the id columns of some rows holding unexpected values, e.g. {"ticket_id": "T-1", "source_row": 4}
    sample_rows: tuple[Mapping[str, Any], ...] = ()
    observed_value: Any = None
    # set when the expectation could not be evaluated (e.g. its column is missing)
    error: str | None = None


@dataclass(frozen=True)
class ValidationSummary:
    """The outcome of validating one DataFrame against a list of expectations."""

    rows: int
    outcomes: tuple[ExpectationOutcome, ...]

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failed(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.success)

    @property
    def unexpected_count(self) -> int:
        return sum(o.unexpected_count for o in self.failed)

    @property
    def sample_unexpected(self) -> list[Any]:
        values: list[Any] = []
        for o in self.failed:
            values.extend(v for v in o.sample_unexpected if v not in values)
        return values[:SAMPLE_SIZE]

    def outcome(self, type_: str, column: str | None = None) -> ExpectationOutcome:
        """The outcome of the expectation of this type (on this column)."""
        for o in self.outcomes:
            if o.expectation.type == type_ and (column is None or o.expectation.column == column):
                return o
        raise KeyError(f"no expectation {type_} on column {column!r} in this summary")

    def subset(self, expectations: Sequence[Expectation]) -> "ValidationSummary":
        """The part of this summary that covers ``expectations`` (same objects, same order)."""
        wanted = {id(e) for e in expectations}
        return ValidationSummary(self.rows, tuple(o for o in self.outcomes if id(o.expectation) in wanted))


def validate_dataframe(
    df: pd.DataFrame,
    expectations: Sequence[Expectation],
    *,
    id_columns: Sequence[str] = (),
    sample_size: int = SAMPLE_SIZE,
) -> ValidationSummary:
    """Validate ``df`` against ``expectations`` with Great Expectations (ephemeral context, pandas).

    ``id_columns`` (those present in ``df``) are reported for a sample of failing rows so a
    reader can find them. An expectation that cannot be evaluated (missing column, wrong type)
    counts as failed with ``error`` set; nothing is swallowed.
    """
    if not expectations:
        return ValidationSummary(len(df), ())
    gx, ExpectationConfiguration = _import_gx()

    context = gx.get_context(mode="ephemeral")
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    run_id = uuid.uuid4().hex[:12]
    batch_definition = (
        context.data_sources.add_pandas(f"pandas_{run_id}")
        .add_dataframe_asset(f"frame_{run_id}")
        .add_batch_definition_whole_dataframe("whole_frame")
    )
    suite = gx.ExpectationSuite(
        name=f"suite_{run_id}",
        expectations=[
            ExpectationConfiguration(type=e.type, kwargs=dict(e.kwargs), meta={"index": i}).to_domain_obj()
            for i, e in enumerate(expectations)
        ],
    )
    suite = context.suites.add(suite)
    validation = gx.ValidationDefinition(name=f"validation_{run_id}", data=batch_definition, suite=suite)
    present_ids = [c for c in id_columns if c in df.columns]
    result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": sample_size}
    if present_ids:
        result_format["unexpected_index_column_names"] = present_ids
        result_format["return_unexpected_index_query"] = False
    result = validation.run(batch_parameters={"dataframe": df}, result_format=result_format)

    by_index: dict[int, ExpectationOutcome] = {}
    for r in result.results:
        index = int(r.expectation_config.meta["index"])
        by_index[index] = _outcome(expectations[index], r, sample_size)
    return ValidationSummary(len(df), tuple(by_index[i] for i in range(len(expectations))))


def _import_gx():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    return gx, ExpectationConfiguration


def _outcome(expectation: Expectation, r: Any, sample_size: int) -> ExpectationOutcome:
    res = dict(r.result or {})
    error = _exception_message(r.exception_info)
    unexpected_count = int(res.get("unexpected_count") or 0)
    sample = _distinct(res.get("partial_unexpected_list") or [], sample_size)
    details = res.get("details") or {}
    missing = (details.get("mismatched") or {}).get("missing") if isinstance(details, dict) else None
    if missing:  # schema expectation: the "unexpected values" are the missing columns
        sample = _distinct(missing, sample_size)
        unexpected_count = len(missing)
    rows = tuple(
        {k: _clean(v) for k, v in row.items() if k != expectation.column}
        for row in (res.get("partial_unexpected_index_list") or [])[:sample_size]
        if isinstance(row, dict)
    )
    pct = res.get("unexpected_percent")
    return ExpectationOutcome(
        expectation=expectation,
        success=bool(r.success),
        unexpected_count=unexpected_count,
        unexpected_percent=None if pct is None else round(float(pct), 3),
        sample_unexpected=tuple(sample),
        sample_rows=rows,
        observed_value=_clean(res.get("observed_value")),
        error=error,
    )


def _exception_message(info: Any) -> str | None:
    if not info:
        return None
    if "raised_exception" in info:  # flat form
        return info.get("exception_message") if info.get("raised_exception") else None
    messages = [v.get("exception_message") for v in info.values() if isinstance(v, dict) and v.get("raised_exception")]
    return "; ".join(m for m in messages if m) or None


def _clean(value: Any) -> Any:
    """A JSON-friendly, short rendering of one value (NaN/NaT become None)."""
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value[:SAMPLE_SIZE]]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, (pd.Timestamp, datetime, date)):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, str) and len(value) > _MAX_VALUE_CHARS:
        return value[: _MAX_VALUE_CHARS - 1] + "…"
    return value


def _distinct(values: Sequence[Any], limit: int) -> list[Any]:
    out: list[Any] = []
    for v in values:
        c = _clean(v)
        if c not in out:
            out.append(c)
        if len(out) >= limit:
            break
    return out


def _short(value: Any) -> str:
    text = repr(list(value) if isinstance(value, (tuple, set, frozenset)) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def timestamps_as_text(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """``df`` with a datetime ``column`` rendered as ISO-8601 text (NaT -> None), for GX's parse checks.

    The warehouse restores timestamps with ``errors="coerce"``: a stored value that does not parse
    comes back as NaT, so "parseable" means "not null and dateutil-parseable as text".
    """
    if column not in df.columns:
        return df
    out = df.copy()
    out[column] = df[column].map(_timestamp_text).astype(object)
    return out


def _timestamp_text(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, (pd.Timestamp, datetime, date)):
        return value.isoformat()
    return str(value)


# ---------------------------------------------------------------------------------------------
# What each table must satisfy: one named check -> the expectations it asserts
# ---------------------------------------------------------------------------------------------

RAW_TICKET_COLUMNS: tuple[str, ...] = (
    "ticket_id", "account_id", "customer_email", "created_at", "channel", "priority", "category",
    "subject", "body", "source_file", "source_row", "input_hash", "ingested_at",
)
ACCOUNT_TIERS: tuple[str, ...] = get_args(AccountRow.model_fields["tier"].annotation)
MIN_KB_ARTICLES = 20

Severity = Literal["ERROR", "WARN"]


@dataclass(frozen=True)
class DataCheck:
    """A named asset check: the expectations it asserts and how bad a failure is."""

    name: str
    description: str
    expectations: tuple[Expectation, ...]
    severity: Severity = "ERROR"
    blocking: bool = False
    # free text (ticket bodies) may hold PII: metadata then shows each value's length, not the text
    mask_values: bool = False


RAW_TICKET_CHECKS: tuple[DataCheck, ...] = (
    DataCheck(
        "columns_match_ticket_schema",
        "Every column of the ticket schema is present (extra columns are allowed).",
        (expect("expect_table_columns_to_match_set", column_set=list(RAW_TICKET_COLUMNS), exact_match=False),),
    ),
    DataCheck(
        "ticket_ids_unique_and_present",
        "Every ticket has a ticket_id and no id appears twice. Blocking: a duplicate would be "
        "enriched, paid for and dispatched twice.",
        (
            expect("expect_column_values_to_not_be_null", column="ticket_id"),
            expect("expect_column_values_to_be_unique", column="ticket_id"),
        ),
        blocking=True,
    ),
    DataCheck(
        "account_ids_present",
        "Every ticket names its account (routing and VIP rules need it).",
        (expect("expect_column_values_to_not_be_null", column="account_id"),),
    ),
    DataCheck(
        "channels_in_allowed_set",
        f"channel is one of {', '.join(CHANNELS)}.",
        (expect("expect_column_values_to_be_in_set", column="channel", value_set=list(CHANNELS)),),
        severity="WARN",
    ),
    DataCheck(
        "created_at_parseable",
        "Every ticket has a created_at timestamp that parses.",
        (
            expect("expect_column_values_to_not_be_null", column="created_at"),
            expect("expect_column_values_to_be_dateutil_parseable", column="created_at"),
        ),
        severity="WARN",
    ),
    DataCheck(
        "body_lengths_within_bounds",
        f"Ticket bodies are {BODY_MIN_CHARS} to {BODY_MAX_CHARS} characters long.",
        (
            expect("expect_column_values_to_not_be_null", column="body"),
            expect(
                "expect_column_value_lengths_to_be_between",
                column="body", min_value=BODY_MIN_CHARS, max_value=BODY_MAX_CHARS,
            ),
        ),
        severity="WARN",
        mask_values=True,
    ),
)

CRM_ACCOUNT_CHECKS: tuple[DataCheck, ...] = (
    DataCheck(
        "account_ids_unique_and_present",
        "Every account has an account_id and no id appears twice (a duplicate would fan out tickets "
        "joined to it).",
        (
            expect("expect_column_values_to_not_be_null", column="account_id"),
            expect("expect_column_values_to_be_unique", column="account_id"),
        ),
    ),
    DataCheck(
        "tiers_in_allowed_set",
        f"tier is one of {', '.join(ACCOUNT_TIERS)}.",
        (expect("expect_column_values_to_be_in_set", column="tier", value_set=list(ACCOUNT_TIERS)),),
        severity="WARN",
    ),
    DataCheck(
        "arr_non_negative",
        "Annual recurring revenue (arr_usd) is never negative.",
        (expect("expect_column_values_to_be_between", column="arr_usd", min_value=0),),
        severity="WARN",
    ),
)

PRODUCT_CATALOG_CHECKS: tuple[DataCheck, ...] = (
    DataCheck(
        "skus_unique_and_present",
        "Every product has a sku and no sku appears twice.",
        (
            expect("expect_column_values_to_not_be_null", column="sku"),
            expect("expect_column_values_to_be_unique", column="sku"),
        ),
    ),
    DataCheck(
        "prices_positive",
        "Every price_usd is greater than zero.",
        (
            expect("expect_column_values_to_not_be_null", column="price_usd"),
            expect("expect_column_values_to_be_between", column="price_usd", min_value=0, strict_min=True),
        ),
        severity="WARN",
    ),
)

KNOWLEDGE_BASE_CHECKS: tuple[DataCheck, ...] = (
    DataCheck(
        "article_ids_unique_and_present",
        "Every article has an article_id and no id appears twice (drafts cite articles by id).",
        (
            expect("expect_column_values_to_not_be_null", column="article_id"),
            expect("expect_column_values_to_be_unique", column="article_id"),
        ),
    ),
    DataCheck(
        "article_bodies_non_empty",
        "Every article has a non-empty body to ground drafts in.",
        (
            expect("expect_column_values_to_not_be_null", column="body"),
            expect("expect_column_value_lengths_to_be_between", column="body", min_value=1),
        ),
        severity="WARN",
    ),
    DataCheck(
        "has_min_article_count",
        f"The knowledge base holds at least {MIN_KB_ARTICLES} articles.",
        (expect("expect_table_row_count_to_be_between", min_value=MIN_KB_ARTICLES),),
        severity="WARN",
    ),
)


def run_data_checks(
    df: pd.DataFrame, checks: Sequence[DataCheck], *, id_columns: Sequence[str] = ()
) -> dict[str, ValidationSummary]:
    """Validate ``df`` once against every check's expectations; one summary per check name."""
    expectations = [e for c in checks for e in c.expectations]
    summary = validate_dataframe(df, expectations, id_columns=id_columns)
    return {c.name: summary.subset(c.expectations) for c in checks}


def failure_description(summary: ValidationSummary) -> str:
    """One readable line: which expectations failed and how often."""
    if summary.success:
        return f"all {len(summary.outcomes)} expectation(s) passed on {summary.rows} rows"
    parts = []
    for o in summary.failed:
        what = o.error or (
            f"{o.unexpected_count} unexpected" if o.unexpected_count else f"observed {_short(o.observed_value)}"
        )
        parts.append(f"{o.expectation.describe()}: {what}")
    return f"{len(summary.failed)} of {len(summary.outcomes)} expectation(s) failed on {summary.rows} rows: " + "; ".join(parts)


def outcomes_markdown(summary: ValidationSummary, mask_values: bool = False) -> str:
    """A markdown table of every expectation's outcome (text values shown as lengths when masked)."""
    lines = ["| expectation | passed | unexpected | sample |", "|---|---|---|---|"]
    for o in summary.outcomes:
        values = [f"<{len(v)} chars>" if mask_values and isinstance(v, str) else _short(v) for v in o.sample_unexpected]
        sample = o.error or ", ".join(values) or "-"
        lines.append(
            f"| `{o.expectation.describe()}` | {'yes' if o.success else '**no**'} | {o.unexpected_count} | "
            f"{sample.replace('|', '/')} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Dagster: thin asset checks over the warehouse tables
# ---------------------------------------------------------------------------------------------


def _check_result(asset: str, check: DataCheck, summary: ValidationSummary, partition: str | None) -> dg.AssetCheckResult:
    sample = summary.sample_unexpected
    if check.mask_values:
        sample = [f"<{len(v)} chars>" if isinstance(v, str) else v for v in sample]
    metadata: dict[str, Any] = {
        "rows_validated": dg.MetadataValue.int(summary.rows),
        "failing_expectations": dg.MetadataValue.text(
            "; ".join(o.expectation.describe() for o in summary.failed) or "none"
        ),
        "unexpected_count": dg.MetadataValue.int(summary.unexpected_count),
        "unexpected_sample": dg.MetadataValue.json(sample),
        "failing_rows_sample": dg.MetadataValue.json(
            [dict(r) for o in summary.failed for r in o.sample_rows][:SAMPLE_SIZE]
        ),
        "expectations": dg.MetadataValue.md(outcomes_markdown(summary, check.mask_values)),
        "warehouse_table": dg.MetadataValue.text(asset),
    }
    if partition is not None:
        metadata["partition"] = dg.MetadataValue.text(partition)
    errors = [o.error for o in summary.failed if o.error]
    if errors:
        metadata["errors"] = dg.MetadataValue.text("; ".join(errors))
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(asset),
        check_name=check.name,
        passed=summary.success,
        severity=dg.AssetCheckSeverity(check.severity),
        metadata=metadata,
        description=failure_description(summary),
    )


def _build_table_checks(
    asset: str,
    checks: Sequence[DataCheck],
    *,
    partitions_def: dg.PartitionsDefinition | None = None,
    id_columns: Sequence[str] = (),
    prepare: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> dg.AssetChecksDefinition:
    specs = [
        dg.AssetCheckSpec(
            c.name, asset=asset, description=c.description, blocking=c.blocking, partitions_def=partitions_def
        )
        for c in checks
    ]
    by_name = {c.name: c for c in checks}

    @dg.multi_asset_check(
        name=f"{asset}_data_checks",
        specs=specs,
        can_subset=True,
        compute_kind="great_expectations",
        description=f"Great Expectations data checks on {asset}.",
    )
    def _checks(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> Iterator[dg.AssetCheckResult]:
        partitions = list(context.partition_keys) if partitions_def is not None else None
        df = warehouse.read_table(asset, partitions=partitions)
        if PARTITION_COLUMN in df.columns:
            df = df.drop(columns=[PARTITION_COLUMN])
        if prepare is not None:
            df = prepare(df)
        selected = [by_name[k.name] for k in context.selected_asset_check_keys]
        summaries = run_data_checks(df, selected, id_columns=id_columns)
        label = ", ".join(partitions) if partitions else None
        for check in selected:
            result = _check_result(asset, check, summaries[check.name], label)
            if not result.passed:
                context.log.warning(f"{asset} check {check.name} failed: {result.description}")
            yield result

    return _checks


raw_tickets_data_checks = _build_table_checks(
    "raw_tickets",
    RAW_TICKET_CHECKS,
    partitions_def=ticket_batches,
    id_columns=("ticket_id", "source_row"),
    prepare=lambda df: timestamps_as_text(df, "created_at"),
)
crm_accounts_data_checks = _build_table_checks("crm_accounts", CRM_ACCOUNT_CHECKS, id_columns=("account_id",))
product_catalog_data_checks = _build_table_checks("product_catalog", PRODUCT_CATALOG_CHECKS, id_columns=("sku",))
knowledge_base_data_checks = _build_table_checks("knowledge_base", KNOWLEDGE_BASE_CHECKS, id_columns=("article_id",))

data_quality_checks: list[dg.AssetChecksDefinition] = [
    raw_tickets_data_checks,
    crm_accounts_data_checks,
    product_catalog_data_checks,
    knowledge_base_data_checks,
]
