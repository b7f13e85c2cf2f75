"""KPI anomaly checks on each family's `kpi_daily`, and freshness policies for `enriched_records` and `kpi_daily`.

Each anomaly check compares the latest day with a trailing window of earlier days using a
robust z-score (median and MAD, so one past spike does not hide the next), and reports the
numbers. A rise past ``WARN_Z`` warns, past ``FAIL_Z`` fails with ERROR severity; changes smaller
than a per-metric floor never count (a perfectly flat history would otherwise make any change
"infinitely" anomalous). With fewer than ``MIN_HISTORY`` earlier days the check passes and says so.
"""

import math
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Iterator

import dagster as dg
import numpy as np
import pandas as pd

from orchestration_assets.family import Family
from resources.warehouse import Warehouse

WINDOW_DAYS = 14
MIN_HISTORY = 5
WARN_Z = 3.5  # Iglewicz & Hoaglin's outlier cut-off for the modified z-score
FAIL_Z = 6.0
MAD_SCALE = 0.6745  # makes the MAD comparable to a standard deviation for normal data


# ---- the maths (plain pandas) ------------------------------------------------------------------
@dataclass
class Assessment:
    metric: str
    status: str  # ok / warn / fail / insufficient_history
    latest_day: str | None
    latest: float | None
    median: float | None
    mad: float | None
    z: float | None
    history_days: int


def daily_metric(kpis: pd.DataFrame, metric: str) -> pd.Series:
    """``metric`` per day across model versions: rates and costs weighted by records, latencies the max."""
    if kpis.empty or metric not in kpis:
        return pd.Series(dtype=float)
    df = kpis[["day", "records", metric]].copy()
    df[metric] = pd.to_numeric(df[metric], errors="coerce")
    df = df.dropna(subset=[metric])
    if df.empty:
        return pd.Series(dtype=float)
    if metric.startswith("latency_"):
        out = df.groupby("day")[metric].max()
    else:
        df["_w"] = df[metric] * df["records"]
        g = df.groupby("day")
        out = g["_w"].sum() / g["records"].sum()
    return out.sort_index().astype(float)


def robust_z(latest: float, history: np.ndarray) -> tuple[float, float, float]:
    """(median, MAD, modified z) of ``latest`` against ``history``."""
    med = float(np.median(history))
    mad = float(np.median(np.abs(history - med)))
    spread = mad / MAD_SCALE if mad > 0 else float(np.mean(np.abs(history - med))) * 1.2533
    if spread > 0:
        return med, mad, (latest - med) / spread
    return med, mad, 0.0 if latest == med else math.copysign(math.inf, latest - med)


def assess(series: pd.Series, metric: str, *, min_abs_change: float, window: int = WINDOW_DAYS,
           min_history: int = MIN_HISTORY, warn_z: float = WARN_Z, fail_z: float = FAIL_Z) -> Assessment:
    """Is the latest value of ``series`` (indexed by day, ascending) an upward spike?"""
    series = series.dropna()
    if series.empty:
        return Assessment(metric, "insufficient_history", None, None, None, None, None, 0)
    day, latest = str(series.index[-1]), float(series.iloc[-1])
    history = series.iloc[:-1].tail(window).to_numpy(dtype=float)
    if len(history) < min_history:
        return Assessment(metric, "insufficient_history", day, latest, None, None, None, len(history))
    med, mad, z = robust_z(latest, history)
    status = "ok"
    if latest - med > min_abs_change:
        status = "fail" if z >= fail_z else "warn" if z >= warn_z else "ok"
    return Assessment(metric, status, day, latest, med, mad, z, len(history))


# ---- the checks --------------------------------------------------------------------------------
def families_of_metrics(tasks: list[str]) -> dict[str, tuple[list[str], float, str]]:
    """name -> (metrics, smallest change that can count, description) for a family with these tasks."""
    return {
        "cost_per_task_anomaly": (
            ["cost_per_record", *(f"cost_per_record_{t}" for t in tasks)], 0.0005,
            "Cost per record (overall and per task) of the latest day is not a spike against the trailing window.",
        ),
        "failure_rate_anomaly": (
            ["failure_rate"], 0.02, "The latest day's failure rate is not a spike against the trailing window.",
        ),
        "latency_p95_anomaly": (
            [f"latency_p95_ms_{t}" for t in tasks], 50.0,
            "p95 latency per task on the latest day is not a spike against the trailing window.",
        ),
        "escalation_rate_anomaly": (
            ["escalation_rate"], 0.05, "The latest day's escalation rate is not a spike against the trailing window.",
        ),
    }


def evaluate_family(kpis: pd.DataFrame, metrics: list[str], min_abs_change: float) -> list[Assessment]:
    return [assess(daily_metric(kpis, m), m, min_abs_change=min_abs_change) for m in metrics if m in kpis]


def _result(assessments: list[Assessment], check_name: str | None = None,
            asset_key: dg.AssetKey | None = None) -> dg.AssetCheckResult:
    scored = [a for a in assessments if a.z is not None]
    bad = [a for a in assessments if a.status in ("warn", "fail")]
    worst = max(bad or scored, key=lambda a: a.z, default=None)
    failed = any(a.status == "fail" for a in assessments)
    table = pd.DataFrame([asdict(a) for a in assessments]) if assessments else pd.DataFrame()
    meta: dict[str, object] = {
        "window_days": WINDOW_DAYS,
        "warn_z": WARN_Z,
        "fail_z": FAIL_Z,
        "metrics": dg.MetadataValue.md(table.round(4).to_markdown(index=False) if len(table) else "_no KPI rows_"),
    }
    if worst is not None:
        meta.update({
            "worst_metric": worst.metric,
            "latest_day": worst.latest_day or "",
            "latest": dg.MetadataValue.float(float(worst.latest)),
            "trailing_median": dg.MetadataValue.float(float(worst.median)),
            "trailing_mad": dg.MetadataValue.float(float(worst.mad)),
            "robust_z": dg.MetadataValue.float(float(worst.z) if math.isfinite(worst.z) else 1e9),
            "history_days": worst.history_days,
        })
    if not scored:
        meta["note"] = f"fewer than {MIN_HISTORY} earlier days of KPIs; nothing to compare yet"
    return dg.AssetCheckResult(
        check_name=check_name, asset_key=asset_key, passed=not bad,
        severity=dg.AssetCheckSeverity.ERROR if failed else dg.AssetCheckSeverity.WARN,
        metadata=meta,
        description=(f"{worst.metric} on {worst.latest_day}: {worst.latest:.4g} vs median {worst.median:.4g} "
                     f"(robust z {worst.z:.1f})") if bad else None,
    )


def anomaly_checks(family: Family) -> list[dg.AssetChecksDefinition]:
    """The anomaly checks of ``kpi_daily`` as one step: the table is read once, each check keeps its own
    name, description and result (a step per check cost more in Dagster's events than the maths)."""
    key, table = dg.AssetKey(family.key("kpi_daily")), family.table("kpi_daily")
    checks = families_of_metrics(list(family.tasks))
    specs = [dg.AssetCheckSpec(name, asset=key, description=desc) for name, (_, _, desc) in checks.items()]

    @dg.multi_asset_check(name=f"{family.name}__kpi_daily_anomaly_checks", specs=specs, can_subset=True,
                          description="KPI anomaly checks on kpi_daily: the latest day against a trailing window.")
    def _checks(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> Iterator[dg.AssetCheckResult]:
        kpis = warehouse.read_table(table)
        for check_key in sorted(context.selected_asset_check_keys, key=lambda k: list(checks).index(k.name)):
            metrics, floor, _ = checks[check_key.name]
            yield _result(evaluate_family(kpis, metrics, floor), check_key.name, key)

    return [_checks]


# Freshness (Dagster's FreshnessPolicy, which supersedes freshness checks since 1.12): enrichment
# runs at least hourly (schedule + inbox sensor), KPIs daily. The UI shows each asset's freshness
# state; the daemon evaluates it when `freshness: {enabled: true}` is in dagster.yaml.
FRESHNESS_POLICIES: dict[str, dg.FreshnessPolicy] = {
    "enriched_records": dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=6), warn_window=timedelta(hours=2)),
    "kpi_daily": dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=48), warn_window=timedelta(hours=26)),
}
