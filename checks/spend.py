"""The blocking spend check: a batch's LLM spend stays within the family's budget, with working keys.

Partitioned like ``enriched_records``, so each batch gets its own result. Spend comes from the
router's ledger rows of this family, run and partition (the usual case: the check runs right after
the asset in the same run); when the check runs on its own later, from the ``cost_usd`` column of
the partition's stored ``enriched_records`` rows. The check also fails when an endpoint rejected
its API key (401/403) in this run: the answers then silently came from the fallback chain, which a
green run would hide. Transient failures (timeouts, 5xx, 429) do not fail it.
"""

from dataclasses import dataclass, field
from typing import Callable

import dagster as dg
import sqlalchemy as sa

from orchestration_assets.family import Family
from orchestration_assets.partitions import batches
from resources.router.ledger import SpendSummary, ledger_auth_failures, ledger_spend
from resources.router.resource import ModelRouter
from resources.warehouse import PARTITION_COLUMN, Warehouse


@dataclass
class PartitionSpend:
    spend: SpendSummary
    source: str
    budget_usd: float | None
    # (endpoint, model id, calls) the endpoint refused for their API key, in this run
    auth_failures: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def within_budget(self) -> bool:
        return self.budget_usd is None or self.spend.cost_usd <= self.budget_usd + 1e-9

    @property
    def passed(self) -> bool:
        return self.within_budget and not self.auth_failures

    def problems(self, key_source: Callable[[str], str]) -> str | None:
        """Why the check fails, naming the endpoint, model and key variable (never a key); None if it passes."""
        out = [f"endpoint {endpoint!r} (model {model_id}) rejected the API key (HTTP 401/403) on {n} call(s), so "
               f"their answers came from the fallback chain: check the key in {key_source(endpoint)}"
               for endpoint, model_id, n in self.auth_failures]
        if not self.within_budget:
            out.append(f"LLM spend ${self.spend.cost_usd:.6f} exceeds the budget ${self.budget_usd:.6f}")
        return "; ".join(out) or None


def partition_spend(warehouse: Warehouse, family: str, partition: str, *, run_id: str | None,
                    budget_usd: float | None, ledger_table: str, enriched_table: str) -> PartitionSpend:
    """What the partition's enrichment cost, and where the figure came from."""
    if run_id:
        spend = ledger_spend(warehouse, table=ledger_table, family=family, run_id=run_id, partition=partition)
        if spend.rows:
            failures = ledger_auth_failures(warehouse, table=ledger_table, family=family, run_id=run_id,
                                            partition=partition)
            return PartitionSpend(spend, "ledger (this run)", budget_usd, failures)
    if warehouse.has_table(enriched_table):
        t = sa.Table(enriched_table, sa.MetaData(), autoload_with=warehouse.engine)
        if "cost_usd" in t.c and PARTITION_COLUMN in t.c:
            stmt = sa.select(sa.func.coalesce(sa.func.sum(t.c.cost_usd), 0.0), sa.func.count()).where(
                t.c[PARTITION_COLUMN] == partition)
            with warehouse.engine.connect() as conn:
                cost, rows = conn.execute(stmt).one()
            if rows:
                return PartitionSpend(SpendSummary(cost_usd=float(cost), rows=int(rows)), f"{enriched_table}.cost_usd",
                                      budget_usd)
    return PartitionSpend(SpendSummary(), "no spend recorded", budget_usd)


def spend_check(family: Family) -> dg.AssetChecksDefinition:
    budget = family.spec.budget

    @dg.asset_check(asset=dg.AssetKey(family.key("enriched_records")), name="llm_spend_within_budget", blocking=True,
                    partitions_def=batches(family),
                    description="The batch's LLM spend is within the family's budget (per_partition_usd, else "
                                "per_run_usd), and no endpoint rejected its API key.")
    def llm_spend_within_budget(context: dg.AssetCheckExecutionContext, router: ModelRouter,
                                warehouse: Warehouse) -> dg.AssetCheckResult:
        result = partition_spend(warehouse, family.name, context.partition_key, run_id=context.run.run_id,
                                 budget_usd=budget.partition_limit, ledger_table=router.catalog().ledger_table,
                                 enriched_table=family.table("enriched_records"))
        spend, limit = result.spend, result.budget_usd
        metadata: dict = {
            "spend_usd": dg.MetadataValue.float(round(spend.cost_usd, 6)),
            "calls": dg.MetadataValue.int(spend.calls),
            "tokens_in": dg.MetadataValue.int(spend.tokens_in),
            "tokens_out": dg.MetadataValue.int(spend.tokens_out),
            "source": dg.MetadataValue.text(result.source),
            "budget_usd": dg.MetadataValue.text("unlimited") if limit is None else dg.MetadataValue.float(limit),
            "auth_failures": dg.MetadataValue.int(sum(n for _, _, n in result.auth_failures)),
        }
        if limit:
            metadata["budget_used_pct"] = dg.MetadataValue.float(round(100 * spend.cost_usd / limit, 2))
        return dg.AssetCheckResult(
            passed=result.passed, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata,
            description=result.problems(router.key_source),
        )

    return llm_spend_within_budget
