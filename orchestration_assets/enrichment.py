"""Enrichment: specialist agents fan out from `raw_tickets`, `enriched_tickets` joins them.

Each specialist (classifier + prioritiser, sentiment, summariser, drafter, compliance flagger)
is its own asset so they run in parallel and the lineage graph shows the fan-out/fan-in. Every
model call goes through the router, which picks the provider (the embedded local model by
default), applies fallback, retries, cache, cost accounting and budgets.
"""


import dagster as dg
import pandas as pd

from resources.compliance import flag_compliance
from resources.policy import RoutingPolicyResource
from resources.providers.base import Task
from resources.providers.local import LocalModelStore
from resources.retrieval import KnowledgeBaseIndex
from resources.router import ModelRouter, RouterSession
from resources.warehouse import Warehouse

from .core.enrichment import assemble_enriched, results_frame, to_inputs
from .core.guardrails import apply_draft_guardrails
from .ingestion import ticket_batches
from .ui_metadata import counts_md, numeric, preview_md

OWNERS = ["team:support-ops"]
POOL = "model_calls"  # runs share the providers' rate limits through this Dagster concurrency pool
RETRIEVED_ARTICLES = 3

_specialist = dict(
    partitions_def=ticket_batches,
    group_name="enrichment",
    owners=OWNERS,
    pool=POOL,
)


def _session(context: dg.AssetExecutionContext, router: ModelRouter, local_models: LocalModelStore,
             warehouse: Warehouse) -> RouterSession:
    # the registry's classify champion answers; with none yet, the default model is trained and promoted
    from resources.registry import ModelRegistry, ensure_champion

    champion = ensure_champion(ModelRegistry.for_warehouse(warehouse), local_models, warehouse=warehouse,
                               actor=f"dagster:run:{context.run_id[:8]}")
    context.log.info(f"local model: classify champion {champion.version}")
    return router.session(
        local=local_models.provider(version=champion.version),
        warehouse=warehouse,
        run_id=context.run_id,
        partition=context.partition_key,
        logger=context.log,
    )


def _router_metadata(session: RouterSession) -> dict[str, dg.MetadataValue]:
    stats = session.stats().as_metadata()
    out: dict[str, dg.MetadataValue] = {}
    for key, value in stats.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)):
            out.update(numeric({key: value}))
        else:
            out[key] = dg.MetadataValue.text(str(value))
    return out


def _task_output(df: pd.DataFrame, prefix: str, session: RouterSession, preview_cols: list[str], **extra) -> dg.Output:
    errors = int(df[f"{prefix}_error"].notna().sum()) if len(df) else 0
    versions = df[f"{prefix}_model_version"].dropna().unique().tolist() if len(df) else []
    return dg.Output(
        df,
        metadata={
            "dagster/row_count": len(df),
            "errors": errors,
            "model_versions": dg.MetadataValue.text(", ".join(map(str, versions)) or "none"),
            "paths": counts_md(df[f"{prefix}_path"].value_counts().to_dict() if len(df) else {}, "path"),
            "preview": preview_md(df, preview_cols),
            **_router_metadata(session),
            **extra,
        },
    )


@dg.asset(
    kinds={"python", "scikit-learn"},
    code_version="1",
    # the classify champion answers; the edge puts the model registry into the tickets' lineage
    deps=[dg.AssetKey("champion_model")],
    **_specialist,
)
def ticket_classifications(
    context: dg.AssetExecutionContext,
    raw_tickets: pd.DataFrame,
    crm_accounts: pd.DataFrame,
    router: ModelRouter,
    local_models: LocalModelStore,
    warehouse: Warehouse,
) -> dg.Output[pd.DataFrame]:
    """Category with calibrated confidence, and priority with its reasons; one row per ticket."""
    session = _session(context, router, local_models, warehouse)
    inputs = to_inputs(raw_tickets, crm_accounts)
    classes = session.run(Task.classify, inputs).results
    cls = results_frame(classes, "classify")
    categories = pd.Series([r.category for r in classes], index=[r.ticket_id for r in classes])
    prio_inputs = to_inputs(raw_tickets, crm_accounts, categories=categories)
    prio = results_frame(session.run(Task.prioritize, prio_inputs).results, "prioritize").drop(columns=["input_hash"])
    df = cls.merge(prio, on="ticket_id", how="left")
    conf = df["classify_confidence"].dropna()
    return _task_output(
        df, "classify", session,
        ["ticket_id", "category", "classify_confidence", "priority", "priority_reasons", "classify_path"],
        categories=counts_md(df["category"].value_counts().to_dict() if len(df) else {}, "category"),
        mean_confidence=float(conf.mean()) if len(conf) else 0.0,
    )


@dg.asset(kinds={"python"}, code_version="1", **_specialist)
def ticket_sentiment(
    context: dg.AssetExecutionContext,
    raw_tickets: pd.DataFrame,
    router: ModelRouter,
    local_models: LocalModelStore,
    warehouse: Warehouse,
) -> dg.Output[pd.DataFrame]:
    """Customer sentiment (label and score in [-1, 1]); one row per ticket."""
    session = _session(context, router, local_models, warehouse)
    df = results_frame(session.run(Task.sentiment, to_inputs(raw_tickets)).results, "sentiment")
    return _task_output(
        df, "sentiment", session, ["ticket_id", "sentiment", "sentiment_score"],
        sentiments=counts_md(df["sentiment"].value_counts().to_dict() if len(df) else {}, "sentiment"),
    )


@dg.asset(kinds={"python"}, code_version="1", **_specialist)
def ticket_summaries(
    context: dg.AssetExecutionContext,
    raw_tickets: pd.DataFrame,
    router: ModelRouter,
    local_models: LocalModelStore,
    warehouse: Warehouse,
) -> dg.Output[pd.DataFrame]:
    """A short summary of each ticket for reviewers; one row per ticket."""
    session = _session(context, router, local_models, warehouse)
    df = results_frame(session.run(Task.summarize, to_inputs(raw_tickets)).results, "summarize")
    return _task_output(df, "summary", session, ["ticket_id", "summary"])


@dg.asset(kinds={"python", "scikit-learn"}, code_version="1", **_specialist)
def draft_replies(
    context: dg.AssetExecutionContext,
    raw_tickets: pd.DataFrame,
    crm_accounts: pd.DataFrame,
    knowledge_base: pd.DataFrame,
    router: ModelRouter,
    local_models: LocalModelStore,
    warehouse: Warehouse,
) -> dg.Output[pd.DataFrame]:
    """A reply draft grounded in the top knowledge-base articles and the account; one row per ticket."""
    session = _session(context, router, local_models, warehouse)
    index = KnowledgeBaseIndex.from_articles(knowledge_base)
    texts = (raw_tickets["subject"].fillna("") + "\n" + raw_tickets["body"].fillna("")).tolist()
    articles = index.search(texts, k=RETRIEVED_ARTICLES) if texts else []
    inputs = to_inputs(raw_tickets, crm_accounts, articles=articles)
    df = results_frame(session.run(Task.draft_reply, inputs).results, "draft_reply")
    df["retrieved_article_ids"] = [[a.article_id for a in arts] for arts in articles] if len(df) else []
    return _task_output(df, "draft", session, ["ticket_id", "draft", "draft_cited_article_ids"])


@dg.asset(kinds={"python"}, code_version="1", partitions_def=ticket_batches, group_name="enrichment", owners=["team:compliance"])
def compliance_flags(raw_tickets: pd.DataFrame, policy: RoutingPolicyResource) -> dg.Output[pd.DataFrame]:
    """Compliance and risk flags per ticket: legal, refund over threshold, security, data deletion, injection."""
    df = flag_compliance(raw_tickets, refund_threshold_usd=policy.load().refund_threshold_usd)
    flag_cols = [c for c in df.columns if c.endswith("_flag") or c == "refund_over_threshold"]
    return dg.Output(
        df,
        metadata={
            "dagster/row_count": len(df),
            **{f"flagged.{c}": int(df[c].sum()) for c in flag_cols},
            "preview": preview_md(df[df[flag_cols].any(axis=1)] if len(df) else df),
        },
    )


@dg.asset(
    kinds={"python", "pandas", "sql"},
    code_version="1",
    partitions_def=ticket_batches,
    group_name="enrichment",
    owners=OWNERS,
)
def enriched_tickets(
    context: dg.AssetExecutionContext,
    raw_tickets: pd.DataFrame,
    crm_accounts: pd.DataFrame,
    ticket_classifications: pd.DataFrame,
    ticket_sentiment: pd.DataFrame,
    ticket_summaries: pd.DataFrame,
    draft_replies: pd.DataFrame,
    compliance_flags: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    """Tickets with category, priority, sentiment, summary, flags and a guarded draft reply.

    One row per valid input ticket with row-level provenance (model version, prompt hash,
    input hash, partition, run id); a ticket a specialist could not answer has status
    `failed` and keeps its failure_reason.
    """
    guard = apply_draft_guardrails(draft_replies, raw_tickets)
    df = assemble_enriched(
        raw_tickets,
        crm_accounts,
        [ticket_classifications, ticket_sentiment, ticket_summaries, draft_replies.drop(columns=["retrieved_article_ids", "draft"])],
        compliance_flags,
        guard,
        run_id=context.run_id,
        partition=context.partition_key,
    )
    n_failed = int((df["status"] == "failed").sum())
    assert len(df) == len(raw_tickets), "enriched_tickets must keep every raw ticket"
    labelled = df[df["label_category"].notna() & (df["status"] == "enriched")] if "label_category" in df else df.iloc[0:0]
    agreement = float((labelled["category"] == labelled["label_category"]).mean()) if len(labelled) else None
    violations = pd.Series([v for vs in df["guardrail_violations"] for v in vs]).value_counts().to_dict()
    return dg.Output(
        df,
        metadata={
            "dagster/row_count": len(df),
            "rows_in": len(raw_tickets),
            "rows_enriched": len(df) - n_failed,
            "rows_failed": n_failed,
            **numeric(
                {
                    "cost_usd": float(df["cost_usd"].sum()) if len(df) else 0.0,
                    "tokens": int(df["tokens_in"].sum() + df["tokens_out"].sum()) if len(df) else 0,
                    "label_agreement": agreement,
                    "fallbacks": int(df["fallback_used"].sum()) if len(df) else 0,
                }
            ),
            "model_versions": dg.MetadataValue.text(", ".join(sorted(df["model_version"].dropna().astype(str).unique())) or "none"),
            "guardrail_violations": counts_md(violations, "violation"),
            "failures": preview_md(df[df["status"] == "failed"], ["ticket_id", "failure_reason"]),
            "preview": preview_md(
                df, ["ticket_id", "category", "category_confidence", "priority", "sentiment", "summary", "draft_reply"]
            ),
        },
    )


enrichment_assets = [
    ticket_classifications,
    ticket_sentiment,
    ticket_summaries,
    draft_replies,
    compliance_flags,
    enriched_tickets,
]
