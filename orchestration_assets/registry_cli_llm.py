"""``model-registry llm``: the LLM configurations of routed tasks (list, show, rollback).

    model-registry llm list     [--family F] [--task T]
    model-registry llm show     FAMILY TASK [VERSION]        (default: the champion)
    model-registry llm rollback FAMILY TASK [--to VERSION] --reason "why" [--actor me]

A rollback makes the previous champion configuration (or ``--to VERSION``) the champion again;
the next run's live traffic answers with it.
"""

import argparse
import json
import sys
from typing import Callable

from resources.registry import ModelRegistry
from resources.registry.llm_configs import LlmConfigRegistry

from .registry_cli_rollback import rollback

LIST_COLUMNS = ["family", "task", "version", "alias", "model", "model_id", "provider", "params", "created_at",
                "alias_updated_at", "alias_reason"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    llm = sub.add_parser("llm", help="LLM configurations of routed tasks (model, params, prompt version)")
    cmds = llm.add_subparsers(dest="llm_command", required=True)
    ls = cmds.add_parser("list", help="configurations and their current aliases")
    ls.add_argument("--family", default=None)
    ls.add_argument("--task", default=None)
    show = cmds.add_parser("show", help="one configuration: model, params, prompt text and alias history")
    show.add_argument("family")
    show.add_argument("task")
    show.add_argument("version", nargs="?", default=None, help="default: the champion")
    rb = cmds.add_parser("rollback", help="make the previous champion configuration (or --to VERSION) champion again")
    rb.add_argument("family")
    rb.add_argument("task")
    rb.add_argument("--to", dest="to_version", default=None, help="version to restore (default: the previous champion)")
    rb.add_argument("--reason", required=True, help="why; stored in the alias history")
    rb.add_argument("--actor", default=None, help="who (default: REGISTRY_ACTOR or user:<login>)")


def run(args: argparse.Namespace, registry: ModelRegistry, print_table: Callable, where: str) -> int:
    configs = LlmConfigRegistry(registry)
    if args.llm_command == "list":
        print_table(configs.snapshot(args.family, args.task), LIST_COLUMNS)
        return 0
    if args.llm_command == "show":
        cfg = configs.get(args.family, args.task, args.version) if args.version else \
            configs.champion(args.family, args.task)
        if cfg is None:
            what = f"version {args.version}" if args.version else "champion"
            print(f"model-registry: {args.family}.{args.task} has no LLM configuration {what}", file=sys.stderr)
            return 2
        print(f"{args.family}.{args.task} {cfg.version}\n  model: {cfg.model} ({cfg.model_id} on {cfg.endpoint})\n"
              f"  params: {json.dumps(cfg.params, sort_keys=True)}\n  prompt version: {cfg.prompt_version}\n"
              f"  prompt:\n" + "\n".join(f"    {line}" for line in cfg.prompt_text.splitlines()))
        history = configs.history(args.family, args.task)
        print_table(history[history["to_version"] == cfg.version] if len(history) else history,
                    ["recorded_at", "alias", "from_version", "to_version", "actor", "reason"])
        return 0
    return rollback(configs, args, command="llm rollback", noun="LLM champion", where=where)
