"""KPI assets of a family: daily throughput and rates, quality by model version, review burden."""

import dagster as dg
import pandas as pd

from checks.anomaly import FRESHNESS_POLICIES
from resources.registry.resource import ModelRegistryResource
from resources.warehouse import Warehouse, store

from .core.dispatch import backlog_stats, kpi_review as compute_kpi_review
from .core.kpis import (headline, kpi_by_model_version, kpi_by_model_version_columns, kpi_daily, kpi_daily_columns,
                        promotions_per_week)
from .core.review import read_review_decisions
from .family import Family
from .inputs import whole_table
from .ui_metadata import numeric, preview_md


def kpi_assets(family: Family) -> list[dg.AssetsDefinition]:
    key = lambda name: dg.AssetKey(family.key(name))  # noqa: E731 - short local alias
    common = dict(group_name=family.group("kpis"), owners=family.owners, code_version="2",
                  kinds={"python", "pandas", "sql"})
    tasks = list(family.tasks)
    model_task = family.model_task

    @dg.asset(key=key("kpi_daily"), deps=[key("routing_decisions"), key("enriched_records")], **common,
              freshness_policy=FRESHNESS_POLICIES["kpi_daily"],
              description="Daily KPIs by model version; one row per (day, model version): throughput, automation / "
                          "review / escalation / failure rates, cost per record and per task, p50/p95 latency per task.")
    def daily(warehouse: Warehouse) -> dg.MaterializeResult:
        routed, enriched = kpi_daily_columns(tasks)
        df = kpi_daily(whole_table(warehouse, family, "routing_decisions", routed),
                       whole_table(warehouse, family, "enriched_records", enriched), tasks)
        return _written(warehouse, family.table("kpi_daily"), df, {
            **numeric(headline(df, tasks)),
            "preview": preview_md(df, ["day", "model_version", "records", "automation_rate", "escalation_rate",
                                       "failure_rate", "cost_per_record"]),
        })

    @dg.asset(key=key("kpi_by_model_version"), deps=[key("enriched_records"), key("review_decisions")], **common,
              description=f"Quality, cost and latency per model version of {model_task.name!r}; one row per version "
                          "seen. Quality = agreement with human review where reviewed, else with the known answer; "
                          "deployment frequency comes from the registry's alias history.")
    def by_version(warehouse: Warehouse, registry: ModelRegistryResource) -> dg.MaterializeResult:
        reg = registry.get()
        history = reg.history(family=family.name, task=model_task.name)
        columns = kpi_by_model_version_columns(model_task.name, family.truth_field(model_task.name))
        df = kpi_by_model_version(whole_table(warehouse, family, "enriched_records", columns), model_task.name,
                                  family.truth_field(model_task.name), read_review_decisions(warehouse, family.name),
                                  family.spec.review.relabel_task, history)
        champion = reg.champion(family.name, model_task.name) if model_task.type == "classify" else None
        current = df[df["model_version"] == champion.version] if champion is not None else df.iloc[0:0]
        return _written(warehouse, family.table("kpi_by_model_version"), df, {
            **numeric({
                "versions": len(df),
                "promotions_per_week": promotions_per_week(history),
                "champion_quality": float(current["quality"].iloc[0]) if len(current) and pd.notna(current["quality"].iloc[0]) else None,
                "champion_cost_per_record": float(current["cost_per_record"].iloc[0]) if len(current) else None,
            }),
            "champion_version": dg.MetadataValue.text(champion.version if champion else "none"),
            "preview": preview_md(df, ["model_version", "records", "quality", "quality_source", "cost_per_record",
                                       "latency_p95_ms", "promoted_at"]),
        })

    @dg.asset(key=key("kpi_review"), deps=[key("review_decisions"), key("dispatches"), key("review_queue")], **common,
              description="Review burden and time to resolution, one row per UTC day: decisions, reviewer-hours, items "
                          "per reviewer-hour, outputs dispatched and time from the record to its dispatch (p50/p95).")
    def review(warehouse: Warehouse) -> dg.MaterializeResult:
        # only the columns the KPIs read: every dispatched payload's text, whole, was most of this step
        dispatched = whole_table(warehouse, family, "dispatches", ["delivered_at", "record_time"])
        df = compute_kpi_review(read_review_decisions(warehouse, family.name),
                                dispatched if "delivered_at" in dispatched else pd.DataFrame())
        stats = backlog_stats(whole_table(warehouse, family, "review_queue", ["age_hours"]))
        latest = df.iloc[-1].to_dict() if len(df) else {}
        total_rh = int(df["reviewer_hours"].sum()) if len(df) else 0
        return _written(warehouse, family.table("kpi_review"), df, {
            **numeric({
                "backlog_pending": stats.pending,
                "backlog_oldest_age_hours": stats.oldest_age_hours,
                "backlog_mean_age_hours": stats.mean_age_hours,
                "items_per_reviewer_hour": float(df["decisions"].sum() / total_rh) if total_rh else None,
                "time_to_resolution_p50_hours": latest.get("time_to_resolution_p50_hours"),
                "time_to_resolution_p95_hours": latest.get("time_to_resolution_p95_hours"),
            }),
            "preview": preview_md(df),
        })

    return [daily, by_version, review]


def _written(warehouse: Warehouse, table: str, df: pd.DataFrame, metadata: dict) -> dg.MaterializeResult:
    """``df`` written as the whole ``table`` by the step itself: through the IO manager, each KPI table
    cost a HANDLED_OUTPUT event and its output context, and stayed referenced until the run ended."""
    return dg.MaterializeResult(metadata={"dagster/row_count": len(df), **metadata,
                                          **store(warehouse, table, df, None)})
