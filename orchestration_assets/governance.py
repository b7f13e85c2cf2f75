"""Governance assets of a family: the policy's decision per record, and the append-only audit log."""

import dagster as dg
import pandas as pd

from resources.audit import count_audit, natural_keys, record_changes
from resources.warehouse import Warehouse, store

from .core.policy import decide, input_columns, policy_version
from .family import Family
from .partitions import batches
from .ui_metadata import counts_md, numeric, preview_md

PROVENANCE = ["status", "model_version", "model_versions", "prompt_version", "input_hash"]
# what a routing decision is, for the audit log: a re-run that leaves these alone adds no row
ROUTING_STATE = ("decision", "model_version", "prompt_version", "policy_version")
# the decision columns an audit event carries (the answers copied onto each decision are not among them)
AUDITED = ["record_id", "decision", "reasons", *ROUTING_STATE[1:], "input_hash", "run_id", "model_versions"]


def decision_columns(family: Family) -> list[str]:
    """Answer columns copied onto each decision (what a reviewer or a KPI reads without a join)."""
    cols: list[str] = []
    for t in family.tasks.values():
        cols += [n for n, kind in t.value_names().items() if kind not in ("map", "list")]
    return cols


def routing_asset(family: Family) -> dg.AssetsDefinition:
    answers = decision_columns(family)

    @dg.asset(
        key=dg.AssetKey(family.key("routing_decisions")),
        group_name=family.group("governance"),
        description=(
            "The policy's decision per record: auto_send, human_review or escalate, with the reason codes "
            "of every rule that fired and the policy version. One row per enriched record."
        ),
        deps=[dg.AssetKey(family.key("enriched_records"))],
        partitions_def=batches(family),
        kinds={"python", "pandas", "sql"},
        owners=family.owners,
        code_version="2",
    )
    def routing_decisions(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        table = family.table("enriched_records")
        ts = family.timestamp_field
        wanted = dict.fromkeys([*input_columns(family), *PROVENANCE, *answers, *([ts] if ts else []), "ingested_at"])
        present = set(warehouse.columns(table))
        # the wide table's other columns (provenance per task, texts, documents) decide nothing here
        enriched = warehouse.read_table(table, partitions=[context.partition_key],
                                        columns=[c for c in wanted if c in present])
        df = decide(family, enriched)
        keep = [c for c in [*PROVENANCE, *answers] if c in enriched.columns]
        times = enriched[ts] if ts and ts in enriched.columns else enriched.get("ingested_at")
        if enriched["record_id"].is_unique:  # one decision per row, in the rows' order: no join to make
            enriched = enriched.reset_index(drop=True)
            df = pd.concat([df, enriched[keep]], axis=1)
            df["record_time"] = times.reset_index(drop=True) if times is not None else None
        else:
            df = df.merge(enriched[["record_id", *keep]], on="record_id", how="left")
            df["record_time"] = df["record_id"].map(dict(zip(enriched["record_id"], times))) \
                if times is not None else None
        df["partition"], df["run_id"], df["decided_at"] = context.partition_key, context.run_id, pd.Timestamp.now(tz="UTC")
        n = max(len(df), 1)
        reasons = pd.Series([r.split(":")[0] for rs in df["reasons"] for r in rs], dtype=object).value_counts()
        errors = int(df["policy_errors"].map(len).gt(0).sum()) if len(df) else 0
        if errors:
            context.log.warning(f"{errors} record(s) had a policy rule that could not be evaluated; they go to review")
        return dg.MaterializeResult(metadata={
            **store(warehouse, family.table("routing_decisions"), df, context.partition_key),
            "dagster/row_count": len(df),
            "policy_version": dg.MetadataValue.text(policy_version(family)),
            "policy_source": dg.MetadataValue.path(family.source),
            **numeric({
                "auto_send": int((df["decision"] == "auto_send").sum()),
                "human_review": int((df["decision"] == "human_review").sum()),
                "escalate": int((df["decision"] == "escalate").sum()),
                "automation_rate": float((df["decision"] == "auto_send").sum() / n),
                "policy_errors": errors,
            }),
            "reasons": counts_md(reasons.to_dict(), "reason"),
            "preview": preview_md(df, ["record_id", "decision", "reasons", "model_version"]),
        })

    return routing_decisions


def routing_audit_events(family: Family, decisions: pd.DataFrame, code_version: str, partition: str) -> pd.DataFrame:
    """One ``routing_decision`` audit event per decision; its natural key is the decision and what made it."""
    events = pd.DataFrame({
        "family": family.name,
        "event_type": "routing_decision",
        "record_id": decisions["record_id"],
        "decision": decisions["decision"],
        "reasons": decisions["reasons"],
        "actor": "policy",
        "model_version": decisions["model_version"],
        "prompt_version": decisions["prompt_version"],
        "policy_version": decisions["policy_version"],
        "input_hash": decisions["input_hash"],
        "code_version": code_version,
        "run_id": decisions["run_id"],
        "partition": partition,
        "details": [{"model_versions": mv} for mv in decisions.get("model_versions", [None] * len(decisions))],
        "recorded_at": pd.Timestamp.now(tz="UTC").isoformat(),
    })
    if len(events):
        events["natural_key"] = natural_keys(family.name, "routing_decision", events["record_id"].tolist(),
                                             *(events[c].tolist() for c in ROUTING_STATE))
    return events


def audit_asset(family: Family, routing: dg.AssetsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=dg.AssetKey(family.key("audit_log")),
        group_name=family.group("governance"),
        description=(
            "Append-only record of every decision with its lineage (model, prompt and policy versions, input "
            "hash, run); one row per decision event, in the shared `audit_log` table with this family's name.\n\n"
            "Re-materializing a partition adds a row only for a record whose decision, model, prompt or policy "
            "version changed; the database refuses updates and deletes."
        ),
        deps=[routing.key],
        partitions_def=batches(family),
        kinds={"python", "sql"},
        owners=family.owners,
        code_version="3",
    )
    def audit_log(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        table = family.table("routing_decisions")
        # the decisions' answer columns are not part of an audit event: read what routing_audit_events uses
        present = set(warehouse.columns(table))
        decisions = warehouse.read_table(table, partitions=[context.partition_key],
                                         columns=[c for c in AUDITED if c in present])
        code_version = routing.code_versions_by_key.get(routing.key) or ""
        events = routing_audit_events(family, decisions, code_version, context.partition_key)
        inserted = record_changes(warehouse, events, ROUTING_STATE)
        total = count_audit(warehouse, family=family.name, partition=context.partition_key,
                            event_type="routing_decision")
        return dg.MaterializeResult(metadata={
            "decisions_seen": len(events),
            "rows_inserted": inserted,
            "already_recorded": len(events) - inserted,
            "partition_audit_rows": total,
            "preview": preview_md(events, ["record_id", "decision", "reasons", "model_version", "policy_version"]),
        })

    return audit_log


def governance_assets(family: Family) -> list[dg.AssetsDefinition]:
    routing = routing_asset(family)
    return [routing, audit_asset(family, routing)]
