"""After review: feedback rows for retraining, what is cleared to go out, and review KPIs. No Dagster."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd

from resources.audit import natural_key
from resources.outbox import payloads_of
from resources.providers.base import content_hash

from ..family import Family
from .items import texts
from .labelled import FEEDBACK_COLUMNS
from .review import APPROVING, latest_routing


def feedback_columns(family: Family) -> list[str]:
    """The enriched record columns :func:`feedback_rows` reads."""
    task = family.spec.review.relabel_task
    return ["record_id", *(family.tasks[task].text_fields if task else ())]


def feedback_rows(family: Family, reviewed: pd.DataFrame, enriched: pd.DataFrame) -> pd.DataFrame:
    """Training rows from reviews of the relabel task: relabels carry the corrected label, approvals
    confirm the model's. Rejections say nothing about the label and are left out."""
    task_name = family.spec.review.relabel_task
    if task_name is None or reviewed.empty or enriched.empty:
        return pd.DataFrame(columns=FEEDBACK_COLUMNS)
    task = family.tasks[task_name]
    keep = reviewed[reviewed["decision"].isin(("relabel", *APPROVING))]
    base = enriched.drop_duplicates("record_id", keep="last").reset_index(drop=True)
    text = pd.DataFrame({"record_id": base["record_id"], "text": texts(base, task.text_fields)})
    df = keep.merge(text, on="record_id", how="inner")
    df["label"] = np.where(df["decision"] == "relabel", df["corrected_label"], df["label"])
    df["family"], df["task"] = family.name, task_name
    df["source"] = "review:" + df["decision"]
    df["recorded_at"] = df["decided_at"]
    df = df[df["label"].notna() & (df["text"].str.len() > 0)]
    return df[FEEDBACK_COLUMNS].reset_index(drop=True)


def include_columns(family: Family) -> list[str]:
    """The enriched columns a dispatch payload carries: named record fields, and the answers of named tasks."""
    out: list[str] = []
    for name in family.spec.dispatch.include:
        task = family.tasks.get(name)
        if task is None:
            out.append(name)
        else:
            out += [c for c in task.answer_columns() if not c.endswith(("_probabilities", "_cited_ids"))]
    return list(dict.fromkeys(out))


def dispatch_columns(family: Family) -> list[str]:
    return ["record_id", "text", *include_columns(family), "source", "approved_by", "model_version",
            "prompt_version", "policy_version", "record_time", "approved_at"]


def candidate_columns(family: Family) -> tuple[list[str], list[str]]:
    """(routing decision columns, enriched record columns) that :func:`dispatch_candidates` reads."""
    out = [family.spec.dispatch.output] if family.spec.dispatch.output else []
    return (["record_id", "decision", "model_version", "prompt_version", "policy_version", "record_time", "decided_at"],
            ["record_id", "status", *include_columns(family), *out])


def dispatch_candidates(family: Family, routing: pd.DataFrame, enriched: pd.DataFrame,
                        reviewed: pd.DataFrame) -> pd.DataFrame:
    """Outputs cleared to go out: auto_send records (enriched, with their text when the family sends
    one) plus approved and edited-and-approved reviews."""
    columns = dispatch_columns(family)
    routing = latest_routing(routing)
    if routing.empty or enriched.empty:
        return pd.DataFrame(columns=columns)
    out_col = family.spec.dispatch.output
    include = [c for c in include_columns(family) if c in enriched.columns]
    e = enriched.drop_duplicates("record_id", keep="last")
    e = e[["record_id", "status", *include]].assign(text=e[out_col] if out_col else None)
    base = routing[["record_id", "decision", "model_version", "prompt_version", "policy_version", "record_time",
                    "decided_at"]].merge(e, on="record_id", how="left")
    auto = base[(base["decision"] == "auto_send") & (base["status"] == "enriched")]
    if out_col:
        auto = auto[auto["text"].notna()]
    auto = auto.assign(source="auto_send", approved_by="policy", approved_at=auto["decided_at"])
    approved = reviewed[reviewed["decision"].isin(APPROVING)] if len(reviewed) else pd.DataFrame(
        columns=["record_id", "decision", "reviewer", "edited_text", "decided_at"])
    human = base.drop(columns=["decided_at"]).merge(
        approved[["record_id", "decision", "reviewer", "edited_text", "decided_at"]].rename(
            columns={"decision": "review", "reviewer": "approved_by", "decided_at": "approved_at"}),
        on="record_id", how="inner")
    human["text"] = np.where(human["review"] == "edit_and_approve", human["edited_text"], human["text"])
    human["source"] = human["review"]
    columns = [c for c in columns if c in auto.columns]
    out = pd.concat([auto[columns], human[columns]], ignore_index=True)
    if out_col:
        out = out[out["text"].notna()]
    return out.sort_values(["approved_at", "record_id"]).reset_index(drop=True)


LEDGER_COLUMNS = ["record_id", "source", "file_path", "webhook_status", "run_id", "delivered_at", "attempts",
                  "payload_hash"]


def delivered_outputs(family: Family, ledger: pd.DataFrame, candidates: pd.DataFrame) -> pd.DataFrame:
    """One row per delivered output as it went out: the payload the ledger kept at delivery.

    Only deliveries recorded before the ledger kept payloads fall back to the current candidate.
    """
    done = ledger[ledger["status"] == "delivered"].reset_index(drop=True)
    cols = [c for c in dispatch_columns(family) if c not in ("record_id", "source")]
    current = candidates.drop_duplicates("record_id", keep="last").set_index("record_id")
    sent = []
    for rid, raw in zip(done["record_id"], done["payload"]):
        if isinstance(raw, str):
            sent.append(json.loads(raw))
        else:
            sent.append(current.loc[rid].to_dict() if rid in current.index else {})
    values = pd.DataFrame({c: [p.get(c) for p in sent] for c in cols}, columns=cols) if sent else pd.DataFrame(
        columns=cols)  # column by column: a dict per row costs twice as much
    df = pd.concat([done[LEDGER_COLUMNS], values], axis=1)
    for col in ("record_time", "approved_at"):
        df[col] = pd.to_datetime(df[col], utc=True, errors="coerce", format="ISO8601")
    ttr = pd.to_datetime(df["delivered_at"], utc=True, format="ISO8601") - df["record_time"]
    df["time_to_resolution_hours"] = (ttr.dt.total_seconds() / 3600).round(3)
    return df


@dataclass
class Drift:
    changed: list[str]  # delivered, and the output cleared now differs from the one sent
    withdrawn: list[str]  # delivered, and no longer cleared to go out (re-routed, for instance)


def delivery_drift(family: Family, ledger: pd.DataFrame, candidates: pd.DataFrame,
                   sent_now: Iterable[str] = ()) -> Drift:
    """Delivered records whose output changed after it went out (a re-run wrote a new draft), or was withdrawn.

    ``sent_now``: records delivered a moment ago from these very candidates, so their output cannot
    have changed since; they are not compared (on a first run of a batch, that is every record).
    """
    content = ["text", *include_columns(family)]
    skip = set(sent_now)
    done = ledger[(ledger["status"] == "delivered") & ledger["payload"].notna() & ~ledger["record_id"].isin(skip)]
    wanted = candidates[candidates["record_id"].isin(set(done["record_id"]))]
    current = {p["record_id"]: p for p in payloads_of(family.name, wanted)}
    changed, withdrawn = [], []
    for rid, raw in zip(done["record_id"], done["payload"]):
        now = current.get(rid)
        if now is None:
            withdrawn.append(rid)
        elif content_hash(*(json.loads(raw).get(c) for c in content)) != content_hash(*(now.get(c) for c in content)):
            changed.append(rid)
    return Drift(changed, withdrawn)


def dispatch_audit_events(family: str, delivered: pd.DataFrame | list[dict[str, Any]]) -> pd.DataFrame:
    """One ``dispatch`` audit event per delivered output (natural key per record: recorded once, ever):
    dispatches rows, or the deliveries the dispatcher reports."""
    if len(delivered) == 0:
        return pd.DataFrame()
    if isinstance(delivered, pd.DataFrame):
        col = lambda c: delivered[c].tolist() if c in delivered else [None] * len(delivered)  # noqa: E731
    else:
        col = lambda c: [d.get(c) for d in delivered]  # noqa: E731
    ids = col("record_id")
    details = [{"approved_by": _s(a), "webhook_status": _s(w), "file": _s(f), "attempts": _s(n)}
               for a, w, f, n in zip(col("approved_by"), col("webhook_status"), col("file_path"), col("attempts"))]
    return pd.DataFrame({
        "family": family,
        "event_type": "dispatch",
        "record_id": ids,
        "decision": [_s(v) or "unknown" for v in col("source")],
        "reasons": [[] for _ in ids],
        "actor": "dispatcher",
        "model_version": col("model_version"),
        "prompt_version": col("prompt_version"),
        "policy_version": col("policy_version"),
        "run_id": col("run_id"),
        "details": details,
        "natural_key": [natural_key(family, "dispatch", rid, "delivered") for rid in ids],
        "recorded_at": col("delivered_at"),
    })


@dataclass
class BacklogStats:
    pending: int
    oldest_age_hours: float
    mean_age_hours: float


def backlog_stats(queue: pd.DataFrame) -> BacklogStats:
    ages = pd.to_numeric(queue.get("age_hours", pd.Series(dtype=float)), errors="coerce").dropna()
    return BacklogStats(len(queue), float(ages.max()) if len(ages) else 0.0, float(ages.mean()) if len(ages) else 0.0)


KPI_REVIEW_COLUMNS = ["day", "decisions", "reviewers", "reviewer_hours", "items_per_reviewer_hour", "approved",
                      "edited", "rejected", "relabelled", "dispatched", "time_to_resolution_p50_hours",
                      "time_to_resolution_p95_hours", "review_turnaround_p50_hours"]


def kpi_review(reviewed: pd.DataFrame, dispatched: pd.DataFrame) -> pd.DataFrame:
    """One row per UTC day: review burden and time to resolution.

    Reviewer-hours are distinct (reviewer, clock hour) pairs with a decision, so items per
    reviewer-hour = decisions / reviewer-hours; time to resolution runs from the record's own
    time to the delivery of its output (p50/p95 over the outputs delivered that day); review
    turnaround runs from queued to decided (p50).
    """
    days: dict[str, dict[str, Any]] = {}
    if len(reviewed):
        r = reviewed.copy()
        r["at"] = pd.to_datetime(r["decided_at"], utc=True, format="ISO8601")
        r["day"], r["hour"] = r["at"].dt.strftime("%Y-%m-%d"), r["at"].dt.floor("h")
        queued = pd.to_datetime(r["queued_at"], utc=True, errors="coerce", format="ISO8601")
        r["turnaround"] = (r["at"] - queued).dt.total_seconds() / 3600
        for day, g in r.groupby("day"):
            rh = int(g[["reviewer", "hour"]].drop_duplicates().shape[0])
            ta = g["turnaround"].dropna()
            days[day] = {
                "decisions": len(g), "reviewers": int(g["reviewer"].nunique()), "reviewer_hours": rh,
                "items_per_reviewer_hour": len(g) / rh if rh else 0.0,
                "approved": int((g["decision"] == "approve").sum()),
                "edited": int((g["decision"] == "edit_and_approve").sum()),
                "rejected": int((g["decision"] == "reject").sum()),
                "relabelled": int((g["decision"] == "relabel").sum()),
                "review_turnaround_p50_hours": float(ta.median()) if len(ta) else None,
            }
    if len(dispatched):
        d = dispatched.copy()
        d["at"] = pd.to_datetime(d["delivered_at"], utc=True, format="ISO8601")
        d["day"] = d["at"].dt.strftime("%Y-%m-%d")
        d["ttr"] = (d["at"] - pd.to_datetime(d["record_time"], utc=True, errors="coerce", format="ISO8601")).dt.total_seconds() / 3600
        for day, g in d.groupby("day"):
            ttr = g["ttr"].dropna().to_numpy(dtype=float)
            row = days.setdefault(day, {})
            row["dispatched"] = len(g)
            row["time_to_resolution_p50_hours"] = float(np.percentile(ttr, 50)) if len(ttr) else None
            row["time_to_resolution_p95_hours"] = float(np.percentile(ttr, 95)) if len(ttr) else None
    if not days:
        return pd.DataFrame(columns=KPI_REVIEW_COLUMNS)
    df = pd.DataFrame([{"day": k, **v} for k, v in sorted(days.items())])
    for col in KPI_REVIEW_COLUMNS:
        if col not in df:
            df[col] = None
    counts = ["decisions", "reviewers", "reviewer_hours", "approved", "edited", "rejected", "relabelled", "dispatched"]
    df[counts] = df[counts].fillna(0).astype("int64")
    df["items_per_reviewer_hour"] = df["items_per_reviewer_hour"].fillna(0.0).astype(float)
    return df[KPI_REVIEW_COLUMNS]


def _s(v: Any) -> str | None:
    if v is None or v is pd.NA or (isinstance(v, float) and pd.isna(v)):  # NA: a nullable column's gap
        return None
    return str(v)
