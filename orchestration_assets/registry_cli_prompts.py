"""``model-registry prompts ...``: list, show, diff, promote and roll back the registered LLM prompts.

    model-registry prompts list     [--family F] [--task T]
    model-registry prompts show     F T VERSION|ALIAS
    model-registry prompts diff     F T A B            (a unified diff of two versions' texts)
    model-registry prompts promote  F T VERSION|challenger --reason "why" [--actor me]
    model-registry prompts rollback F T [--to VERSION] --reason "why" [--actor me]

Promotion here is the operator's path; the gated one (evaluation through the router) calls the
same :class:`resources.registry.prompts.PromptRegistry`.
"""

import argparse
import difflib
import sys
from typing import Callable

import pandas as pd

from resources.registry import RegistryError, default_actor
from resources.registry.prompts import PromptRegistry

LIST_COLUMNS = ["family", "task", "version", "alias", "created_by", "created_at", "first_line"]
HISTORY_COLUMNS = ["id", "recorded_at", "family", "task", "alias", "from_version", "to_version", "actor", "reason",
                   "evaluation_id"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prompts", help="LLM prompt versions: list, show, diff, history, promote, rollback")
    cmds = p.add_subparsers(dest="prompt_command", required=True)
    for name, help_ in (("list", "prompt versions and their current aliases"), ("history", "every prompt alias change")):
        c = cmds.add_parser(name, help=help_)
        c.add_argument("--family", default=None, help="only this workflow family")
        c.add_argument("--task", default=None, help="only this task")

    def task_args(c: argparse.ArgumentParser) -> None:
        c.add_argument("family", help="the workflow family")
        c.add_argument("task", help="the task")

    c = cmds.add_parser("show", help="the text of one prompt version")
    task_args(c)
    c.add_argument("ref", help="a version id or an alias (champion, challenger)")
    c = cmds.add_parser("diff", help="unified diff of two prompt versions' texts")
    task_args(c)
    c.add_argument("a", help="version id or alias")
    c.add_argument("b", help="version id or alias")
    c = cmds.add_parser("promote", help="make a prompt version the champion")
    task_args(c)
    c.add_argument("version", help="a version id or 'challenger'")
    c.add_argument("--reason", required=True, help="why; stored in the alias history")
    c.add_argument("--actor", default=None, help="who (default: REGISTRY_ACTOR or user:<login>)")
    c = cmds.add_parser("rollback", help="make the previous champion prompt (or --to VERSION) the champion again")
    task_args(c)
    c.add_argument("--to", dest="to_version", default=None, help="version to restore (default: the previous champion)")
    c.add_argument("--reason", required=True, help="why; stored in the alias history")
    c.add_argument("--actor", default=None, help="who (default: REGISTRY_ACTOR or user:<login>)")


def run(args: argparse.Namespace, registry: PromptRegistry, show: Callable[[pd.DataFrame, list[str]], None],
        where: str) -> int:
    cmd = args.prompt_command
    if cmd == "list":
        rows = [{"family": v.family, "task": v.task, "version": v.version, "alias": v.alias or "",
                 "created_by": v.created_by, "created_at": v.created_at,
                 "first_line": (v.text.strip().splitlines() or [""])[0][:60]}
                for v in registry.versions(args.family, args.task)]
        show(pd.DataFrame(rows, columns=LIST_COLUMNS), LIST_COLUMNS)
        return 0
    if cmd == "history":
        show(registry.history(args.family, args.task), HISTORY_COLUMNS)
        return 0
    try:
        if cmd == "show":
            v = registry.resolve(args.family, args.task, args.ref)
            print(f"# {v.key} ({v.alias or 'no alias'}), registered by {v.created_by} at {v.created_at}")
            print(v.text, end="" if v.text.endswith("\n") else "\n")
        elif cmd == "diff":
            a, b = (registry.resolve(args.family, args.task, r) for r in (args.a, args.b))
            diff = difflib.unified_diff(a.text.splitlines(keepends=True), b.text.splitlines(keepends=True),
                                        f"{a.key} ({args.a})", f"{b.key} ({args.b})")
            text = "".join(line if line.endswith("\n") else line + "\n" for line in diff)
            print(text or f"(no difference: {a.version} and {b.version})", end="" if text else "\n")
        elif cmd == "promote":
            new = registry.resolve(args.family, args.task, args.version).version
            old = registry.promote(args.family, args.task, new, actor=args.actor or default_actor(), reason=args.reason)
            print(f"{args.family}.{args.task}: champion prompt {old or 'none'} -> {new} ({where})")
        elif cmd == "rollback":
            old, new = registry.rollback(args.family, args.task, to_version=args.to_version,
                                         actor=args.actor or default_actor(), reason=args.reason)
            print(f"{args.family}.{args.task}: champion prompt {old or 'none'} -> {new} ({where})")
    except RegistryError as exc:
        print(f"model-registry: prompts {cmd} refused: {exc}", file=sys.stderr)
        return 2
    return 0
