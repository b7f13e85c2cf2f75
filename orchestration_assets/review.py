"""Human-in-the-loop review: the queue, reviewer decisions, feedback for retraining and dispatch.

Dagster has no built-in approval step, so review is part of the asset graph: tickets routed to
``human_review`` / ``escalate`` appear in ``review_queue``; a reviewer records a decision with
the ``record_review_decision`` job (UI launchpad) or ``triage-review decide`` (CLI); the
``review_decision_sensor`` then runs ``dispatch_job``, which delivers approved replies (and the
policy's ``auto_send`` replies) through the outbox exactly once per ticket.
"""


from typing import Optional

import dagster as dg
import pandas as pd

from resources.audit import record_events
from resources.outbox import Outbox, read_ledger
from resources.warehouse import Warehouse

from .core.review import (
    ReviewAction,
    ReviewError,
    backlog_stats,
    dispatch_audit_events,
    dispatch_candidates,
    feedback_rows,
    kpi_review as compute_kpi_review,
    parse_decision,
    read_review_decisions,
    reason_counts,
    reconcile_audit,
    record_decision,
    review_queue as compute_review_queue,
)
from .ui_metadata import counts_md, numeric, preview_md

OWNERS = ["team:support-ops"]
OLDEST_SHOWN = 15


def _read(warehouse: Warehouse, table: str) -> pd.DataFrame:
    return warehouse.read_table(table) if warehouse.has_table(table) else pd.DataFrame(columns=["ticket_id"])


@dg.asset(
    group_name="governance",
    kinds={"python", "sql"},
    owners=OWNERS,
    code_version="1",
)
def review_decisions(warehouse: Warehouse) -> dg.MaterializeResult:
    """Every human review decision, one row per ticket (approve, edit_and_approve, reject, relabel).

    Rows are written by the `record_review_decision` job and the `triage-review` CLI; this asset
    reports them and makes sure each one is in the audit log (after a crash between the two
    writes, it adds the missing audit event).
    """
    df = read_review_decisions(warehouse)
    added = reconcile_audit(warehouse)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(df),
            "audit_events_backfilled": added,
            "decisions": counts_md(df["decision"].value_counts().to_dict(), "decision"),
            "reviewers": counts_md(df["reviewer"].value_counts().to_dict(), "reviewer", "decisions"),
            "latest": preview_md(df.iloc[::-1], ["ticket_id", "decision", "reviewer", "corrected_label", "note", "decided_at"]),
        }
    )


@dg.asset(
    group_name="governance",
    kinds={"python", "pandas", "sql"},
    owners=OWNERS,
    code_version="1",
    deps=["routing_decisions", "enriched_tickets", review_decisions],
    # follows new routing decisions and reviewer decisions however they were materialized
    # (a triage run, a dispatch run, or a user re-routing one batch from the UI)
    automation_condition=dg.AutomationCondition.eager(),
)
def review_queue(warehouse: Warehouse) -> dg.MaterializeResult:
    """Items waiting for a reviewer, oldest first: one row per human_review / escalate ticket not yet decided.

    Each row has the ticket, the draft, the routing reasons, the model version and its age in the queue.
    """
    queue = compute_review_queue(_read(warehouse, "routing_decisions"), _read(warehouse, "enriched_tickets"),
                                 read_review_decisions(warehouse))
    stats = backlog_stats(queue)
    oldest = queue.head(OLDEST_SHOWN)
    warehouse.replace_table("review_queue", queue)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(queue),
            **numeric({
                "pending": stats.pending,
                "escalations_pending": int((queue["decision"] == "escalate").sum()),
                "oldest_age_hours": stats.oldest_age_hours,
                "mean_age_hours": stats.mean_age_hours,
            }),
            "oldest_items": preview_md(
                oldest, ["ticket_id", "decision", "age_hours", "reasons", "category", "priority", "model_version",
                         "subject", "draft_reply"], rows=OLDEST_SHOWN),
            "by_reason": counts_md(reason_counts(queue), "reason", "items"),
        },
    )


@dg.asset(
    group_name="governance",
    kinds={"python", "pandas", "sql"},
    owners=["team:ml"],
    code_version="1",
    deps=[review_decisions, "enriched_tickets"],
)
def review_feedback(warehouse: Warehouse) -> dg.MaterializeResult:
    """Training rows from human review, one per decided ticket: relabels and approvals.

    Columns ticket_id, subject, body, label, source (``review:relabel`` / ``review:approve`` /
    ``review:edit_and_approve``), recorded_at; the classifier's retraining reads this table.
    """
    df = feedback_rows(read_review_decisions(warehouse), _read(warehouse, "enriched_tickets"))
    warehouse.replace_table("review_feedback", df)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(df),
            "relabelled": int((df["source"] == "review:relabel").sum()),
            "labels": counts_md(df["label"].value_counts().to_dict(), "label"),
            "preview": preview_md(df, ["ticket_id", "label", "source", "subject"]),
        },
    )


@dg.asset(
    group_name="governance",
    kinds={"python", "sql"},
    owners=OWNERS,
    code_version="1",
    deps=["routing_decisions", "enriched_tickets", review_decisions],
)
def dispatched_responses(context: dg.AssetExecutionContext, warehouse: Warehouse,
                         outbox: Outbox) -> dg.MaterializeResult:
    """Replies that went out, one row per ticket: auto_send drafts plus human-approved replies.

    Delivered through the outbox exactly once per ticket; re-running sends nothing already sent.
    """
    candidates = dispatch_candidates(_read(warehouse, "routing_decisions"), _read(warehouse, "enriched_tickets"),
                                     read_review_decisions(warehouse))
    report = outbox.deliver(warehouse, candidates, run_id=context.run_id)
    if report.failed:
        context.log.error(f"{len(report.failed)} deliveries failed (retried next run): "
                          + "; ".join(f"{k}: {v}" for k, v in list(report.failed.items())[:5]))
    ledger = read_ledger(warehouse.engine)
    delivered = ledger[ledger["status"] == "delivered"][["ticket_id", "source", "file_path", "webhook_status",
                                                          "run_id", "delivered_at", "attempts"]]
    df = delivered.merge(candidates[["ticket_id", "account_id", "reply", "approved_by", "model_version", "category",
                                     "created_at", "approved_at"]], on="ticket_id", how="left")
    ttr = (pd.to_datetime(df["delivered_at"], utc=True, format="ISO8601")
           - pd.to_datetime(df["created_at"], utc=True, errors="coerce", format="ISO8601")).dt.total_seconds() / 3600
    df["time_to_resolution_hours"] = ttr.round(3)
    failed = ledger[ledger["status"] == "failed"]
    warehouse.replace_table("dispatched_responses", df)
    audited = record_events(warehouse, dispatch_audit_events(df))  # also back-fills after a crash
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(df),
            **numeric({**report.as_metadata(), "pending_retry": len(failed), "audit_events_added": audited}),
            "outbox": dg.MetadataValue.text(outbox.describe()),
            "by_source": counts_md(df["source"].value_counts().to_dict(), "source"),
            "this_run": preview_md(df[df["ticket_id"].isin(report.delivered + report.recovered)],
                                   ["ticket_id", "source", "approved_by", "reply"]),
            "failures": preview_md(failed, ["ticket_id", "error", "attempts"]),
        },
    )


@dg.asset_check(asset=dispatched_responses, description="Every cleared reply was delivered (none left failed in the ledger).")
def no_failed_deliveries(warehouse: Warehouse) -> dg.AssetCheckResult:
    failed = read_ledger(warehouse.engine, status="failed")
    return dg.AssetCheckResult(
        passed=failed.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"failed": len(failed), "tickets": dg.MetadataValue.text(", ".join(failed["ticket_id"].head(20)))},
    )


@dg.asset(
    group_name="kpis",
    kinds={"python", "pandas", "sql"},
    owners=OWNERS,
    code_version="1",
    deps=[review_decisions, dispatched_responses, review_queue],
)
def kpi_review(warehouse: Warehouse) -> dg.MaterializeResult:
    """Review burden and time to resolution, one row per UTC day.

    Decisions, reviewer-hours and items per reviewer-hour; replies dispatched and time from ticket
    creation to dispatch (p50/p95 hours); the backlog's size and age are in the metadata.
    """
    reviewed = read_review_decisions(warehouse)
    dispatched = _read(warehouse, "dispatched_responses")
    df = compute_kpi_review(reviewed, dispatched if "delivered_at" in dispatched else pd.DataFrame())
    stats = backlog_stats(_read(warehouse, "review_queue"))
    latest = df.iloc[-1].to_dict() if len(df) else {}
    total_rh = int(df["reviewer_hours"].sum()) if len(df) else 0
    warehouse.replace_table("kpi_review", df)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(df),
            **numeric({
                "backlog_pending": stats.pending,
                "backlog_oldest_age_hours": stats.oldest_age_hours,
                "backlog_mean_age_hours": stats.mean_age_hours,
                "items_per_reviewer_hour": float(df["decisions"].sum() / total_rh) if total_rh else None,
                "time_to_resolution_p50_hours": latest.get("time_to_resolution_p50_hours"),
                "time_to_resolution_p95_hours": latest.get("time_to_resolution_p95_hours"),
            }),
            "preview": preview_md(df),
        },
    )


dispatch_job = dg.define_asset_job(
    name="dispatch_job",
    selection=dg.AssetSelection.assets(review_decisions, review_queue, review_feedback, dispatched_responses, kpi_review),
    description="Deliver approved and auto_send replies exactly once; refresh the review queue, feedback and review KPIs.",
    tags={"workflow": "review"},
)

review_assets = [review_decisions, review_queue, review_feedback, dispatched_responses, kpi_review]
review_checks = [no_failed_deliveries]


# ---- recording a decision from the launchpad ---------------------------------------------------
class ReviewDecisionConfig(dg.Config):
    """A reviewer's decision on one queued ticket."""

    ticket_id: str
    decision: ReviewAction
    reviewer: str
    edited_reply: Optional[str] = None  # required for edit_and_approve; must contain no PII
    corrected_label: Optional[str] = None  # required for relabel
    note: str = ""


@dg.op(description="Validate a reviewer's decision and record it in review_decisions and the audit log.")
def record_decision_op(context: dg.OpExecutionContext, config: ReviewDecisionConfig, warehouse: Warehouse) -> None:
    try:
        decision = parse_decision(**config.model_dump())
        row = record_decision(warehouse, decision, run_id=context.run_id, channel="launchpad")
    except ReviewError as exc:
        raise dg.Failure(description=f"decision not recorded: {exc}", allow_retries=False) from None
    context.log.info(f"recorded {row['decision']} on {row['ticket_id']} by {row['reviewer']}")
    context.log_event(
        dg.AssetMaterialization(
            asset_key=review_decisions.key,
            description=f"{row['decision']} on {row['ticket_id']} by {row['reviewer']}",
            metadata={"ticket_id": row["ticket_id"], "decision": row["decision"], "reviewer": row["reviewer"],
                      "review_id": row["review_id"], "routed_decision": row["routed_decision"] or ""},
        )
    )


@dg.job(
    name="record_review_decision",
    description="Record a reviewer's decision on a queued ticket (launch from the launchpad with the decision as config).",
    tags={"workflow": "review"},
    config={"ops": {"record_decision_op": {"config": {
        "ticket_id": "", "decision": "approve", "reviewer": "", "edited_reply": None, "corrected_label": None,
        "note": ""}}}},
)
def record_review_decision_job():
    record_decision_op()
