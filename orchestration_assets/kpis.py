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
