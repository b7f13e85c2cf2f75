"""Human-in-the-loop assets of a family: reviewer decisions, the queue, feedback and dispatch.

Dagster has no approval step, so review is part of the asset graph: records routed to
``human_review`` / ``escalate`` appear in the family's ``review_queue``; a reviewer records a
decision with the family's ``record_review_decision`` job (launchpad) or ``review decide`` (CLI);
the review-decision sensor then runs the family's dispatch job, which delivers approved outputs
(and the policy's ``auto_send`` ones) through the outbox exactly once per record.
"""

import functools
import os
from typing import Callable, Optional

import dagster as dg

from resources.audit import record_events
from resources.outbox import DispatchInterrupted, Outbox, read_ledger
from resources.warehouse import Warehouse

from .core.dispatch import (
    backlog_stats,
    candidate_columns,
    delivered_outputs,
    delivery_drift,
    dispatch_audit_events,
    dispatch_candidates,
    feedback_columns,
    feedback_rows,
)
from .core.review import (
    ReviewDecision,
    ReviewError,
    read_review_decisions,
    reason_counts,
    reconcile_audit,
    record_decision,
    review_queue,
    review_queue_columns,
)
from .family import Family
from .inputs import whole_table
from .ui_metadata import counts_md, numeric, preview_md

OLDEST_SHOWN = 15


class ReviewDecisionConfig(dg.Config):
    """A reviewer's decision on one queued record; empty ``record_id`` = only refresh the report."""

    record_id: str = ""
    decision: str = ""
    reviewer: str = ""
    edited_text: Optional[str] = None  # required for edit_and_approve; must contain no PII
    corrected_label: Optional[str] = None  # required for relabel
    note: str = ""



def review_assets(family: Family) -> list[dg.AssetsDefinition]:
    group = family.group("governance")
    key = lambda name: dg.AssetKey(family.key(name))  # noqa: E731 - short local alias
    common = dict(group_name=group, owners=family.owners, code_version="2")

    @dg.asset(key=key("review_decisions"), kinds={"python", "sql"}, deps=[key("routing_decisions")], **common,
              description="Every reviewer decision of this family, one row per record (in the shared "
                          "`review_decisions` table); each one is also in the audit log. Launched with a decision "
                          "as config (the record_review_decision job), it validates and records that decision first.")
    def decisions(context: dg.AssetExecutionContext, config: ReviewDecisionConfig,
                  warehouse: Warehouse) -> dg.MaterializeResult:
        recorded = {}
        if config.record_id:
            try:
                decision = ReviewDecision(**config.model_dump())
                recorded = record_decision(warehouse, family, decision, run_id=context.run_id, channel="launchpad")
            except (ReviewError, ValueError) as exc:
                raise dg.Failure(description=f"decision not recorded: {exc}", allow_retries=False) from None
            context.log.info(f"recorded {recorded['decision']} on {recorded['record_id']} by {recorded['reviewer']}")
        df = read_review_decisions(warehouse, family.name)
        added = reconcile_audit(warehouse, family.name)  # after a crash between the two writes
        meta = {
            "dagster/row_count": len(df),
            "audit_events_backfilled": added,
            "decisions": counts_md(df["decision"].value_counts().to_dict(), "decision"),
            "reviewers": counts_md(df["reviewer"].value_counts().to_dict(), "reviewer", "decisions"),
            "latest": preview_md(df.iloc[::-1], ["record_id", "decision", "reviewer", "corrected_label", "decided_at"]),
        }
        if recorded:
            meta.update({"recorded_record_id": recorded["record_id"], "recorded_decision": recorded["decision"],
                         "recorded_reviewer": recorded["reviewer"], "review_id": recorded["review_id"]})
        return dg.MaterializeResult(metadata=meta)

    @dg.asset(key=key("review_queue"), kinds={"python", "pandas", "sql"}, **common,
              deps=[key("routing_decisions"), key("enriched_records"), decisions.key],
              # follows new routing and reviewer decisions however they were materialized
              automation_condition=dg.AutomationCondition.eager(),
              description="Items waiting for a reviewer, oldest first: one row per human_review / escalate "
                          "record not yet decided, with its answers, reasons, model version and age.")
    def queue(warehouse: Warehouse) -> dg.MaterializeResult:
        routed, shown = review_queue_columns(family)
        routing = whole_table(warehouse, family, "routing_decisions", routed)
        # the queue takes a column from the enriched records only when the routing decisions lack it
        enriched = whole_table(warehouse, family, "enriched_records", [c for c in shown if c not in routing.columns])
        q = review_queue(family, routing, enriched, read_review_decisions(warehouse, family.name))
        stats = backlog_stats(q)
        warehouse.replace_table(family.table("review_queue"), q)
        return dg.MaterializeResult(metadata={
            "dagster/row_count": len(q),
            **numeric({"pending": stats.pending, "escalations_pending": int((q["decision"] == "escalate").sum()),
                       "oldest_age_hours": stats.oldest_age_hours, "mean_age_hours": stats.mean_age_hours}),
            "oldest_items": preview_md(q.head(OLDEST_SHOWN), list(q.columns)[:9], rows=OLDEST_SHOWN),
            "by_reason": counts_md(reason_counts(q), "reason", "items"),
        })

    @dg.asset(key=key("review_feedback"), kinds={"python", "pandas", "sql"}, **common,
              deps=[decisions.key, key("enriched_records")],
              description="Training rows from human review, one per decided record: relabels carry the "
                          "corrected label, approvals confirm the model's; the classifier retrains on them.")
    def feedback(warehouse: Warehouse) -> dg.MaterializeResult:
        df = feedback_rows(family, read_review_decisions(warehouse, family.name),
                           whole_table(warehouse, family, "enriched_records", feedback_columns(family)))
        warehouse.replace_table(family.table("review_feedback"), df)
        return dg.MaterializeResult(metadata={
            "dagster/row_count": len(df),
            "relabelled": int((df["source"] == "review:relabel").sum()),
            "labels": counts_md(df["label"].value_counts().to_dict(), "label"),
            "preview": preview_md(df, ["record_id", "label", "source"]),
        })

    @dg.asset(key=key("dispatches"), kinds={"python", "sql"}, group_name=group, owners=family.owners, code_version="3",
              deps=[key("routing_decisions"), key("enriched_records"), decisions.key],
              description="What went out, one row per record, as it was sent: auto_send outputs plus human-approved "
                          "ones, delivered through the outbox exactly once per record. An output that changed after "
                          "it went out is counted (changed_after_delivery), never shown as sent.")
    def dispatches(context: dg.AssetExecutionContext, warehouse: Warehouse, outbox: Outbox) -> dg.MaterializeResult:
        dispatch = family.spec.dispatch
        webhook = os.getenv(dispatch.webhook_url_env, "") if dispatch.webhook_url_env else ""
        routed, enriched = candidate_columns(family)
        candidates = dispatch_candidates(family, whole_table(warehouse, family, "routing_decisions", routed),
                                         whole_table(warehouse, family, "enriched_records", enriched),
                                         read_review_decisions(warehouse, family.name))
        dispatcher = outbox.dispatcher(warehouse, family.name, dispatch.folder, webhook)
        run_is_over = ended_runs(context.instance)

        def audit(deliveries: list[dict]) -> None:  # as soon as the ledger has them: a crash loses at most those in flight
            record_events(warehouse, dispatch_audit_events(family.name, deliveries))

        try:
            report = dispatcher.deliver(candidates, run_id=context.run_id, run_is_over=run_is_over,
                                        on_delivered_many=audit)
        except DispatchInterrupted as exc:
            raise dg.Failure(description=str(exc), metadata={"in_doubt_record": exc.record_id}) from None
        if report.failed:
            context.log.error(f"{len(report.failed)} deliveries failed (retried next run): "
                              + "; ".join(f"{k}: {v}" for k, v in list(report.failed.items())[:5]))
        ledger = read_ledger(warehouse.engine, family=family.name)
        df = delivered_outputs(family, ledger, candidates)
        warehouse.replace_table(family.table("dispatches"), df)
        # back-fills what a crash kept from the audit log; this run's deliveries were audited as they went out
        sent_now = set(report.delivered) | set(report.recovered)
        audited = record_events(warehouse, dispatch_audit_events(family.name, df[~df["record_id"].isin(sent_now)]))
        failed, in_doubt = ledger[ledger["status"] == "failed"], dispatcher.in_doubt(run_is_over)
        drift = delivery_drift(family, ledger, candidates, sent_now=report.delivered)
        if len(in_doubt):
            context.log.warning(f"{len(in_doubt)} deliveries in doubt (claimed by a dispatcher that did not finish): "
                                + ", ".join(in_doubt["record_id"].head(20)))
        return dg.MaterializeResult(metadata={
            "dagster/row_count": len(df),
            **numeric({**report.as_metadata(), "pending_retry": len(failed), "in_doubt": len(in_doubt),
                       "changed_after_delivery": len(drift.changed), "withdrawn_after_delivery": len(drift.withdrawn),
                       "audit_events_added": audited}),
            "outbox": dg.MetadataValue.text(outbox.describe(family.name, dispatch.folder, webhook)),
            "by_source": counts_md(df["source"].value_counts().to_dict(), "source"),
            "this_run": preview_md(df[df["record_id"].isin(report.delivered + report.recovered)],
                                   ["record_id", "source", "approved_by", "text"]),
            "failures": preview_md(failed, ["record_id", "error", "attempts"]),
            "in_doubt_records": dg.MetadataValue.text(", ".join(in_doubt["record_id"].head(20))),
            "held_elsewhere_records": dg.MetadataValue.text(", ".join(report.held[:20])),
            "changed_after_delivery_records": dg.MetadataValue.text(", ".join(drift.changed[:20])),
        })

    return [decisions, queue, feedback, dispatches]


def delivery_check(family: Family) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=dg.AssetKey(family.key("dispatches")), name="no_failed_deliveries",
                    description="Every cleared output was delivered: none left failed in the ledger, none in doubt "
                                "(claimed by a dispatcher that crashed: past its lease, or its run has ended).")
    def no_failed_deliveries(context: dg.AssetCheckExecutionContext, warehouse: Warehouse,
                             outbox: Outbox) -> dg.AssetCheckResult:
        failed = read_ledger(warehouse.engine, status="failed", family=family.name)
        dispatcher = outbox.dispatcher(warehouse, family.name, family.spec.dispatch.folder)
        in_doubt = dispatcher.in_doubt(ended_runs(context.instance))
        return dg.AssetCheckResult(
            passed=failed.empty and in_doubt.empty,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"{len(in_doubt)} in doubt: the next dispatch run retries those still cleared to go out, "
                        "with the same idempotency key" if len(in_doubt) else None,
            metadata={"failed": len(failed), "records": dg.MetadataValue.text(", ".join(failed["record_id"].head(20))),
                      "in_doubt": len(in_doubt),
                      "in_doubt_records": dg.MetadataValue.text(", ".join(in_doubt["record_id"].head(20)))},
        )

    return no_failed_deliveries


def ended_runs(instance: dg.DagsterInstance) -> Callable[[str], bool]:
    """run id -> whether the instance knows that run has ended (a claim it still holds is in doubt)."""

    @functools.lru_cache(maxsize=256)
    def ended(run_id: str) -> bool:
        run = instance.get_run_by_id(run_id)
        return run is not None and run.is_finished

    return ended


def record_decision_job(family: Family):
    """The launchpad's way to decide: ``review_decisions`` materialized with the decision as config."""
    op_name = "__".join(family.key("review_decisions"))
    return dg.define_asset_job(
        name=family.job_name("record_review_decision"),
        executor_def=dg.in_process_executor,  # one step: no process to spawn for it
        selection=dg.AssetSelection.assets(dg.AssetKey(family.key("review_decisions"))),
        description=f"Record a reviewer's decision on a queued {family.name} record (launch from the launchpad "
                    f"with the decision as config; actions: {', '.join(family.spec.review.actions)}).",
        tags={"family": family.name, "workflow": "review"},
        config={"ops": {op_name: {"config": {
            "record_id": "", "decision": family.spec.review.actions[0], "reviewer": "", "edited_text": None,
            "corrected_label": None, "note": ""}}}},
    )
