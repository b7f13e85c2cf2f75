"""The reviewer's command line: list a family's review queue and record decisions.

    workflow-review queue --family F [--limit 20] [--json]
    workflow-review decide --family F RECORD_ID --decision approve --reviewer alice [--note ...]
    workflow-review decide --family F RECORD_ID --decision edit_and_approve --reviewer alice --edited-text-file t.txt
    workflow-review decide --family F RECORD_ID --decision relabel --label LABEL --reviewer bob

The warehouse is ``--warehouse-url``, else ``WAREHOUSE_URL``, else the default SQLite file in the
data dir. Decisions are validated exactly as in the launchpad job; an invalid one prints the
reason and exits with status 2. The review-decision sensor picks recorded decisions up and
dispatches approved outputs.
"""

import argparse
import json
import os
import re
import sys
from pathlib import Path

from resources.configuration import ConfigError
from resources.warehouse import Warehouse
from resources.warehouse_url import WarehouseError

from .core.review import ReviewDecision, ReviewError, read_review_decisions, record_decision, review_queue
from .family import SpecError
from .inputs import whole_table
from .loading import find_family

# Record text (and a model's answer) must not drive the reviewer's terminal: whole escape sequences go
# first, so no remnant such as "[2J" or an OSC payload is left (CSI; OSC, DCS, SOS, PM and APC strings;
# two-character escapes), in their 7-bit and 8-bit forms; then any other C0/C1 control character, and
# the Unicode bidi overrides and isolates that make a terminal show text in another order than it is.
_SEQUENCES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_BREAKS = re.compile(r"[\t\n\u2028\u2029]")


def _safe(value: object, width: int = 60) -> str:
    """``value`` as one line of inert text, at most ``width`` characters."""
    text = _CONTROLS.sub("", _SEQUENCES.sub("", "" if value is None else str(value)))
    text = _BREAKS.sub(" ", text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _warehouse(args: argparse.Namespace) -> Warehouse:
    return Warehouse(url=args.warehouse_url or os.getenv("WAREHOUSE_URL", ""))


def cmd_queue(args: argparse.Namespace) -> int:
    wh, family = _warehouse(args), find_family(args.family, args.defs)
    queue = review_queue(family, whole_table(wh, family, "routing_decisions"), whole_table(wh, family, "enriched_records"),
                         read_review_decisions(wh, family.name)).head(args.limit)
    if args.json:
        rows = queue.astype(object).where(queue.notna(), None).to_dict(orient="records")
        print(json.dumps(rows, default=str, indent=2))
        return 0
    if queue.empty:
        print(f"the {family.name} review queue is empty")
        return 0
    shown = ["record_id", "decision", "age_hours", "reasons", *[t for t in family.tasks if t in queue][:3],
             family.record.text[0]]
    view = queue[[c for c in shown if c in queue.columns]].copy()
    view["reasons"] = view["reasons"].map(lambda rs: ", ".join(rs) if isinstance(rs, list) else "")
    for col in view.columns:
        view[col] = view[col].map(_safe)
    print(view.to_string(index=False))
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    edited = args.edited_text
    if args.edited_text_file:
        try:
            edited = Path(args.edited_text_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"error: cannot read --edited-text-file {_safe(args.edited_text_file, 500)}: "
                  f"{_safe(getattr(exc, 'strerror', None) or exc, 500)}", file=sys.stderr)
            return 2
    try:
        family = find_family(args.family, args.defs)
        decision = ReviewDecision(record_id=args.record_id, decision=args.decision, reviewer=args.reviewer,
                                  edited_text=edited, corrected_label=args.label, note=args.note)
        row = record_decision(_warehouse(args), family, decision, channel="cli")
    except (ReviewError, SpecError) as exc:
        print(f"error: {_safe(exc, 2000)}", file=sys.stderr)
        return 2
    print(f"recorded {row['decision']} on {_safe(row['record_id'])} by {_safe(row['reviewer'])} "
          f"(review id {row['review_id']})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workflow-review", description="Work a family's human review queue.")
    parser.add_argument("--warehouse-url", default="", help="SQLAlchemy URL (default: WAREHOUSE_URL or the data dir's SQLite)")
    parser.add_argument("--defs", default=None, help="defs folder holding the families (default: the project's)")
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("queue", help="list pending items, oldest first")
    q.add_argument("--family", required=True)
    q.add_argument("--limit", type=int, default=20)
    q.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    q.set_defaults(func=cmd_queue)
    d = sub.add_parser("decide", help="record a decision on one record")
    d.add_argument("record_id")
    d.add_argument("--family", required=True)
    d.add_argument("--decision", required=True, choices=["approve", "edit_and_approve", "reject", "relabel"])
    d.add_argument("--reviewer", required=True)
    text = d.add_mutually_exclusive_group()
    text.add_argument("--edited-text", default=None, help="the text to send (edit_and_approve)")
    text.add_argument("--edited-text-file", default=None, help="file holding the text to send")
    d.add_argument("--label", default=None, help="the corrected label (relabel)")
    d.add_argument("--note", default="")
    d.set_defaults(func=cmd_decide)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, WarehouseError) as exc:  # a spec, a setting, or a warehouse that cannot be reached
        print("\n".join(f"error: {_safe(line, 2000)}" for line in str(exc).splitlines()), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
