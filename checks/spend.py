"""The blocking spend check: a partition's LLM spend stays within the configured budget.

The check is partitioned like ``enriched_tickets`` (dynamic partitions ``ticket_batches``), so each
batch gets its own result. Spend comes from the router's ledger rows of this run and partition
(the usual case: the check runs right after the asset in the same run); when the check runs on its
own later, from the ``cost_usd`` column of the partition's stored ``enriched_tickets`` rows.
"""

from dataclasses import dataclass

import dagster as dg
import sqlalchemy as sa

from orchestration_assets.ingestion import ticket_batches
from resources.router import ModelRouter, SpendSummary, ledger_spend
from resources.warehouse import PARTITION_COLUMN, Warehouse

ENRICHED = "enriched_tickets"


@dataclass
class PartitionSpend:
    spend: SpendSummary
    source: str
    budget_usd: float | None

    @property
    def passed(self) -> bool:
        return self.budget_usd is None or self.spend.cost_usd <= self.budget_usd + 1e-9


def partition_spend(
    warehouse: Warehouse,
    partition: str,
    *,
    run_id: str | None,
    budget_usd: float | None,
    ledger_table: str = "llm_spend",
    enriched_table: str = ENRICHED,
) -> PartitionSpend:
    """What the partition's enrichment cost, and where the figure came from."""
    if run_id:
        spend = ledger_spend(warehouse, table=ledger_table, run_id=run_id, partition=partition)
        if spend.rows:
            return PartitionSpend(spend, "ledger (this run)", budget_usd)
    if warehouse.has_table(enriched_table):
        t = sa.Table(enriched_table, sa.MetaData(), autoload_with=warehouse.engine)
        if "cost_usd" in t.c and PARTITION_COLUMN in t.c:
            stmt = sa.select(sa.func.coalesce(sa.func.sum(t.c.cost_usd), 0.0), sa.func.count()).where(
                t.c[PARTITION_COLUMN] == partition
            )
            with warehouse.engine.connect() as conn:
                cost, rows = conn.execute(stmt).one()
            if rows:
                return PartitionSpend(SpendSummary(cost_usd=float(cost), rows=int(rows)), f"{enriched_table}.cost_usd",
                                      budget_usd)
    return PartitionSpend(SpendSummary(), "no spend recorded", budget_usd)


@dg.asset_check(
    asset=dg.AssetKey(ENRICHED),
    blocking=True,
    partitions_def=ticket_batches,
    description="The partition's LLM spend is within the routing config's budget.per_partition_usd.",
)
def llm_spend_within_budget(
    context: dg.AssetCheckExecutionContext, router: ModelRouter, warehouse: Warehouse
) -> dg.AssetCheckResult:
    """Fails (and blocks downstream assets) when a batch's LLM spend exceeds its budget."""
    config = router.load_config()
    result = partition_spend(
        warehouse,
        context.partition_key,
        run_id=context.run.run_id,
        budget_usd=router.budget_per_partition_usd,
        ledger_table=config.ledger_table,
    )
    spend, budget = result.spend, result.budget_usd
    metadata: dict[str, dg.RawMetadataValue] = {
        "spend_usd": dg.MetadataValue.float(round(spend.cost_usd, 6)),
        "calls": dg.MetadataValue.int(spend.calls),
        "tokens_in": dg.MetadataValue.int(spend.tokens_in),
        "tokens_out": dg.MetadataValue.int(spend.tokens_out),
        "source": dg.MetadataValue.text(result.source),
    }
    if budget is None:
        metadata["budget_usd"] = dg.MetadataValue.text("unlimited")
    else:
        metadata["budget_usd"] = dg.MetadataValue.float(budget)
        metadata["budget_used_pct"] = dg.MetadataValue.float(
            round(100 * spend.cost_usd / budget, 2) if budget > 0 else (0.0 if spend.cost_usd == 0 else 100.0)
        )
    return dg.AssetCheckResult(
        passed=result.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=None if result.passed else f"LLM spend ${spend.cost_usd:.6f} exceeds the budget ${budget:.6f}",
    )
