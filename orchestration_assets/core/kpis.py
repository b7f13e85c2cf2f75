"""KPI maths over routing decisions and enriched tickets (plain pandas, no Dagster)."""

from __future__ import annotations

import numpy as np
import pandas as pd

TASK_PREFIXES = ("classify", "priority", "sentiment", "summary", "draft")


def kpi_daily(decisions: pd.DataFrame, enriched: pd.DataFrame) -> pd.DataFrame:
    """One row per (day, model_version): throughput, decision rates, failure rate, cost and latency per task.

    ``day`` is the UTC date the ticket was created (when it reached support).
    """
    if decisions.empty:
        return pd.DataFrame(columns=["day", "model_version", "tickets"])
    cols = ["ticket_id", "status", *[c for c in enriched.columns if c.endswith(("_cost_usd", "_latency_ms"))]]
    df = decisions.merge(enriched[[c for c in cols if c in enriched.columns]].drop_duplicates("ticket_id"),
                         on="ticket_id", how="left", suffixes=("", "_enriched"))
    df["day"] = pd.to_datetime(df["created_at"], utc=True).dt.strftime("%Y-%m-%d")
    df["model_version"] = df["model_version"].fillna("none")
    rows = []
    for (day, version), g in df.groupby(["day", "model_version"], sort=True):
        n = len(g)
        row = {
            "day": day,
            "model_version": version,
            "tickets": n,
            "auto_send": int((g["decision"] == "auto_send").sum()),
            "human_review": int((g["decision"] == "human_review").sum()),
            "escalate": int((g["decision"] == "escalate").sum()),
            "failed": int((g["status"] != "enriched").sum()),
        }
        row["automation_rate"] = row["auto_send"] / n
        row["review_rate"] = row["human_review"] / n
        row["escalation_rate"] = row["escalate"] / n
        row["failure_rate"] = row["failed"] / n
        total_cost = 0.0
        for t in TASK_PREFIXES:
            cost = g.get(f"{t}_cost_usd")
            lat = g.get(f"{t}_latency_ms")
            c = float(cost.fillna(0).sum()) if cost is not None else 0.0
            total_cost += c
            row[f"cost_per_ticket_{t}"] = c / n
            vals = lat.dropna().to_numpy(dtype=float) if lat is not None else np.array([])
            row[f"latency_p50_ms_{t}"] = float(np.percentile(vals, 50)) if len(vals) else None
            row[f"latency_p95_ms_{t}"] = float(np.percentile(vals, 95)) if len(vals) else None
        row["cost_usd"] = total_cost
        row["cost_per_ticket"] = total_cost / n
        rows.append(row)
    return pd.DataFrame(rows)


def headline(kpis: pd.DataFrame) -> dict[str, float | int]:
    """Totals across all days and versions, for numeric materialization metadata."""
    if kpis.empty:
        return {"tickets": 0}
    n = int(kpis["tickets"].sum())
    out: dict[str, float | int] = {
        "tickets": n,
        "automation_rate": float(kpis["auto_send"].sum() / n),
        "review_rate": float(kpis["human_review"].sum() / n),
        "escalation_rate": float(kpis["escalate"].sum() / n),
        "failure_rate": float(kpis["failed"].sum() / n),
        "cost_usd": float(kpis["cost_usd"].sum()),
        "cost_per_ticket": float(kpis["cost_usd"].sum() / n),
    }
    for t in TASK_PREFIXES:
        col = f"latency_p95_ms_{t}"
        if col in kpis and kpis[col].notna().any():
            out[f"latency_p95_ms_{t}"] = float(kpis[col].max())
    return out
