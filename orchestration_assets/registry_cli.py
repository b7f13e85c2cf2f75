"""Command line for the model registry: list versions, show alias history and evaluations, roll back.

    model-registry list        [--family F] [--task T]
    model-registry history     [--family F] [--task T]
    model-registry evaluations [--family F] [--task T]
    model-registry rollback --family F --task T [--to VERSION] --reason "why" [--actor me]
    model-registry prompts list|history|show|diff|promote|rollback ...   (LLM prompt versions; see --help)
    model-registry llm list|show|rollback ...   (LLM configurations of routed tasks; see --help)

The warehouse is ``--warehouse-url``, else ``WAREHOUSE_URL``, else the default SQLite file under
the data dir: the same database the Dagster code location uses. A refused operation or an
unusable warehouse prints one line on stderr and exits with status 2.
"""

import argparse
import os
import sys

import pandas as pd
import sqlalchemy as sa

from resources.registry import ModelRegistry, PromptRegistry, RegistryError
from resources.warehouse import default_warehouse_url, engine_for
from resources.warehouse_url import mask_url

from . import registry_cli_llm as llm_cli
from . import registry_cli_prompts as prompts_cli
from .registry_cli_rollback import rollback

LIST_COLUMNS = ["family", "task", "version", "alias", "provider", "model_id", "macro_f1", "rubric_score",
                "training_rows", "created_by", "created_at", "alias_updated_at", "alias_reason"]
HISTORY_COLUMNS = ["id", "recorded_at", "family", "task", "alias", "from_version", "to_version", "actor", "reason",
                   "evaluation_id"]
EVALUATION_COLUMNS = ["created_at", "evaluation_id", "family", "task", "challenger_version", "champion_version",
                      "golden_rows", "passed", "created_by"]


def _print(df: pd.DataFrame, columns: list[str]) -> None:
    if df.empty:
        print("(none)")
        return
    cols = [c for c in columns if c in df.columns]
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200,
                           "display.max_colwidth", 70):
        print(df[cols].astype(object).where(df[cols].notna(), "").to_string(index=False))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="model-registry", description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse-url", default=os.getenv("WAREHOUSE_URL") or None,
                        help="SQLAlchemy URL of the warehouse (default: WAREHOUSE_URL or the local SQLite file)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (("list", "model versions and their current aliases"),
                        ("history", "every alias change, oldest first"),
                        ("evaluations", "golden-set evaluations and their gate results")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--family", default=None, help="only this workflow family")
        p.add_argument("--task", default=None, help="only this task")
    rb = sub.add_parser("rollback", help="make the previous champion (or --to VERSION) the champion again")
    rb.add_argument("--family", required=True, help="the workflow family")
    rb.add_argument("--task", required=True, help="the classify task of the family")
    rb.add_argument("--to", dest="to_version", default=None, help="version to restore (default: the previous champion)")
    rb.add_argument("--reason", required=True, help="why; stored in the alias history")
    rb.add_argument("--actor", default=None, help="who (default: REGISTRY_ACTOR or user:<login>)")
    prompts_cli.add_parser(sub)
    llm_cli.add_parser(sub)
    return parser


def _run(args: argparse.Namespace, url: str) -> int:
    if args.command == "prompts":
        return prompts_cli.run(args, PromptRegistry(engine_for(url)), _print, _display(url))
    if args.command == "llm":
        return llm_cli.run(args, ModelRegistry(engine_for(url)), _print, _display(url))
    registry = ModelRegistry(engine_for(url))
    if args.command == "list":
        _print(registry.snapshot(args.family, args.task), LIST_COLUMNS)
    elif args.command == "history":
        _print(registry.history(args.family, args.task), HISTORY_COLUMNS)
    elif args.command == "evaluations":
        _print(registry.evaluations(args.family, args.task), EVALUATION_COLUMNS)
    elif args.command == "rollback":
        return rollback(registry, args, command="rollback", noun="champion", where=_display(url))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    url = args.warehouse_url or default_warehouse_url()
    try:
        return _run(args, url)
    except RegistryError as exc:  # e.g. registry tables of an older release
        print(f"model-registry: {exc}", file=sys.stderr)
    except ModuleNotFoundError as exc:  # the URL's database driver (SQLAlchemy imports it lazily)
        print(f"model-registry: cannot use the warehouse {_display(url)}: its database driver is not installed "
              f"({exc}); for PostgreSQL install the project's 'postgres' extra", file=sys.stderr)
    except sa.exc.SQLAlchemyError as exc:  # unreachable database, bad URL, locked file ...
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        print(f"model-registry: cannot use the warehouse {_display(url)}: {detail}", file=sys.stderr)
    return 2


def _display(url: str) -> str:
    try:
        return mask_url(url)
    except sa.exc.ArgumentError:  # not a URL at all: say so without echoing what may hold a password
        return "(not a valid SQLAlchemy URL)"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
