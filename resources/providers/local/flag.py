"""Answering a ``flag`` task locally: named rules, each raised by a regex or a builtin detector.

A rule's ``patterns`` are searched case-insensitively (any match raises it); ``builtin:
prompt_injection`` uses :mod:`resources.injection`. The answer is the sorted list of raised
names, as an LLM answer is normalised, so both paths store the same value for the same flags.
"""

from __future__ import annotations

from typing import Callable

from resources import injection
from resources.providers.base import content_hash
from resources.providers.tasks import FlagTask

from .patterns import Pattern

# a test gets the text and its lower-cased form (computed once per record for all rules)
BUILTINS: dict[str, Callable[[str, str], bool]] = {"prompt_injection": injection.has_injection}
VERSION = content_hash("flag-v1", injection.PATTERN, sorted(BUILTINS))


class Flagger:
    """A flag task compiled once: one combined pattern per rule."""

    def __init__(self, task_spec: FlagTask):
        self.rules: list[tuple[str, Callable[[str, str], bool]]] = []
        for name, rule in sorted(task_spec.rules.items()):
            if rule.builtin is not None:
                self.rules.append((name, BUILTINS[rule.builtin]))
            else:
                pattern = Pattern("|".join(f"(?:{p})" for p in rule.patterns))
                self.rules.append((name, pattern.search))

    def answer(self, text: str) -> list[str]:
        """The names of the rules ``text`` raises, sorted."""
        if not text or not isinstance(text, str):
            return []
        low = text.lower()
        return [name for name, test in self.rules if test(text, low)]
