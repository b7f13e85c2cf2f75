"""KPI maths over a family's decisions and enriched records (plain pandas, no Dagster)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

KPI_BY_VERSION_COLUMNS = [
    "model_version", "records", "failed", "quality", "quality_source", "quality_n", "cost_usd", "cost_per_record",
    "latency_p50_ms", "latency_p95_ms", "first_seen", "last_seen", "promoted_at",
]


def kpi_daily_columns(tasks: Sequence[str]) -> tuple[list[str], list[str]]:
    """(routing decision columns, enriched record columns) that :func:`kpi_daily` reads."""
    return (["record_id", "record_time", "decided_at", "model_version", "decision", "status"],
            ["record_id", *[f"{t}_{k}" for t in tasks for k in ("cost_usd", "latency_ms")]])


def kpi_by_model_version_columns(task: str, truth_field: str | None) -> list[str]:
    """The enriched record columns :func:`kpi_by_model_version` reads."""
    return ["record_id", "model_version", "status", task, *([truth_field] if truth_field else []),
            f"{task}_latency_ms", "cost_usd", "enriched_at"]


def kpi_daily(decisions: pd.DataFrame, enriched: pd.DataFrame, tasks: Sequence[str]) -> pd.DataFrame:
    """One row per (day, model version): throughput, decision rates, failure rate, cost and latency per task.

    ``day`` is the UTC date of the record's own time (when it happened), else of its ingestion.
    """
    if decisions.empty:
        return pd.DataFrame(columns=["day", "model_version", "records"])
    cols = ["record_id", *[c for c in enriched.columns if c.endswith(("_cost_usd", "_latency_ms"))]]
    df = decisions.merge(enriched[[c for c in cols if c in enriched.columns]].drop_duplicates("record_id"),
                         on="record_id", how="left", suffixes=("", "_enriched"))
    df["day"] = _utc_day(pd.to_datetime(df["record_time"], utc=True, errors="coerce", format="ISO8601"))
    undated = df["day"].isna()
    if undated.any():  # only those rows' decision times are parsed
        df.loc[undated, "day"] = _utc_day(pd.to_datetime(df.loc[undated, "decided_at"], utc=True, format="ISO8601"))
    df["model_version"] = df["model_version"].fillna("none")
    rows = []
    for (day, version), g in df.groupby(["day", "model_version"], sort=True):
        n = len(g)
        row = {
            "day": day, "model_version": version, "records": n,
            "auto_send": int((g["decision"] == "auto_send").sum()),
            "human_review": int((g["decision"] == "human_review").sum()),
            "escalate": int((g["decision"] == "escalate").sum()),
            "failed": int((g["status"] != "enriched").sum()),
        }
        row.update(automation_rate=row["auto_send"] / n, review_rate=row["human_review"] / n,
                   escalation_rate=row["escalate"] / n, failure_rate=row["failed"] / n)
        total = 0.0
        for t in tasks:
            cost, lat = g.get(f"{t}_cost_usd"), g.get(f"{t}_latency_ms")
            c = float(cost.fillna(0).sum()) if cost is not None else 0.0
            total += c
            row[f"cost_per_record_{t}"] = c / n
            vals = lat.dropna().to_numpy(dtype=float) if lat is not None else np.array([])
            row[f"latency_p50_ms_{t}"] = float(np.percentile(vals, 50)) if len(vals) else None
            row[f"latency_p95_ms_{t}"] = float(np.percentile(vals, 95)) if len(vals) else None
        row["cost_usd"], row["cost_per_record"] = total, total / n
        rows.append(row)
    return pd.DataFrame(rows)


def _utc_day(stamps: pd.Series) -> pd.Series:
    """``YYYY-MM-DD`` of each UTC timestamp (None where NaT), formatted once per distinct day, not per row."""
    codes, days = pd.factorize(stamps.dt.floor("D"))
    labels = np.array([d.strftime("%Y-%m-%d") for d in days] + [None], dtype=object)
    return pd.Series(labels[codes], index=stamps.index, dtype=object)


def headline(kpis: pd.DataFrame, tasks: Sequence[str]) -> dict[str, float | int]:
    """Totals across all days and versions, for numeric materialization metadata."""
    if kpis.empty:
        return {"records": 0}
    n = int(kpis["records"].sum())
    out: dict[str, float | int] = {
        "records": n,
        "automation_rate": float(kpis["auto_send"].sum() / n),
        "review_rate": float(kpis["human_review"].sum() / n),
        "escalation_rate": float(kpis["escalate"].sum() / n),
        "failure_rate": float(kpis["failed"].sum() / n),
        "cost_usd": float(kpis["cost_usd"].sum()),
        "cost_per_record": float(kpis["cost_usd"].sum() / n),
    }
    for t in tasks:
        col = f"latency_p95_ms_{t}"
        if col in kpis and kpis[col].notna().any():
            out[f"latency_p95_ms_{t}"] = float(kpis[col].max())
    return out


def kpi_by_model_version(enriched: pd.DataFrame, task: str, truth_field: str | None, reviews: pd.DataFrame | None,
                         review_task: str | None, history: pd.DataFrame | None) -> pd.DataFrame:
    """One row per model version of ``task`` seen in enriched records.

    Quality = agreement of the task's answer with human review where its records were reviewed
    (the corrected label, or the answer itself when a reviewer approved it; only when reviews
    correct this task), else with the record's known answer (``truth_field``).
    """
    if enriched is None or enriched.empty or "model_version" not in enriched:
        return pd.DataFrame(columns=KPI_BY_VERSION_COLUMNS)
    df = enriched.copy()
    df["model_version"] = df["model_version"].fillna("none").astype(str)
    if review_task == task and reviews is not None and len(reviews):
        r = reviews.drop_duplicates("record_id", keep="last").set_index("record_id")
        truth = r["corrected_label"].where(r["corrected_label"].notna(), None)
        approved = r["decision"].isin(["approve", "edit_and_approve"])
        df["_truth_review"] = df["record_id"].map(truth.to_dict())
        df["_approved"] = df["record_id"].map(approved.to_dict()).fillna(False).astype(bool)
        df.loc[df["_truth_review"].isna() & df["_approved"], "_truth_review"] = df[task]
    first_champion = {}
    if history is not None and len(history):
        ch = history[history["alias"] == "champion"]
        first_champion = ch.groupby("to_version")["recorded_at"].min().to_dict()
    rows = []
    for version, g in df.groupby("model_version", sort=True):
        ok = g[g["status"] == "enriched"]
        source, truth = "none", None
        if "_truth_review" in g and ok["_truth_review"].notna().any():
            source, truth = "human_review", ok["_truth_review"]
        elif truth_field and truth_field in g and ok[truth_field].notna().any():
            source, truth = truth_field, ok[truth_field]
        quality, n = (None, 0)
        if truth is not None:
            mask = truth.notna()
            quality, n = float((ok.loc[mask, task] == truth[mask]).mean()), int(mask.sum())
        lat = pd.to_numeric(g.get(f"{task}_latency_ms"), errors="coerce").dropna()
        cost = float(pd.to_numeric(g.get("cost_usd"), errors="coerce").fillna(0).sum())
        seen = pd.to_datetime(g["enriched_at"], utc=True, errors="coerce", format="ISO8601")
        rows.append({
            "model_version": version, "records": len(g), "failed": int((g["status"] == "failed").sum()),
            "quality": quality, "quality_source": source, "quality_n": n, "cost_usd": cost,
            "cost_per_record": cost / len(g) if len(g) else 0.0,
            "latency_p50_ms": float(lat.quantile(0.5)) if len(lat) else None,
            "latency_p95_ms": float(lat.quantile(0.95)) if len(lat) else None,
            "first_seen": seen.min() if len(seen) else None, "last_seen": seen.max() if len(seen) else None,
            "promoted_at": first_champion.get(version),
        })
    return pd.DataFrame(rows, columns=KPI_BY_VERSION_COLUMNS)


def promotions_per_week(history: pd.DataFrame | None) -> float:
    """Deployment frequency: champion changes per week over the span of the alias history (>= 1 week)."""
    if history is None or history.empty:
        return 0.0
    ch = history[history["alias"] == "champion"]
    if ch.empty:
        return 0.0
    ts = pd.to_datetime(ch["recorded_at"], utc=True, format="ISO8601")
    weeks = max((ts.max() - ts.min()) / pd.Timedelta(days=7), 1.0)
    return float(len(ch) / weeks)
