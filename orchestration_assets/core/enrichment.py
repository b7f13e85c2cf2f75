"""Plain logic of the enrichment step: ticket rows -> provider inputs, results -> tables, the join.

No Dagster here; assets call these functions.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import pandas as pd

from resources.providers.base import AccountContext, KBArticle, TaskResult, TicketInput, content_hash

PROVENANCE_FIELDS = (
    "provider",
    "model_id",
    "model_version",
    "prompt_hash",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "latency_ms",
    "attempts",
    "path",
    "redactions",
    "error",
)

# task -> (provenance column prefix, {answer field: column in the tables})
TASK_COLUMNS: dict[str, tuple[str, dict[str, str]]] = {
    "classify": ("classify", {"category": "category", "confidence": "classify_confidence"}),
    "prioritize": ("priority", {"priority": "priority", "confidence": "priority_confidence", "reasons": "priority_reasons"}),
    "sentiment": ("sentiment", {"sentiment": "sentiment", "score": "sentiment_score"}),
    "summarize": ("summary", {"summary": "summary"}),
    "draft_reply": ("draft", {"draft": "draft", "cited_article_ids": "draft_cited_article_ids"}),
}


def accounts_by_id(accounts: pd.DataFrame) -> dict[str, AccountContext]:
    if accounts is None or accounts.empty:
        return {}
    out = {}
    for rec in accounts.to_dict(orient="records"):
        out[str(rec["account_id"])] = AccountContext(
            account_id=str(rec["account_id"]),
            name=rec.get("name"),
            tier=rec.get("tier"),
            is_vip=bool(rec.get("is_vip")),
            arr_usd=None if pd.isna(rec.get("arr_usd")) else float(rec["arr_usd"]),
            region=rec.get("region"),
        )
    return out


def to_inputs(
    tickets: pd.DataFrame,
    accounts: pd.DataFrame | None = None,
    categories: pd.Series | None = None,
    articles: Sequence[Sequence[KBArticle]] | None = None,
) -> list[TicketInput]:
    """Provider inputs for raw ticket rows, with account context (and category/articles when known)."""
    by_id = accounts_by_id(accounts) if accounts is not None else {}
    cats = categories.to_dict() if categories is not None else {}
    out = []
    for i, rec in enumerate(tickets.to_dict(orient="records")):
        tid = str(rec["ticket_id"])
        out.append(
            TicketInput(
                ticket_id=tid,
                subject=rec.get("subject") or "",
                body=rec.get("body") or "",
                channel=rec.get("channel"),
                account=by_id.get(str(rec.get("account_id"))),
                category=cats.get(tid),
                articles=list(articles[i]) if articles is not None else [],
            )
        )
    return out


def results_frame(results: Iterable[TaskResult], task: str) -> pd.DataFrame:
    """A specialist table: ticket_id, the task's answer fields and its provenance, prefixed by task."""
    prefix, fields = TASK_COLUMNS[task]
    rows = []
    for r in results:
        row = {"ticket_id": r.ticket_id, "input_hash": r.input_hash}
        for f, col in fields.items():
            row[col] = getattr(r, f)
        for f in PROVENANCE_FIELDS:
            row[f"{prefix}_{f}"] = getattr(r, f)
        rows.append(row)
    columns = ["ticket_id", "input_hash", *fields.values(), *(f"{prefix}_{f}" for f in PROVENANCE_FIELDS)]
    return pd.DataFrame(rows, columns=columns)


SPECIALIST_PREFIXES = [v[0] for v in TASK_COLUMNS.values()]


def assemble_enriched(
    raw: pd.DataFrame,
    accounts: pd.DataFrame,
    specialists: Sequence[pd.DataFrame],
    flags: pd.DataFrame,
    guardrails: pd.DataFrame,
    run_id: str,
    partition: str,
) -> pd.DataFrame:
    """Join the specialists' tables onto the raw tickets: one row per raw ticket, nothing dropped.

    A ticket any specialist could not answer (missing row or error) gets status "failed" and a
    failure_reason naming the task(s); every other ticket is "enriched".
    """
    base_cols = ["ticket_id", "account_id", "created_at", "channel", "subject", "body", "input_hash"]
    df = raw[[c for c in base_cols if c in raw.columns]].copy()
    if "category" in raw.columns:
        df["label_category"] = raw["category"].values
    acc = accounts[["account_id", "tier", "is_vip"]].rename(columns={"tier": "account_tier"}) if len(accounts) else None
    if acc is not None:
        df = df.merge(acc, on="account_id", how="left")
    else:
        df["account_tier"], df["is_vip"] = None, False
    df["is_vip"] = df["is_vip"].fillna(False).astype(bool)

    problems: dict[str, list[str]] = {tid: [] for tid in df["ticket_id"]}
    ids = df.set_index("ticket_id")["input_hash"]
    for part in specialists:
        prefixes = [p for p in SPECIALIST_PREFIXES if f"{p}_model_version" in part.columns]
        present = set(part["ticket_id"])
        stale_ids = set(part.loc[part["input_hash"].values != ids.reindex(part["ticket_id"]).values, "ticket_id"])
        df = df.merge(part.drop(columns=["input_hash"]), on="ticket_id", how="left")
        for tid in df["ticket_id"]:
            if tid not in present:
                problems[tid].append(f"{'/'.join(prefixes)}: no result")
            elif tid in stale_ids:
                problems[tid].append(f"{'/'.join(prefixes)}: result is for an older version of the ticket")
        for prefix in prefixes:
            for tid, err in df[["ticket_id", f"{prefix}_error"]].itertuples(index=False):
                if isinstance(err, str) and err:
                    problems[tid].append(f"{prefix}: {err}")

    flag_cols = [c for c in flags.columns if c != "ticket_id"]
    df = df.merge(flags, on="ticket_id", how="left")
    for c in flag_cols:
        if c.endswith("_flag") or c == "refund_over_threshold":
            df[c] = df[c].fillna(False).astype(bool)
    df = df.merge(guardrails, on="ticket_id", how="left")
    df["guardrail_violations"] = df["guardrail_violations"].map(lambda v: list(v) if isinstance(v, (list, tuple)) else [])

    df["failure_reason"] = df["ticket_id"].map(lambda t: "; ".join(problems[t]) or None)
    df["status"] = df["failure_reason"].map(lambda r: "failed" if r else "enriched")

    # row-level provenance: the classifier version is "the" model version; the prompt hash covers every task
    df["category_confidence"] = df.pop("classify_confidence")
    df["model_version"] = df["classify_model_version"]
    prompt_cols = [f"{p}_prompt_hash" for p in SPECIALIST_PREFIXES]
    df["prompt_hash"] = df[prompt_cols].apply(lambda r: content_hash(*r.tolist()), axis=1) if len(df) else []
    for agg in ("tokens_in", "tokens_out", "cost_usd", "latency_ms", "attempts", "redactions"):
        cols = [f"{p}_{agg}" for p in SPECIALIST_PREFIXES]
        df[agg] = df[cols].fillna(0).sum(axis=1)
    df["tokens_in"] = df["tokens_in"].astype("int64")
    df["tokens_out"] = df["tokens_out"].astype("int64")
    df["attempts"] = df["attempts"].astype("int64")
    df["redactions"] = df["redactions"].astype("int64")
    path_cols = [f"{p}_path" for p in SPECIALIST_PREFIXES]
    df["fallback_used"] = df[path_cols].apply(
        lambda r: any(isinstance(v, str) and v.startswith("fallback") for v in r), axis=1
    ) if len(df) else []
    df["partition"] = partition
    df["run_id"] = run_id
    df["enriched_at"] = pd.Timestamp.now(tz="UTC")
    return df.reset_index(drop=True)
