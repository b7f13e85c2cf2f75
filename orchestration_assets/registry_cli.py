"""Command line for the model registry: list versions, show alias history and evaluations, roll back.

    python -m orchestration_assets.registry_cli list [--task classify]
    python -m orchestration_assets.registry_cli history [--task classify]
    python -m orchestration_assets.registry_cli evaluations [--task classify]
    python -m orchestration_assets.registry_cli rollback --task classify [--to VERSION] --reason "why" [--actor me]

The warehouse is ``--warehouse-url``, else ``WAREHOUSE_URL``, else the default SQLite file under
the data dir: the same database the Dagster code location uses. Also installed as the console
script ``model-registry``.
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from resources.providers.base import Task
from resources.registry import ModelRegistry, RegistryError, default_actor
from resources.warehouse import default_warehouse_url, engine_for, redact_url


def _print(df: pd.DataFrame, columns: list[str]) -> None:
    if df.empty:
        print("(none)")
        return
    cols = [c for c in columns if c in df.columns]
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200,
                           "display.max_colwidth", 70):
        print(df[cols].fillna("").to_string(index=False))


def main(argv: list[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(prog="model-registry", description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse-url", default=os.getenv("WAREHOUSE_URL") or None,
                        help="SQLAlchemy URL of the warehouse (default: WAREHOUSE_URL or the local SQLite file)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (("list", "model versions and their current aliases"),
                        ("history", "every alias change, oldest first"),
                        ("evaluations", "golden-set evaluations and their gate results")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--task", choices=[t.value for t in Task], default=None)
    rb = sub.add_parser("rollback", help="make the previous champion (or --to VERSION) the champion again")
    rb.add_argument("--task", choices=[t.value for t in Task], default=Task.classify.value)
    rb.add_argument("--to", dest="to_version", default=None, help="version to restore (default: the previous champion)")
    rb.add_argument("--reason", required=True, help="why; stored in the alias history")
    rb.add_argument("--actor", default=None, help="who (default: REGISTRY_ACTOR or user:<login>)")
    args = parser.parse_args(argv)

    url = args.warehouse_url or default_warehouse_url()
    registry = ModelRegistry(engine_for(url))
    if args.command == "list":
        _print(registry.snapshot() if args.task is None else registry.snapshot().query("task == @args.task"),
               ["task", "version", "alias", "provider", "model_id", "macro_f1", "rubric_score", "training_rows",
                "created_by", "created_at", "alias_updated_at", "alias_reason"])
    elif args.command == "history":
        _print(registry.history(args.task),
               ["id", "recorded_at", "task", "alias", "from_version", "to_version", "actor", "reason", "evaluation_id"])
    elif args.command == "evaluations":
        _print(registry.evaluations(args.task),
               ["created_at", "evaluation_id", "task", "challenger_version", "champion_version", "golden_rows",
                "passed", "created_by"])
    elif args.command == "rollback":
        try:
            old, new = registry.rollback(args.task, to_version=args.to_version,
                                         actor=args.actor or default_actor(), reason=args.reason)
        except RegistryError as exc:
            print(f"rollback refused: {exc}", file=sys.stderr)
            return 2
        print(f"{args.task}: champion {old} -> {new} ({redact_url(url)})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
