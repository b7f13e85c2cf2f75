"""The reviewer's command line: list the review queue and record decisions.

    python -m orchestration_assets.review_cli queue [--limit 20] [--json]
    python -m orchestration_assets.review_cli decide TICKET_ID --decision approve --reviewer alice [--note ...]
    python -m orchestration_assets.review_cli decide T-1 --decision edit_and_approve --reviewer alice \\
        --edited-reply-file reply.txt
    python -m orchestration_assets.review_cli decide T-2 --decision relabel --label billing --reviewer bob

The warehouse is ``--warehouse-url``, else ``WAREHOUSE_URL``, else the default SQLite file in the
data dir. Decisions are validated exactly as in the launchpad job; an invalid one prints the
reason and exits with status 2. The review-decision sensor picks recorded decisions up and
dispatches approved replies.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

from resources.warehouse import Warehouse

from .core.review import ReviewAction, ReviewError, parse_decision, read_review_decisions, record_decision, review_queue

QUEUE_SHOWN = ["ticket_id", "decision", "age_hours", "reasons", "category", "priority", "model_version", "subject"]


def _warehouse(args: argparse.Namespace) -> Warehouse:
    return Warehouse(url=args.warehouse_url or os.getenv("WAREHOUSE_URL", ""))


def cmd_queue(args: argparse.Namespace) -> int:
    wh = _warehouse(args)
    empty = pd.DataFrame(columns=["ticket_id"])
    queue = review_queue(
        wh.read_table("routing_decisions") if wh.has_table("routing_decisions") else empty,
        wh.read_table("enriched_tickets") if wh.has_table("enriched_tickets") else empty,
        read_review_decisions(wh),
    ).head(args.limit)
    if args.json:
        rows = queue.astype(object).where(queue.notna(), None).to_dict(orient="records")
        print(json.dumps(rows, default=str, indent=2))
        return 0
    if queue.empty:
        print("review queue is empty")
        return 0
    view = queue[QUEUE_SHOWN].copy()
    view["reasons"] = view["reasons"].map(lambda rs: ", ".join(rs) if isinstance(rs, list) else "")
    view["subject"] = view["subject"].map(lambda s: (s or "")[:50])
    print(view.to_string(index=False))
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    edited = args.edited_reply
    if args.edited_reply_file:
        edited = Path(args.edited_reply_file).read_text(encoding="utf-8")
    try:
        decision = parse_decision(
            ticket_id=args.ticket_id, decision=args.decision, reviewer=args.reviewer, edited_reply=edited,
            corrected_label=args.label, note=args.note,
        )
        row = record_decision(_warehouse(args), decision, channel="cli")
    except ReviewError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"recorded {row['decision']} on {row['ticket_id']} by {row['reviewer']} (review id {row['review_id']})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="triage-review", description="Work the human review queue.")
    parser.add_argument("--warehouse-url", default="", help="SQLAlchemy URL (default: WAREHOUSE_URL or the data dir's SQLite)")
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("queue", help="list pending items, oldest first")
    q.add_argument("--limit", type=int, default=20)
    q.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    q.set_defaults(func=cmd_queue)
    d = sub.add_parser("decide", help="record a decision on one ticket")
    d.add_argument("ticket_id")
    d.add_argument("--decision", required=True, choices=[a.value for a in ReviewAction])
    d.add_argument("--reviewer", required=True)
    reply = d.add_mutually_exclusive_group()
    reply.add_argument("--edited-reply", default=None, help="the reply to send (edit_and_approve)")
    reply.add_argument("--edited-reply-file", default=None, help="file holding the reply to send")
    d.add_argument("--label", default=None, help="the corrected category (relabel)")
    d.add_argument("--note", default="")
    d.set_defaults(func=cmd_decide)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
