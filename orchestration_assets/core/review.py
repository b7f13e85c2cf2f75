"""Human review: the queue and reviewer decisions, for any family (plain logic, no Dagster).

A record routed to ``human_review`` or ``escalate`` waits in its family's queue until a reviewer
records one decision, among the family's ``review.actions``:

- ``approve``: the output (the dispatch output's generated text, if any) goes out as is;
- ``edit_and_approve``: the reviewer's edited text goes out instead (it must be free of PII);
- ``reject``: nothing goes out; the record is handled outside the platform;
- ``relabel``: the ``relabel_task``'s label was wrong; the corrected label feeds retraining and
  nothing goes out (the output was written for the wrong label).

Decisions of every family live in one ``review_decisions`` table, one row per (family, record)
(the database enforces it), and each one is also an ``audit_log`` event.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pydantic import BaseModel, field_validator

from resources.audit import natural_key, record_events
from resources.warehouse import Warehouse

from ..family import Family

REVIEW_TABLE = "review_decisions"
REVIEWABLE = ("human_review", "escalate")
APPROVING = ("approve", "edit_and_approve")
ACTIONS = ("approve", "edit_and_approve", "reject", "relabel")


class ReviewError(ValueError):
    """A decision that cannot be recorded; the message says why and what to do."""


class ReviewDecision(BaseModel):
    """One reviewer decision as entered in the launchpad or the CLI."""

    record_id: str
    decision: str
    reviewer: str
    edited_text: str | None = None
    corrected_label: str | None = None
    note: str = ""

    @field_validator("record_id", "reviewer", "decision", mode="before")
    @classmethod
    def _strip(cls, v: Any) -> Any:
        return v.strip() if isinstance(v, str) else v

    @field_validator("edited_text", "corrected_label", mode="before")
    @classmethod
    def _blank_is_none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("note", mode="before")
    @classmethod
    def _note(cls, v: Any) -> Any:
        return v or ""


_meta = sa.MetaData()
review_table = sa.Table(
    REVIEW_TABLE,
    _meta,
    sa.Column("review_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("family", sa.String(100), nullable=False),
    sa.Column("record_id", sa.String(200), nullable=False),
    sa.Column("decision", sa.String(40), nullable=False),
    sa.Column("reviewer", sa.String(200), nullable=False),
    sa.Column("edited_text", sa.Text, nullable=True),
    sa.Column("corrected_label", sa.String(200), nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("routed_decision", sa.String(40), nullable=True),
    sa.Column("reasons", sa.Text, nullable=True),
    sa.Column("label", sa.String(200), nullable=True),  # the relabel task's answer when it was routed
    sa.Column("model_version", sa.String(64), nullable=True),
    sa.Column("prompt_version", sa.String(64), nullable=True),
    sa.Column("policy_version", sa.String(64), nullable=True),
    sa.Column("input_hash", sa.String(64), nullable=True),
    sa.Column("partition", sa.String(200), nullable=True),
    sa.Column("queued_at", sa.String(40), nullable=True),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("channel", sa.String(40), nullable=True),  # "launchpad" or "cli"
    sa.Column("decided_at", sa.String(40), nullable=False),
    sa.UniqueConstraint("family", "record_id", name="uq_review_decisions_family_record"),  # one decision each
)


def ensure_review_table(warehouse: Warehouse) -> None:
    with warehouse.engine.begin() as conn:
        _meta.create_all(conn, tables=[review_table], checkfirst=True)


def read_review_decisions(warehouse: Warehouse, family: str | None = None) -> pd.DataFrame:
    """Recorded decisions (of one family), oldest first, ``reasons`` decoded to a list."""
    ensure_review_table(warehouse)
    stmt = sa.select(review_table).order_by(review_table.c.review_id)
    if family is not None:
        stmt = stmt.where(review_table.c.family == family)
    with warehouse.engine.connect() as conn:
        df = pd.read_sql(stmt, conn)
    df["reasons"] = df["reasons"].map(lambda v: json.loads(v) if isinstance(v, str) else [])
    return df


def latest_routing(decisions: pd.DataFrame) -> pd.DataFrame:
    """One routing decision per record: the most recent one when a record was routed more than once."""
    if decisions.empty:
        return decisions
    df = decisions.copy()
    df["_at"] = pd.to_datetime(df["decided_at"], utc=True, errors="coerce", format="ISO8601")
    return df.sort_values("_at").drop_duplicates("record_id", keep="last").drop(columns="_at").reset_index(drop=True)


def queue_columns(family: Family) -> list[str]:
    shown = [t.name for t in family.tasks.values() if t.type in ("classify", "sentiment", "summarize", "draft")]
    return ["record_id", "decision", "reasons", *shown, "model_version", "prompt_version", *family.record.text,
            "queued_at", "age_hours", "waiting_hours", "partition"]


def review_queue_columns(family: Family) -> tuple[list[str], list[str]]:
    """(routing decision columns, enriched record columns) that :func:`review_queue` reads (an enriched column
    only where the routing decisions lack it)."""
    shown = queue_columns(family)
    return ["record_id", "decision", "decided_at", "record_time", *shown], shown


def review_queue(family: Family, routing: pd.DataFrame, enriched: pd.DataFrame, reviewed: pd.DataFrame,
                 now: pd.Timestamp | None = None) -> pd.DataFrame:
    """Pending items, oldest in the queue first: routed human_review/escalate and not decided yet.

    ``age_hours``: time since the item entered the queue (its routing decision); ``waiting_hours``:
    time since the record's own timestamp (when it happened).
    """
    columns = queue_columns(family)
    now = now or pd.Timestamp.now(tz="UTC")
    routing = latest_routing(routing)
    if routing.empty:
        return pd.DataFrame(columns=columns)
    done = set(reviewed["record_id"]) if len(reviewed) else set()
    pending = routing[routing["decision"].isin(REVIEWABLE) & ~routing["record_id"].isin(done)].copy()
    extra = [c for c in columns if c in enriched.columns and c not in pending.columns]
    if len(enriched) and extra:
        pending = pending.merge(enriched[["record_id", *extra]].drop_duplicates("record_id", keep="last"),
                                on="record_id", how="left")
    pending["queued_at"] = pd.to_datetime(pending["decided_at"], utc=True, errors="coerce", format="ISO8601")
    happened = pd.to_datetime(pending.get("record_time"), utc=True, errors="coerce", format="ISO8601")
    pending["age_hours"] = ((now - pending["queued_at"]).dt.total_seconds() / 3600).round(2)
    pending["waiting_hours"] = ((now - happened).dt.total_seconds() / 3600).round(2) if len(pending) else []
    for col in columns:
        if col not in pending:
            pending[col] = None
    return pending.sort_values(["queued_at", "record_id"])[columns].reset_index(drop=True)


def reason_counts(queue: pd.DataFrame) -> dict[str, int]:
    """Pending items per reason code (``code:detail`` counted under ``code``)."""
    codes = [str(r).split(":")[0] for rs in queue.get("reasons", []) for r in (rs if isinstance(rs, list) else [])]
    return pd.Series(codes, dtype=object).value_counts().to_dict() if codes else {}


def validate_decision(family: Family, decision: ReviewDecision, routing: pd.DataFrame, reviewed: pd.DataFrame,
                      output: str | None = "") -> pd.Series:
    """The routing row the decision applies to; raises ``ReviewError`` saying what is wrong.

    ``output``: the record's generated text that would go out (None when it has none).
    """
    rid, action, review = decision.record_id, decision.decision, family.spec.review
    if not decision.reviewer:
        raise ReviewError("reviewer must not be empty: say who made the decision")
    if not rid:
        raise ReviewError(f"{family.id_field} must not be empty")
    if action not in review.actions:
        raise ReviewError(f"unknown decision {action!r}: {family.name} allows {', '.join(review.actions)}")
    routing = latest_routing(routing)
    match = routing[routing["record_id"] == rid] if len(routing) else routing
    if match.empty:
        raise ReviewError(f"unknown {family.id_field} {rid!r}: no routing decision exists for it in {family.name}")
    row = match.iloc[-1]
    if row["decision"] not in REVIEWABLE:
        raise ReviewError(f"{rid!r} was routed {row['decision']!r}, not to a reviewer; only "
                          f"{' / '.join(REVIEWABLE)} items can be decided")
    prior = reviewed[reviewed["record_id"] == rid] if len(reviewed) else reviewed
    if len(prior):
        p = prior.iloc[0]
        raise ReviewError(f"{rid!r} already decided: {p['decision']} by {p['reviewer']} at {p['decided_at']}")
    if action == "approve" and family.spec.dispatch.output and not (isinstance(output, str) and output.strip()):
        raise ReviewError(f"{rid!r} has no generated text to approve; use edit_and_approve with a text")
    if action == "edit_and_approve":
        if not decision.edited_text:
            raise ReviewError("edit_and_approve needs edited_text: the text to send instead of the generated one")
        from resources.redaction import find_pii

        kinds = sorted({kind.lower() for kind, _ in find_pii(decision.edited_text)})
        if kinds:  # name the kinds of PII, never the values: this message reaches logs and alerts
            raise ReviewError(f"the edited text contains PII ({', '.join(kinds)}); remove it before approving")
    elif decision.edited_text:
        raise ReviewError(f"edited_text is only used with edit_and_approve, not {action}")
    if action == "relabel":
        labels = family.tasks[review.relabel_task].labels
        if not decision.corrected_label:
            raise ReviewError(f"relabel needs corrected_label, one of: {', '.join(labels)}")
        if decision.corrected_label not in labels:
            raise ReviewError(f"unknown label {decision.corrected_label!r}: use one of {', '.join(labels)}")
    elif decision.corrected_label:
        raise ReviewError(f"corrected_label is only used with relabel, not {action}")
    return row


def review_audit_events(rows: pd.DataFrame) -> pd.DataFrame:
    """The audit events of recorded decisions (natural key per record: recording twice adds nothing)."""
    if rows.empty:
        return pd.DataFrame()
    events = pd.DataFrame({
        "family": rows["family"],
        "event_type": "review_decision",
        "record_id": rows["record_id"],
        "decision": rows["decision"],
        "reasons": rows["reasons"].map(lambda v: v if isinstance(v, list) else []),
        "actor": rows["reviewer"],
        "model_version": rows["model_version"],
        "prompt_version": rows["prompt_version"],
        "policy_version": rows["policy_version"],
        "input_hash": rows["input_hash"],
        "run_id": rows["run_id"],
        "partition": rows["partition"],
        "details": [
            {"routed_decision": r.routed_decision, "corrected_label": r.corrected_label, "note": r.note,
             "text_edited": bool(r.edited_text), "channel": r.channel, "review_id": int(r.review_id)}
            for r in rows.itertuples(index=False)
        ],
        "recorded_at": rows["decided_at"],
    })
    events["natural_key"] = [natural_key(f, "review_decision", r, "decided") for f, r in zip(rows["family"], rows["record_id"])]
    return events


def record_decision(warehouse: Warehouse, family: Family, decision: ReviewDecision, *, run_id: str | None = None,
                    channel: str = "cli", now: pd.Timestamp | None = None) -> dict[str, Any]:
    """Validate and store one decision in ``review_decisions`` and the audit log; returns the stored row.

    The unique (family, record) constraint makes a concurrent second decision fail as "already decided".
    """
    routing = warehouse.read_table(family.table("routing_decisions"))
    reviewed = read_review_decisions(warehouse, family.name)
    row = validate_decision(family, decision, routing, reviewed, output=output_of(warehouse, family, decision.record_id))
    label_task = family.spec.review.relabel_task
    record = {
        "family": family.name,
        "record_id": decision.record_id,
        "decision": decision.decision,
        "reviewer": decision.reviewer,
        "edited_text": decision.edited_text,
        "corrected_label": decision.corrected_label,
        "note": decision.note or "",
        "routed_decision": row["decision"],
        "reasons": json.dumps(list(row["reasons"]) if isinstance(row["reasons"], (list, tuple, np.ndarray)) else []),
        "label": _str_or_none(row.get(label_task)) if label_task else None,
        "model_version": _str_or_none(row.get("model_version")),
        "prompt_version": _str_or_none(row.get("prompt_version")),
        "policy_version": _str_or_none(row.get("policy_version")),
        "input_hash": _str_or_none(row.get("input_hash")),
        "partition": _str_or_none(row.get("partition")),
        "queued_at": _iso_or_none(row.get("decided_at")),
        "run_id": run_id,
        "channel": channel,
        "decided_at": (now or pd.Timestamp.now(tz="UTC")).isoformat(),
    }
    ensure_review_table(warehouse)
    try:
        with warehouse.engine.begin() as conn:
            review_id = conn.execute(sa.insert(review_table).values(**record)).inserted_primary_key[0]
    except sa.exc.IntegrityError as exc:
        raise ReviewError(f"{decision.record_id!r} already decided (recorded concurrently)") from exc
    stored = {**record, "review_id": int(review_id), "reasons": json.loads(record["reasons"])}
    record_events(warehouse, review_audit_events(pd.DataFrame([stored])))
    return stored


def output_of(warehouse: Warehouse, family: Family, record_id: str) -> str | None:
    """The record's generated text that dispatch would send (None when it has none)."""
    column, table = family.spec.dispatch.output, family.table("enriched_records")
    if not column or not warehouse.has_table(table):
        return None
    rows = warehouse.query(f'SELECT "{column}" AS text FROM "{table}" WHERE record_id = :r', r=record_id)
    texts = [t for t in rows["text"] if isinstance(t, str) and t.strip()]
    return texts[-1] if texts else None


def reconcile_audit(warehouse: Warehouse, family: str) -> int:
    """Audit every stored decision that has no audit event yet (e.g. after a crash); returns rows added."""
    return record_events(warehouse, review_audit_events(read_review_decisions(warehouse, family)))


def _str_or_none(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NaT:
        return None
    return str(v)


def _iso_or_none(v: Any) -> str | None:
    if v is None or v is pd.NaT or (isinstance(v, float) and pd.isna(v)):
        return None
    return pd.Timestamp(v).isoformat()
