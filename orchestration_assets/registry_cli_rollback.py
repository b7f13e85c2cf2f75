"""The `rollback` of the model-registry CLI for models and LLM configurations: one refusal, one result line."""

import argparse
import sys
from typing import Any

from resources.registry import RegistryError, default_actor


def rollback(registry: Any, args: argparse.Namespace, *, command: str, noun: str, where: str) -> int:
    """Roll ``args.family``.``args.task`` back with ``registry.rollback``; print the change, or why it was refused.

    ``command`` names the refused command on stderr, ``noun`` what moved ("champion", "LLM champion").
    """
    try:
        old, new = registry.rollback(args.family, args.task, to_version=args.to_version,
                                     actor=args.actor or default_actor(), reason=args.reason)
    except RegistryError as exc:
        print(f"model-registry: {command} refused: {exc}", file=sys.stderr)
        return 2
    print(f"{args.family}.{args.task}: {noun} {old or 'none'} -> {new} ({where})")
    return 0
