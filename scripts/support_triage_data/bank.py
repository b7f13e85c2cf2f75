"""The generator's text: phrase banks, names, products and articles, read from ``text/*.yaml``.

The code composes; the words live in the YAML files next to it (one file per concern, one per
ticket category under ``text/categories/``). List order matters: every draw is a seeded
``random.Random`` choice over a list, so reordering a list changes the generated files.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TEXT_DIR = Path(__file__).resolve().parent / "text"


@dataclass(frozen=True)
class CategoryText:
    """The ticket text of one category: subjects, (priority hint, problem) pairs, details, asks."""

    subjects: tuple[str, ...]
    problems: tuple[tuple[str, str], ...]
    details: tuple[str, ...]
    asks: tuple[str, ...]


@dataclass(frozen=True)
class Bank:
    catalog: dict[str, Any]
    crm: dict[str, Any]
    knowledge_base: dict[str, Any]
    tickets: dict[str, Any]
    categories: dict[str, CategoryText]
    phrases: dict[str, Any]
    slots: dict[str, Any]
    batches: dict[str, Any]
    readme: str

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.tickets["labels"])

    @property
    def stopwords(self) -> frozenset[str]:
        return frozenset(self.phrases["stopwords"].split())


def _read(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=None)
def load_bank(folder: str | Path = TEXT_DIR) -> Bank:
    """Every text file of the generator (cached: the files are read once per process)."""
    folder = Path(folder)
    tickets = _read(folder / "tickets.yaml")
    categories: dict[str, CategoryText] = {}
    for label in tickets["labels"]:
        doc = _read(folder / "categories" / f"{label}.yaml")
        categories[label] = CategoryText(
            subjects=tuple(doc["subjects"]),
            problems=tuple((level, text) for level, text in doc["problems"]),
            details=tuple(doc["details"]),
            asks=tuple(doc["asks"]),
        )
    extra = sorted(p.stem for p in (folder / "categories").glob("*.yaml") if p.stem not in categories)
    if extra:
        raise ValueError(f"text/categories has files for labels not in tickets.yaml: {extra}")
    return Bank(
        catalog=_read(folder / "catalog.yaml"),
        crm=_read(folder / "crm.yaml"),
        knowledge_base=_read(folder / "knowledge_base.yaml"),
        tickets=tickets,
        categories=categories,
        phrases=_read(folder / "phrases.yaml"),
        slots=_read(folder / "slots.yaml"),
        batches=_read(folder / "batches.yaml"),
        readme=(folder / "README.md.tmpl").read_text(encoding="utf-8"),
    )
