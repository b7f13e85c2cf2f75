"""Governance: the routing policy applied to every enriched ticket, and the append-only audit log."""


import dagster as dg
import pandas as pd

from resources.audit import natural_key, read_audit, record_events
from resources.policy import RoutingPolicyResource, route
from resources.warehouse import Warehouse

from .ingestion import ticket_batches
from .ui_metadata import counts_md, numeric, preview_md

OWNERS = ["team:support-ops"]
DECISION_COLUMNS = [
    "ticket_id", "decision", "reasons", "policy_hash", "policy_version", "status", "category",
    "category_confidence", "priority", "sentiment", "sentiment_score", "is_vip", "model_version",
    "prompt_hash", "input_hash", "created_at", "partition", "run_id", "decided_at",
]


@dg.asset(
    partitions_def=ticket_batches,
    group_name="governance",
    kinds={"python", "pandas", "sql"},
    owners=OWNERS,
    code_version="1",
)
def routing_decisions(
    context: dg.AssetExecutionContext, enriched_tickets: pd.DataFrame, policy: RoutingPolicyResource
) -> dg.Output[pd.DataFrame]:
    """The routing decision per ticket: auto_send, human_review or escalate, with reason codes.

    Decided by the YAML routing policy; the policy file's hash is on every row.
    """
    pol = policy.load()
    decisions = route(enriched_tickets, pol)
    keep = ["ticket_id"] + [c for c in DECISION_COLUMNS if c in enriched_tickets.columns and c not in decisions.columns]
    df = decisions.merge(enriched_tickets[keep], on="ticket_id", how="left")
    df["partition"] = context.partition_key
    df["run_id"] = context.run_id
    df["decided_at"] = pd.Timestamp.now(tz="UTC")
    df = df[[c for c in DECISION_COLUMNS if c in df.columns]]
    reason_counts = pd.Series([r.split(":")[0] for rs in df["reasons"] for r in rs]).value_counts().to_dict()
    n = max(len(df), 1)
    return dg.Output(
        df,
        metadata={
            "dagster/row_count": len(df),
            "policy_hash": pol.policy_hash,
            "policy_file": dg.MetadataValue.path(pol.source),
            **numeric(
                {
                    "auto_send": int((df["decision"] == "auto_send").sum()),
                    "human_review": int((df["decision"] == "human_review").sum()),
                    "escalate": int((df["decision"] == "escalate").sum()),
                    "automation_rate": float((df["decision"] == "auto_send").sum() / n),
                }
            ),
            "reasons": counts_md(reason_counts, "reason"),
            "preview": preview_md(df, ["ticket_id", "decision", "reasons", "category", "priority", "model_version"]),
        },
    )


@dg.asset(
    partitions_def=ticket_batches,
    group_name="governance",
    kinds={"python", "sql"},
    owners=["team:compliance"],
    code_version="1",
    deps=[routing_decisions],
)
def audit_log(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Append-only record of every decision with its full lineage; one row per decision event.

    Re-materializing a partition adds nothing for decisions already recorded (natural key:
    ticket, decision, reasons, model/prompt/policy versions and input hash); the database
    refuses updates and deletes.
    """
    decisions = warehouse.read_table("routing_decisions", partitions=[context.partition_key])
    code_version = routing_decisions.code_versions_by_key.get(routing_decisions.key) or ""
    events = pd.DataFrame(
        {
            "event_type": "routing_decision",
            "ticket_id": decisions["ticket_id"],
            "decision": decisions["decision"],
            "reasons": decisions["reasons"],
            "actor": "policy",
            "model_version": decisions["model_version"],
            "prompt_hash": decisions["prompt_hash"],
            "policy_hash": decisions["policy_hash"],
            "input_hash": decisions["input_hash"],
            "code_version": code_version,
            "run_id": decisions["run_id"],
            "partition": context.partition_key,
            "recorded_at": pd.Timestamp.now(tz="UTC").isoformat(),
        }
    )
    if len(events):
        events["natural_key"] = [
            natural_key("routing_decision", r.ticket_id, r.decision, sorted(r.reasons), r.model_version,
                        r.prompt_hash, r.policy_hash, r.input_hash)
            for r in events.itertuples(index=False)
        ]
    inserted = record_events(warehouse, events)
    total = len(read_audit(warehouse, partition=context.partition_key, event_type="routing_decision"))
    return dg.MaterializeResult(
        metadata={
            "decisions_seen": len(events),
            "rows_inserted": inserted,
            "already_recorded": len(events) - inserted,
            "partition_audit_rows": total,
            "preview": preview_md(events, ["ticket_id", "decision", "reasons", "model_version", "policy_hash"]),
        }
    )


governance_assets = [routing_decisions, audit_log]
