"""Great Expectations validations as plain logic: run named expectations on a DataFrame, summarise.

:class:`Expectation` names a Great Expectations expectation and its arguments; a :class:`DataCheck`
is a named group of them with a severity; :func:`run_data_checks` validates a DataFrame against
several checks in one ephemeral GX run and returns a :class:`ValidationSummary` per check (per
expectation: success, unexpected count, a sample of unexpected values and the ids of the rows
holding them). No Dagster here; :mod:`checks.data_quality` builds the asset checks.

``great_expectations`` takes ~5-7 s to import, so it is imported inside :func:`validate_dataframe`
only; loading the code location never pays for it.
"""

import functools
import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Mapping, Sequence

import pandas as pd

SAMPLE_SIZE = 10
_MAX_VALUE_CHARS = 80
Severity = Literal["ERROR", "WARN"]

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
    """Shorthand: ``expect("expect_column_values_to_not_be_null", column="record_id")``."""
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
    # the id columns of some rows holding unexpected values, e.g. {"record_id": "R-1", "source_row": 4}
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
    with _CONTEXT_LOCK:
        return _validate(gx, ExpectationConfiguration, _context(), df, expectations, id_columns, sample_size)


_CONTEXT_LOCK = threading.Lock()


@functools.cache
def _context():
    """One ephemeral GX context per process: creating one costs ~0.5-1 s, a validation in it ~0.1 s."""
    gx, _ = _import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _validate(gx, ExpectationConfiguration, context, df, expectations, id_columns, sample_size) -> ValidationSummary:
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
    try:
        result = validation.run(batch_parameters={"dataframe": df}, result_format=result_format)
    finally:  # the context lives as long as the process: leave nothing of this run in it
        context.suites.delete(suite.name)
        context.data_sources.delete(f"pandas_{run_id}")

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


@dataclass(frozen=True)
class DataCheck:
    """A named asset check: the expectations it asserts and how bad a failure is."""

    name: str
    description: str
    expectations: tuple[Expectation, ...]
    severity: Severity = "ERROR"
    blocking: bool = False
    # free text may hold PII: metadata then shows each value's length, not the text
    mask_values: bool = False


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
