"""AI-output guardrails on `enriched_tickets`, re-verified independently of the enrichment code.

The severe ones are blocking: when they fail, `routing_decisions` does not run on bad outputs.
"""


import dagster as dg
import pandas as pd

from orchestration_assets.ingestion import ticket_batches
from resources.policy import RoutingPolicyResource
from resources.providers.base import CATEGORIES, PRIORITIES, SENTIMENTS
from resources.warehouse import Warehouse

ASSET = dg.AssetKey("enriched_tickets")
SAMPLE = 10


def _load(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> pd.DataFrame:
    return warehouse.read_table("enriched_tickets", partitions=[context.partition_key])


def _sample(df: pd.DataFrame, cols: list[str]) -> dg.MetadataValue:
    return dg.MetadataValue.json(df[cols].head(SAMPLE).astype(str).to_dict(orient="records"))


@dg.asset_check(asset=ASSET, blocking=True, partitions_def=ticket_batches)
def labels_in_allowed_set(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
    """Every enriched ticket's category, priority and sentiment are in the allowed sets."""
    df = _load(context, warehouse)
    ok = df[df["status"] == "enriched"]
    bad = ok[
        ~ok["category"].isin(CATEGORIES) | ~ok["priority"].isin(PRIORITIES) | ~ok["sentiment"].isin(SENTIMENTS)
    ]
    return dg.AssetCheckResult(
        passed=bad.empty,
        metadata={"rows_checked": len(ok), "unexpected_count": len(bad),
                  "unexpected_sample": _sample(bad, ["ticket_id", "category", "priority", "sentiment"])},
    )


@dg.asset_check(asset=ASSET, blocking=True, partitions_def=ticket_batches)
def confidence_in_unit_interval(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
    """Category confidence is a probability in [0, 1] on every enriched ticket."""
    df = _load(context, warehouse)
    ok = df[df["status"] == "enriched"]
    conf = pd.to_numeric(ok["category_confidence"], errors="coerce")
    bad = ok[conf.isna() | (conf < 0) | (conf > 1)]
    return dg.AssetCheckResult(
        passed=bad.empty,
        metadata={"rows_checked": len(ok), "unexpected_count": len(bad),
                  "min_confidence": float(conf.min()) if len(conf.dropna()) else 0.0,
                  "unexpected_sample": _sample(bad, ["ticket_id", "category_confidence"])},
    )


@dg.asset_check(asset=ASSET, blocking=True, partitions_def=ticket_batches)
def drafts_free_of_pii(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
    """No stored draft reply contains an email, phone number, card number or IBAN."""
    from resources.redaction import find_pii

    df = _load(context, warehouse)
    hits = [(tid, [k for k, _ in find_pii(d)]) for tid, d in zip(df["ticket_id"], df["draft_reply"]) if isinstance(d, str)]
    bad = [(tid, kinds) for tid, kinds in hits if kinds]
    return dg.AssetCheckResult(
        passed=not bad,
        metadata={"drafts_checked": len(hits), "drafts_with_pii": len(bad),
                  "sample": dg.MetadataValue.json([{"ticket_id": t, "pii_kinds": k} for t, k in bad[:SAMPLE]]),
                  "redacted_by_guardrail": int(df["pii_redacted_in_draft"].fillna(0).astype(int).gt(0).sum())},
    )


@dg.asset_check(asset=ASSET, blocking=True, partitions_def=ticket_batches)
def drafts_do_not_echo_injection(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
    """A draft that repeats a prompt-injection phrase from its ticket is flagged, so it is never auto-sent."""
    from orchestration_assets.core.guardrails import echoed_injection_phrases

    df = _load(context, warehouse)
    unflagged = []
    echoing = 0
    for rec in df[["ticket_id", "subject", "body", "draft_reply", "guardrail_violations"]].to_dict(orient="records"):
        phrases = echoed_injection_phrases(rec["draft_reply"] or "", f"{rec['subject'] or ''}\n{rec['body'] or ''}")
        if phrases:
            echoing += 1
            if "injection_echo" not in (rec["guardrail_violations"] or []):
                unflagged.append({"ticket_id": rec["ticket_id"], "phrases": phrases})
    return dg.AssetCheckResult(
        passed=not unflagged,
        metadata={"drafts_checked": len(df), "drafts_echoing_injection": echoing,
                  "unflagged": len(unflagged), "sample": dg.MetadataValue.json(unflagged[:SAMPLE])},
    )


@dg.asset_check(asset=ASSET, blocking=True, partitions_def=ticket_batches)
def failure_rate_below_threshold(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse, policy: RoutingPolicyResource
) -> dg.AssetCheckResult:
    """The share of tickets whose enrichment failed stays under the policy's `guardrails.max_failure_rate`."""
    df = _load(context, warehouse)
    limit = policy.load().guardrails.max_failure_rate
    failed = df[df["status"] != "enriched"]
    rate = len(failed) / len(df) if len(df) else 0.0
    return dg.AssetCheckResult(
        passed=rate <= limit,
        metadata={"failure_rate": float(rate), "max_failure_rate": float(limit), "failed": len(failed),
                  "rows": len(df), "sample": _sample(failed, ["ticket_id", "failure_reason"])},
    )


guardrail_checks = [
    labels_in_allowed_set,
    confidence_in_unit_interval,
    drafts_free_of_pii,
    drafts_do_not_echo_injection,
    failure_rate_below_threshold,
]
