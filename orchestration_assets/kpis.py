"""KPI tables: throughput, automation/review/escalation rates, failures, cost and latency."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from resources.warehouse import Warehouse

from .core.kpis import headline, kpi_daily as compute_kpi_daily
from .governance import routing_decisions
from .enrichment import enriched_tickets
from .ui_metadata import numeric, preview_md


@dg.asset(
    group_name="kpis",
    kinds={"python", "pandas", "sql"},
    owners=["team:support-ops"],
    code_version="1",
    deps=[routing_decisions, enriched_tickets],
)
def kpi_daily(warehouse: Warehouse) -> dg.Output[pd.DataFrame]:
    """Daily KPIs by model version; one row per (day the ticket arrived, model version).

    Throughput, automation (auto_send) / review / escalation / failure rates, cost per ticket
    and per task, p50/p95 latency per task, over every batch routed so far.
    """
    decisions = warehouse.read_table("routing_decisions")
    enriched = warehouse.read_table("enriched_tickets")
    df = compute_kpi_daily(decisions, enriched)
    return dg.Output(
        df,
        metadata={
            "dagster/row_count": len(df),
            **numeric(headline(df)),
            "preview": preview_md(
                df, ["day", "model_version", "tickets", "automation_rate", "escalation_rate", "failure_rate", "cost_per_ticket"]
            ),
        },
    )


kpi_assets = [kpi_daily]


# ---- per model version ------------------------------------------------------------------------

KPI_BY_VERSION_COLUMNS = [
    "model_version", "tickets", "failed", "quality", "quality_source", "quality_n", "cost_usd", "cost_per_ticket",
    "latency_p50_ms", "latency_p95_ms", "first_seen", "last_seen", "promoted_at",
]


def compute_kpi_by_model_version(
    enriched: pd.DataFrame, reviews: pd.DataFrame | None, history: pd.DataFrame | None
) -> pd.DataFrame:
    """One row per classify model version seen in ``enriched_tickets`` (plain logic, no Dagster).

    Quality is agreement of the predicted category with the human review where tickets were
    reviewed (the corrected label, or the predicted one when the reviewer approved it); before any
    review exists, with the ticket's ``label_category``.
    """
    if enriched is None or enriched.empty or "model_version" not in enriched:
        return pd.DataFrame(columns=KPI_BY_VERSION_COLUMNS)
    df = enriched.copy()
    df["model_version"] = df["model_version"].fillna("none").astype(str)
    reviewed = pd.Series(dtype=object)
    if reviews is not None and len(reviews) and {"ticket_id", "decision"} <= set(reviews.columns):
        r = reviews.drop_duplicates("ticket_id", keep="last").set_index("ticket_id")
        corrected = r["corrected_label"] if "corrected_label" in r else pd.Series(index=r.index, dtype=object)
        approved = r["decision"].isin(["approve", "edit_and_approve"])
        reviewed = corrected.where(corrected.notna(), None)
        df["_truth_review"] = df["ticket_id"].map(reviewed.to_dict())
        df["_approved"] = df["ticket_id"].map(approved.to_dict()).fillna(False).astype(bool)
        df.loc[df["_truth_review"].isna() & df["_approved"], "_truth_review"] = df["category"]
    rows = []
    first_champion = {}
    if history is not None and len(history):
        ch = history[history["alias"] == "champion"]
        first_champion = ch.groupby("to_version")["recorded_at"].min().to_dict()
    for version, g in df.groupby("model_version", sort=True):
        ok = g[g.get("status", pd.Series("enriched", index=g.index)) == "enriched"]
        source, truth = "none", None
        if "_truth_review" in g and ok["_truth_review"].notna().any():
            source, truth = "human_review", ok["_truth_review"]
        elif "label_category" in g and ok["label_category"].notna().any():
            source, truth = "label_category", ok["label_category"]
        if truth is not None:
            mask = truth.notna()
            quality, n = float((ok.loc[mask, "category"] == truth[mask]).mean()), int(mask.sum())
        else:
            quality, n = None, 0
        lat = pd.to_numeric(g.get("latency_ms"), errors="coerce").dropna() if "latency_ms" in g else pd.Series(dtype=float)
        cost = float(pd.to_numeric(g.get("cost_usd"), errors="coerce").fillna(0).sum()) if "cost_usd" in g else 0.0
        seen = pd.to_datetime(g["enriched_at"], utc=True, errors="coerce") if "enriched_at" in g else pd.Series(dtype="datetime64[ns, UTC]")
        rows.append({
            "model_version": version,
            "tickets": len(g),
            "failed": int((g["status"] == "failed").sum()) if "status" in g else 0,
            "quality": quality,
            "quality_source": source,
            "quality_n": n,
            "cost_usd": cost,
            "cost_per_ticket": cost / len(g) if len(g) else 0.0,
            "latency_p50_ms": float(lat.quantile(0.5)) if len(lat) else None,
            "latency_p95_ms": float(lat.quantile(0.95)) if len(lat) else None,
            "first_seen": seen.min() if len(seen) else None,
            "last_seen": seen.max() if len(seen) else None,
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


@dg.asset(
    group_name="kpis",
    kinds={"python", "pandas", "sql"},
    owners=["team:support-ops"],
    code_version="1",
    deps=[enriched_tickets],
)
def kpi_by_model_version(warehouse: Warehouse) -> dg.Output[pd.DataFrame]:
    """Quality, cost and latency per classify model version; one row per version seen in enriched tickets.

    Quality = agreement with human review once reviews exist (``review_decisions``), else with the
    ticket's labelled category. Deployment frequency (promotions per week) comes from the registry's
    alias history.
    """
    from resources.registry import ModelRegistry

    registry = ModelRegistry.for_warehouse(warehouse)
    history = registry.history()
    reviews = warehouse.read_table("review_decisions") if warehouse.has_table("review_decisions") else None
    df = compute_kpi_by_model_version(warehouse.read_table("enriched_tickets"), reviews, history)
    champion = registry.champion("classify")
    current = df[df["model_version"] == champion.version] if champion is not None else df.iloc[0:0]
    return dg.Output(df, metadata={
        "dagster/row_count": len(df),
        **numeric({
            "versions": len(df),
            "promotions_per_week": promotions_per_week(history),
            "champion_quality": float(current["quality"].iloc[0]) if len(current) and pd.notna(current["quality"].iloc[0]) else None,
            "champion_cost_per_ticket": float(current["cost_per_ticket"].iloc[0]) if len(current) else None,
        }),
        "champion_version": dg.MetadataValue.text(champion.version if champion else "none"),
        "preview": preview_md(df, ["model_version", "tickets", "quality", "quality_source", "cost_per_ticket",
                                   "latency_p95_ms", "promoted_at"]),
    })


kpi_assets.append(kpi_by_model_version)
