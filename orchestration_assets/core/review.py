"""Human-in-the-loop review: the queue, decisions, feedback rows and review KPIs (plain logic, no Dagster).

A ticket routed to ``human_review`` or ``escalate`` waits in the review queue until a reviewer
records one decision for it:

- ``approve``: the model's draft goes out as is;
- ``edit_and_approve``: the reviewer's edited reply goes out instead (it must be free of PII);
- ``reject``: nothing goes out, the ticket is handled outside the platform;
- ``relabel``: the model's category was wrong; the corrected label feeds retraining and the
  draft (written for the wrong category) is not sent.

Decisions live in the ``review_decisions`` warehouse table, one row per ticket (the database
enforces it), and each one is also an ``audit_log`` event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pydantic import BaseModel, field_validator

from resources.audit import natural_key, read_audit, record_events
from resources.providers.base import CATEGORIES
from resources.warehouse import Warehouse

REVIEW_TABLE = "review_decisions"
REVIEWABLE = ("human_review", "escalate")
APPROVING = ("approve", "edit_and_approve")
QUEUE_COLUMNS = [
    "ticket_id", "decision", "reasons", "category", "category_confidence", "priority", "sentiment", "is_vip",
    "model_version", "subject", "body", "summary", "draft_reply", "guardrail_violations", "account_id",
    "created_at", "queued_at", "age_hours", "waiting_hours", "partition",
]
FEEDBACK_COLUMNS = ["ticket_id", "subject", "body", "label", "source", "recorded_at"]


class ReviewAction(str, Enum):
    approve = "approve"
    edit_and_approve = "edit_and_approve"
    reject = "reject"
    relabel = "relabel"


class ReviewError(ValueError):
    """A decision that cannot be recorded; the message says why and what to do."""


class ReviewDecision(BaseModel):
    """One reviewer decision as entered in the launchpad or the CLI."""

    ticket_id: str
    decision: ReviewAction
    reviewer: str
    edited_reply: str | None = None
    corrected_label: str | None = None
    note: str = ""

    @field_validator("ticket_id", "reviewer", mode="before")
    @classmethod
    def _strip(cls, v: Any) -> Any:
        return v.strip() if isinstance(v, str) else v

    @field_validator("edited_reply", "corrected_label", mode="before")
    @classmethod
    def _blank_is_none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v


def parse_decision(**fields: Any) -> ReviewDecision:
    """A ``ReviewDecision`` from raw fields, with a plain-language error instead of a pydantic dump."""
    decision = fields.get("decision")
    if isinstance(decision, Enum):
        fields["decision"] = decision.value
    if fields.get("decision") not in {a.value for a in ReviewAction}:
        raise ReviewError(
            f"unknown decision {fields.get('decision')!r}: use one of {', '.join(a.value for a in ReviewAction)}"
        )
    fields["note"] = fields.get("note") or ""
    fields["reviewer"] = fields.get("reviewer") or ""
    return ReviewDecision(**fields)


# ---- the table -------------------------------------------------------------------------------
_meta = sa.MetaData()
review_table = sa.Table(
    REVIEW_TABLE,
    _meta,
    sa.Column("review_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.String(64), nullable=False, unique=True),  # one decision per ticket
    sa.Column("decision", sa.String(40), nullable=False),
    sa.Column("reviewer", sa.String(200), nullable=False),
    sa.Column("edited_reply", sa.Text, nullable=True),
    sa.Column("corrected_label", sa.String(64), nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("routed_decision", sa.String(40), nullable=True),
    sa.Column("reasons", sa.Text, nullable=True),
    sa.Column("category", sa.String(64), nullable=True),
    sa.Column("model_version", sa.String(64), nullable=True),
    sa.Column("prompt_hash", sa.String(64), nullable=True),
    sa.Column("policy_hash", sa.String(64), nullable=True),
    sa.Column("input_hash", sa.String(64), nullable=True),
    sa.Column("partition", sa.String(200), nullable=True),
    sa.Column("queued_at", sa.String(40), nullable=True),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("channel", sa.String(40), nullable=True),  # "launchpad" or "cli"
    sa.Column("decided_at", sa.String(40), nullable=False),
)


def ensure_review_table(warehouse: Warehouse) -> None:
    with warehouse.engine.begin() as conn:
        _meta.create_all(conn, tables=[review_table], checkfirst=True)


def read_review_decisions(warehouse: Warehouse) -> pd.DataFrame:
    """Every recorded decision, oldest first (``reasons`` decoded to a list)."""
    ensure_review_table(warehouse)
    with warehouse.engine.connect() as conn:
        df = pd.read_sql(sa.select(review_table).order_by(review_table.c.review_id), conn)
    df["reasons"] = df["reasons"].map(lambda v: json.loads(v) if isinstance(v, str) else [])
    return df


def latest_routing(decisions: pd.DataFrame) -> pd.DataFrame:
    """One routing decision per ticket: the most recent one when a ticket was routed more than once."""
    if decisions.empty:
        return decisions
    df = decisions.copy()
    df["_at"] = pd.to_datetime(df["decided_at"], utc=True, errors="coerce", format="ISO8601")
    return df.sort_values("_at").drop_duplicates("ticket_id", keep="last").drop(columns="_at").reset_index(drop=True)


# ---- the queue -------------------------------------------------------------------------------
def review_queue(routing: pd.DataFrame, enriched: pd.DataFrame, reviewed: pd.DataFrame,
                 now: pd.Timestamp | None = None) -> pd.DataFrame:
    """Pending items, oldest in the queue first: routed human_review/escalate and not decided yet.

    ``age_hours`` is the time since the item entered the queue (its routing decision);
    ``waiting_hours`` the time since the customer opened the ticket.
    """
    now = now or pd.Timestamp.now(tz="UTC")
    routing = latest_routing(routing)
    if routing.empty:
        return pd.DataFrame(columns=QUEUE_COLUMNS)
    done = set(reviewed["ticket_id"]) if len(reviewed) else set()
    pending = routing[routing["decision"].isin(REVIEWABLE) & ~routing["ticket_id"].isin(done)].copy()
    extra = [c for c in ("subject", "body", "summary", "draft_reply", "guardrail_violations", "account_id")
             if c in enriched.columns]
    if len(enriched) and extra:
        pending = pending.merge(enriched[["ticket_id", *extra]].drop_duplicates("ticket_id", keep="last"),
                                on="ticket_id", how="left")
    pending["queued_at"] = pd.to_datetime(pending["decided_at"], utc=True, errors="coerce", format="ISO8601")
    created = pd.to_datetime(pending["created_at"], utc=True, errors="coerce", format="ISO8601")
    pending["age_hours"] = ((now - pending["queued_at"]).dt.total_seconds() / 3600).round(2)
    pending["waiting_hours"] = ((now - created).dt.total_seconds() / 3600).round(2)
    for col in QUEUE_COLUMNS:
        if col not in pending:
            pending[col] = None
    return pending.sort_values(["queued_at", "ticket_id"])[QUEUE_COLUMNS].reset_index(drop=True)


def reason_counts(queue: pd.DataFrame) -> dict[str, int]:
    """Pending items per reason code (``code:detail`` counted under ``code``)."""
    codes = [str(r).split(":")[0] for rs in queue.get("reasons", []) for r in (rs if isinstance(rs, list) else [])]
    return pd.Series(codes, dtype=object).value_counts().to_dict() if codes else {}


# ---- validation and recording ----------------------------------------------------------------
def validate_decision(decision: ReviewDecision, routing: pd.DataFrame, reviewed: pd.DataFrame,
                      draft: str | None = "") -> pd.Series:
    """The routing row the decision applies to; raises ``ReviewError`` saying what is wrong.

    ``draft`` is the ticket's draft reply (None when enrichment produced none: it cannot be approved as is).
    """
    tid = decision.ticket_id
    if not decision.reviewer:
        raise ReviewError("reviewer must not be empty: say who made the decision")
    if not tid:
        raise ReviewError("ticket_id must not be empty")
    routing = latest_routing(routing)
    match = routing[routing["ticket_id"] == tid] if len(routing) else routing
    if match.empty:
        raise ReviewError(f"unknown ticket {tid!r}: no routing decision exists for it")
    row = match.iloc[-1]
    if row["decision"] not in REVIEWABLE:
        raise ReviewError(
            f"ticket {tid!r} was routed {row['decision']!r}, not to a reviewer; only "
            f"{' / '.join(REVIEWABLE)} items can be decided"
        )
    prior = reviewed[reviewed["ticket_id"] == tid] if len(reviewed) else reviewed
    if len(prior):
        p = prior.iloc[0]
        raise ReviewError(f"ticket {tid!r} already decided: {p['decision']} by {p['reviewer']} at {p['decided_at']}")
    action = decision.decision
    if action is ReviewAction.approve and not (isinstance(draft, str) and draft.strip()):
        raise ReviewError(f"ticket {tid!r} has no draft reply to approve; use edit_and_approve with a reply")
    if action is ReviewAction.edit_and_approve:
        if not decision.edited_reply:
            raise ReviewError("edit_and_approve needs edited_reply: the reply to send instead of the draft")
        from resources.redaction import find_pii

        found = list(find_pii(decision.edited_reply))
        if found:
            # name the kinds of PII, never the values (this message reaches logs and alerts)
            kinds = sorted({str(m[0] if isinstance(m, tuple) else getattr(m, "kind", "")).lower() for m in found} - {""})
            what = ", ".join(kinds) if kinds else f"{len(found)} item(s)"
            raise ReviewError(f"edited reply contains PII ({what}); remove it before approving")
    elif decision.edited_reply:
        raise ReviewError(f"edited_reply is only used with edit_and_approve, not {action.value}")
    if action is ReviewAction.relabel:
        if not decision.corrected_label:
            raise ReviewError(f"relabel needs corrected_label, one of: {', '.join(CATEGORIES)}")
        if decision.corrected_label not in CATEGORIES:
            raise ReviewError(f"unknown label {decision.corrected_label!r}: use one of {', '.join(CATEGORIES)}")
    elif decision.corrected_label:
        raise ReviewError(f"corrected_label is only used with relabel, not {action.value}")
    return row


def review_audit_events(rows: pd.DataFrame) -> pd.DataFrame:
    """The audit events for recorded decisions (natural key per ticket, so recording twice adds nothing)."""
    if rows.empty:
        return pd.DataFrame()
    events = pd.DataFrame(
        {
            "event_type": "review_decision",
            "ticket_id": rows["ticket_id"],
            "decision": rows["decision"],
            "reasons": rows["reasons"].map(lambda v: v if isinstance(v, list) else []),
            "actor": rows["reviewer"],
            "model_version": rows["model_version"],
            "prompt_hash": rows["prompt_hash"],
            "policy_hash": rows["policy_hash"],
            "input_hash": rows["input_hash"],
            "run_id": rows["run_id"],
            "partition": rows["partition"],
            "details": [
                {"routed_decision": r.routed_decision, "corrected_label": r.corrected_label, "note": r.note,
                 "reply_edited": bool(r.edited_reply), "channel": r.channel, "review_id": int(r.review_id)}
                for r in rows.itertuples(index=False)
            ],
            "recorded_at": rows["decided_at"],
        }
    )
    events["natural_key"] = [natural_key("review_decision", t, "decided") for t in rows["ticket_id"]]
    return events


def record_decision(warehouse: Warehouse, decision: ReviewDecision, *, run_id: str | None = None,
                    channel: str = "cli", now: pd.Timestamp | None = None) -> dict[str, Any]:
    """Validate and store one decision in ``review_decisions`` and the audit log; returns the stored row.

    The unique ticket_id column makes a concurrent second decision fail as "already decided".
    """
    routing = warehouse.read_table("routing_decisions")
    reviewed = read_review_decisions(warehouse)
    row = validate_decision(decision, routing, reviewed, draft=_draft_of(warehouse, decision.ticket_id))
    record = {
        "ticket_id": decision.ticket_id,
        "decision": decision.decision.value,
        "reviewer": decision.reviewer,
        "edited_reply": decision.edited_reply,
        "corrected_label": decision.corrected_label,
        "note": decision.note or "",
        "routed_decision": row["decision"],
        "reasons": json.dumps(list(row["reasons"]) if isinstance(row["reasons"], (list, tuple, np.ndarray)) else []),
        "category": _str_or_none(row.get("category")),
        "model_version": _str_or_none(row.get("model_version")),
        "prompt_hash": _str_or_none(row.get("prompt_hash")),
        "policy_hash": _str_or_none(row.get("policy_hash")),
        "input_hash": _str_or_none(row.get("input_hash")),
        "partition": _str_or_none(row.get("partition")),
        "queued_at": _iso_or_none(row.get("decided_at")),
        "run_id": run_id,
        "channel": channel,
        "decided_at": (now or pd.Timestamp.now(tz="UTC")).isoformat(),
    }
    try:
        with warehouse.engine.begin() as conn:
            review_id = conn.execute(sa.insert(review_table).values(**record)).inserted_primary_key[0]
    except sa.exc.IntegrityError as exc:
        raise ReviewError(f"ticket {decision.ticket_id!r} already decided (recorded concurrently)") from exc
    stored = {**record, "review_id": int(review_id), "reasons": json.loads(record["reasons"])}
    record_events(warehouse, review_audit_events(pd.DataFrame([stored])))
    return stored


def _draft_of(warehouse: Warehouse, ticket_id: str) -> str | None:
    if not warehouse.has_table("enriched_tickets"):
        return None
    tickets = warehouse.query("SELECT draft_reply FROM enriched_tickets WHERE ticket_id = :t", t=ticket_id)
    drafts = [d for d in tickets["draft_reply"] if isinstance(d, str) and d.strip()]
    return drafts[-1] if drafts else None


def reconcile_audit(warehouse: Warehouse) -> int:
    """Audit every stored decision that has no audit event yet (e.g. after a crash); returns rows added."""
    return record_events(warehouse, review_audit_events(read_review_decisions(warehouse)))


def review_history(warehouse: Warehouse, ticket_id: str) -> pd.DataFrame:
    """The audit trail of one ticket, oldest first."""
    return read_audit(warehouse, ticket_id=ticket_id)


# ---- feedback and dispatch -------------------------------------------------------------------
def feedback_rows(reviewed: pd.DataFrame, enriched: pd.DataFrame) -> pd.DataFrame:
    """Training rows from reviews: relabels carry the corrected label, approvals confirm the model's.

    Rejections say nothing about the label and are left out.
    """
    if reviewed.empty:
        return pd.DataFrame(columns=FEEDBACK_COLUMNS)
    keep = reviewed[reviewed["decision"].isin(("relabel", *APPROVING))].copy()
    text = enriched[["ticket_id", "subject", "body"]].drop_duplicates("ticket_id", keep="last") if len(enriched) else \
        pd.DataFrame(columns=["ticket_id", "subject", "body"])
    df = keep.merge(text, on="ticket_id", how="left")
    df["label"] = np.where(df["decision"] == "relabel", df["corrected_label"], df["category"])
    df["source"] = "review:" + df["decision"]
    df["recorded_at"] = df["decided_at"]
    df = df[df["label"].notna() & df["subject"].notna()]
    return df[FEEDBACK_COLUMNS].reset_index(drop=True)


DISPATCH_COLUMNS = ["ticket_id", "account_id", "reply", "source", "approved_by", "model_version", "category",
                    "created_at", "approved_at"]


def dispatch_candidates(routing: pd.DataFrame, enriched: pd.DataFrame, reviewed: pd.DataFrame) -> pd.DataFrame:
    """Replies cleared to go out: auto_send tickets with a draft, plus approved and edited-and-approved reviews."""
    routing = latest_routing(routing)
    if routing.empty:
        return pd.DataFrame(columns=DISPATCH_COLUMNS)
    cols = [c for c in ("ticket_id", "account_id", "draft_reply", "status") if c in enriched.columns]
    base = routing[["ticket_id", "decision", "model_version", "category", "created_at", "decided_at"]].merge(
        enriched[cols].drop_duplicates("ticket_id", keep="last"), on="ticket_id", how="left")
    auto = base[(base["decision"] == "auto_send") & base["draft_reply"].notna()
                & (base.get("status", pd.Series("enriched", index=base.index)) == "enriched")]
    auto = auto.assign(reply=auto["draft_reply"], source="auto_send", approved_by="policy", approved_at=auto["decided_at"])
    approved = reviewed[reviewed["decision"].isin(APPROVING)] if len(reviewed) else pd.DataFrame(
        columns=["ticket_id", "decision", "reviewer", "edited_reply", "decided_at"])
    human = base.drop(columns=["decided_at"]).merge(
        approved[["ticket_id", "decision", "reviewer", "edited_reply", "decided_at"]].rename(
            columns={"decision": "review", "reviewer": "approved_by", "decided_at": "approved_at"}),
        on="ticket_id", how="inner")
    human["reply"] = np.where(human["review"] == "edit_and_approve", human["edited_reply"], human["draft_reply"])
    human["source"] = human["review"]
    out = pd.concat([auto[DISPATCH_COLUMNS], human[DISPATCH_COLUMNS]], ignore_index=True)
    out = out[out["reply"].notna()]
    return out.sort_values(["approved_at", "ticket_id"]).reset_index(drop=True)


def dispatch_audit_events(delivered: pd.DataFrame) -> pd.DataFrame:
    """One ``dispatch`` audit event per delivered reply (natural key per ticket: recorded once, ever).

    ``delivered`` has the ledger's columns (ticket_id, source, run_id, delivered_at, file_path,
    webhook_status, attempts) joined with the dispatch candidates (approved_by, model_version).
    """
    if delivered.empty:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "event_type": "dispatch",
            "ticket_id": delivered["ticket_id"],
            "decision": delivered["source"].fillna("unknown"),
            "reasons": [[] for _ in range(len(delivered))],
            "actor": "dispatcher",
            "model_version": delivered.get("model_version"),
            "run_id": delivered["run_id"],
            "details": [
                {"approved_by": _str_or_none(r.get("approved_by")), "webhook_status": _str_or_none(r.get("webhook_status")),
                 "file": _str_or_none(r.get("file_path")), "attempts": _str_or_none(r.get("attempts"))}
                for r in delivered.to_dict(orient="records")
            ],
            "natural_key": [natural_key("dispatch", t, "delivered") for t in delivered["ticket_id"]],
            "recorded_at": delivered["delivered_at"],
        }
    )


# ---- review KPIs ------------------------------------------------------------------------------
@dataclass
class BacklogStats:
    pending: int
    oldest_age_hours: float
    mean_age_hours: float


def backlog_stats(queue: pd.DataFrame) -> BacklogStats:
    ages = pd.to_numeric(queue.get("age_hours", pd.Series(dtype=float)), errors="coerce").dropna()
    return BacklogStats(
        pending=len(queue),
        oldest_age_hours=float(ages.max()) if len(ages) else 0.0,
        mean_age_hours=float(ages.mean()) if len(ages) else 0.0,
    )


KPI_REVIEW_COLUMNS = ["day", "decisions", "reviewers", "reviewer_hours", "items_per_reviewer_hour", "approved",
                      "edited", "rejected", "relabelled", "dispatched", "time_to_resolution_p50_hours",
                      "time_to_resolution_p95_hours", "review_turnaround_p50_hours"]


def kpi_review(reviewed: pd.DataFrame, dispatched: pd.DataFrame) -> pd.DataFrame:
    """One row per UTC day: review burden and time to resolution.

    - reviewer-hours: distinct (reviewer, clock hour) pairs with at least one decision, so
      ``items_per_reviewer_hour`` = decisions / reviewer-hours;
    - time to resolution: ticket ``created_at`` -> reply ``delivered_at``, over the replies
      delivered that day (p50 and p95, hours);
    - review turnaround: item queued -> decided (p50, hours).
    """
    days: dict[str, dict[str, Any]] = {}
    if len(reviewed):
        r = reviewed.copy()
        r["at"] = pd.to_datetime(r["decided_at"], utc=True, format="ISO8601")
        r["day"] = r["at"].dt.strftime("%Y-%m-%d")
        r["hour"] = r["at"].dt.floor("h")
        turnaround = (r["at"] - pd.to_datetime(r["queued_at"], utc=True, errors="coerce", format="ISO8601")).dt.total_seconds() / 3600
        r["turnaround"] = turnaround
        for day, g in r.groupby("day"):
            rh = int(g[["reviewer", "hour"]].drop_duplicates().shape[0])
            ta = g["turnaround"].dropna()
            days[day] = {
                "decisions": len(g),
                "reviewers": int(g["reviewer"].nunique()),
                "reviewer_hours": rh,
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
        d["ttr"] = (d["at"] - pd.to_datetime(d["created_at"], utc=True, errors="coerce", format="ISO8601")).dt.total_seconds() / 3600
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


def _str_or_none(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NaT:
        return None
    return str(v)


def _iso_or_none(v: Any) -> str | None:
    if v is None or v is pd.NaT or (isinstance(v, float) and pd.isna(v)):
        return None
    return pd.Timestamp(v).isoformat()
