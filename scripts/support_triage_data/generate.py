"""Generate the bundled support_triage data: tickets, inbox batches, CRM, catalog, help centre.

Plain Python, no Dagster, nothing from the platform. Everything is drawn from ``random.Random``
instances seeded from :data:`SEED` (one per file, so changing one generator never shifts another),
rows are written in a fixed order with ``\\n`` line endings, and no clock, global random state or
set ordering is involved: regenerating gives byte-identical files. The words come from ``text/``.

Regenerate the committed copy (the family folder's ``data/`` and ``sample_inbox/``) with::

    python scripts/support_triage_data/generate.py

or write elsewhere with ``--out DIR`` (``DIR/data`` and ``DIR/sample_inbox`` are created).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

if __package__ in (None, ""):  # run as a file: make ``scripts`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.inbox_manifest import Malformed, manifest_text  # noqa: E402
from scripts.support_triage_data.bank import Bank, load_bank  # noqa: E402
from scripts.support_triage_data.context import (  # noqa: E402
    CATALOG_COLUMNS,
    CRM_COLUMNS,
    KB_FIELDS,
    build_accounts,
    build_knowledge_base,
    build_product_catalog,
)
from scripts.support_triage_data.files import write_csv, write_text  # noqa: E402
from scripts.support_triage_data.inbox import build_inbox_batch, inbox_file_text  # noqa: E402
from scripts.support_triage_data.tickets import TICKET_COLUMNS, Ticket, build_labelled_tickets  # noqa: E402

SEED = 20261123
ROOT = Path(__file__).resolve().parents[2]
FAMILY_DIR = ROOT / "orchestration_assets" / "defs" / "support_triage"
SCRIPT = "scripts/support_triage_data/generate.py"

DATA_DIR = "data"
INBOX_DIR = "sample_inbox"
LABELLED_TICKETS_FILE = "labelled_tickets.csv"
CRM_ACCOUNTS_FILE = "crm_accounts.csv"
PRODUCT_CATALOG_FILE = "product_catalog.csv"
KNOWLEDGE_BASE_FILE = "knowledge_base.jsonl"
README_FILE = "README.md"
MANIFEST_FILE = "MANIFEST.md"

N_LABELLED = 3000
N_ACCOUNTS = 300
FIRST_LABELLED_ID = 100001
FIRST_INBOX_ID = 104001


def inbox_files(bank: Bank | None = None) -> tuple[str, ...]:
    """The batch files of the sample inbox, in the order they are generated."""
    return tuple((bank or load_bank()).batches["files"])


def _readme_text(bank: Bank, seed: int, summary: dict[str, Any]) -> str:
    dist = summary["labelled_category_counts"]
    n = sum(dist.values())
    t = bank.tickets
    return bank.readme.format_map({
        "script": SCRIPT,
        "text_dir": "scripts/support_triage_data/text/",
        "seed": seed,
        "command": f"python {SCRIPT}" + ("" if seed == SEED else f" --seed {seed}"),
        "labelled_file": LABELLED_TICKETS_FILE,
        "labelled_rows": summary["labelled_rows"],
        "inbox_dir": INBOX_DIR,
        "inbox_rows": sum(summary["inbox_rows"].values()),
        "manifest_file": MANIFEST_FILE,
        "malformed_rows": summary["malformed_rows"],
        "crm_file": CRM_ACCOUNTS_FILE,
        "accounts": summary["accounts"],
        "catalog_file": PRODUCT_CATALOG_FILE,
        "products": summary["products"],
        "kb_file": KNOWLEDGE_BASE_FILE,
        "kb_articles": summary["kb_articles"],
        "ticket_columns": ", ".join(TICKET_COLUMNS),
        "first_labelled_id": FIRST_LABELLED_ID,
        "first_inbox_id": FIRST_INBOX_ID,
        "channels": " / ".join(t["channels"]),
        "priorities": " / ".join(t["priorities"]),
        "categories": " / ".join(bank.labels),
        "category_rows": "\n".join(
            f"| {c} | {k} | {100 * k / n:.1f}% |" for c, k in sorted(dist.items(), key=lambda kv: -kv[1])
        ),
        "crm_columns": ", ".join(CRM_COLUMNS),
        "catalog_columns": ", ".join(CATALOG_COLUMNS),
        "kb_fields": ", ".join(KB_FIELDS),
    })


def generate(out_dir: str | Path = FAMILY_DIR, seed: int = SEED) -> dict[str, Any]:
    """Write the data set into ``out_dir/data`` and ``out_dir/sample_inbox``; returns a summary."""
    bank = load_bank()
    data, inbox = Path(out_dir) / DATA_DIR, Path(out_dir) / INBOX_DIR
    data.mkdir(parents=True, exist_ok=True)
    inbox.mkdir(parents=True, exist_ok=True)

    accounts = build_accounts(bank, seed, N_ACCOUNTS)
    write_csv(data / CRM_ACCOUNTS_FILE, CRM_COLUMNS, [a.row() for a in accounts])
    catalog = build_product_catalog(bank)
    write_csv(data / PRODUCT_CATALOG_FILE, CATALOG_COLUMNS, catalog)
    kb = build_knowledge_base(bank)
    write_text(data / KNOWLEDGE_BASE_FILE, "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in kb))

    labelled = build_labelled_tickets(bank, accounts, seed, N_LABELLED, FIRST_LABELLED_ID)
    write_csv(data / LABELLED_TICKETS_FILE, TICKET_COLUMNS, [t.row for t in labelled])

    malformed: list[Malformed] = []
    rows_per_file: dict[str, int] = {}
    inbox_tickets: list[Ticket] = []
    next_id = FIRST_INBOX_ID
    for name in inbox_files(bank):
        records, bad, tickets = build_inbox_batch(bank, name, next_id, accounts, seed)
        next_id += len(records)
        write_text(inbox / name, inbox_file_text(name, records))
        malformed += bad
        rows_per_file[name] = len(records)
        inbox_tickets += tickets
    write_text(inbox / MANIFEST_FILE, manifest_text(
        generated_by=SCRIPT, files=inbox_files(bank), rows_per_file=rows_per_file, malformed=malformed,
        id_column="ticket_id",
    ))

    flags = Counter(f for t in labelled + inbox_tickets for f in t.flags)
    summary = {
        "seed": seed,
        "labelled_rows": len(labelled),
        "labelled_category_counts": dict(sorted(Counter(t.row["category"] for t in labelled).items())),
        "inbox_rows": rows_per_file,
        "malformed_rows": len(malformed),
        "accounts": len(accounts),
        "vip_accounts": sum(a.is_vip for a in accounts),
        "products": len(catalog),
        "kb_articles": len(kb),
        "feature_counts": dict(sorted(flags.items())),
    }
    write_text(data / README_FILE, _readme_text(bank, seed, summary))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the deterministic support_triage data set.")
    parser.add_argument("--out", default=str(FAMILY_DIR),
                        help="folder to write data/ and sample_inbox/ into (default: the family folder)")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    summary = generate(args.out, args.seed)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
