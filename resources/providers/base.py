"""The provider interface: batches of items in, one typed, attributable result per item out.

A provider answers one task (a :class:`~resources.providers.definition.TaskDefinition`: a task
of a family, of one of the generic types) for a batch of :class:`Item` objects and returns one
:class:`TaskResult` per item, in order. A result always says who answered (provider, model id
and version), the prompt or template hash, tokens, cost, latency and attempts; an item the
provider could not answer gets a result with ``error`` set and ``output`` empty, never a missing
row. ``output`` holds the task type's answer fields (see :mod:`resources.providers.tasks`).
"""

from __future__ import annotations

import abc
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from pydantic import BaseModel, Field

if TYPE_CHECKING:  # pragma: no cover
    from resources.providers.definition import TaskDefinition


def content_hash(*parts: Any) -> str:
    """Stable short hash of JSON-serialisable parts (inputs, prompts, policies)."""
    payload = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Document:
    """A retrieved document (a knowledge-base article, a policy page) an answer may cite."""

    id: str
    title: str
    body: str
    url: str | None = None
    group: str | None = None  # e.g. the label the document is filed under
    score: float | None = None


@dataclass(slots=True)
class Item:
    """What a provider sees of one record for one task.

    ``text``: the task's text fields joined by newlines. ``fields``: named inputs, flat, with
    dotted names for lookup columns: the record's fields (``channel``), joined lookup columns
    (``<lookup>.<column>``) and the answers of the tasks this one uses (``<task>``,
    ``<task>_confidence``). ``documents``: retrieved documents (draft tasks).
    """

    id: str
    text: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    documents: Sequence[Document] = ()
    input_hash: str = ""


PROVENANCE_FIELDS = (
    "provider",
    "model_id",
    "model_version",
    "served_model",
    "prompt_hash",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "latency_ms",
    "attempts",
    "path",
    "redactions",
    "error",
)


class TaskResult(BaseModel):
    """One item's answer to one task, with its provenance."""

    record_id: str
    task: str
    output: dict[str, Any] | None = None
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    provider: str
    model_id: str
    model_version: str
    # what the server said answered (its response's `model`); model_id / model_version are the configured ones
    served_model: str | None = None
    prompt_hash: str
    input_hash: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    attempts: int = 1
    # which path answered: "local", "llm", "cache", "cascade:local", "cascade:llm", "fallback:<reason>"
    path: str = "primary"
    redactions: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class ModelProvider(abc.ABC):
    """A model provider answers tasks for batches of items.

    ``external`` providers are outside the trust boundary: text is PII-redacted before it
    reaches them. Local providers may see raw text.
    """

    name: str = "provider"
    external: bool = False

    @abc.abstractmethod
    def supports(self, task: "TaskDefinition") -> bool: ...

    @abc.abstractmethod
    def run(self, task: "TaskDefinition", items: Sequence[Item]) -> list[TaskResult]:
        """One result per item, in input order."""


def error_result(task: "TaskDefinition", item: Item, provider: str, error: str, **extra: Any) -> TaskResult:
    """The result of an item a provider could not answer."""
    return TaskResult.model_construct(
        record_id=item.id, task=task.name, output=None, confidence=None, provider=provider,
        model_id=extra.pop("model_id", ""), model_version=extra.pop("model_version", ""),
        served_model=extra.pop("served_model", None),
        prompt_hash=extra.pop("prompt_hash", ""), input_hash=item.input_hash, tokens_in=extra.pop("tokens_in", 0),
        tokens_out=extra.pop("tokens_out", 0), cost_usd=extra.pop("cost_usd", 0.0), latency_ms=0.0,
        attempts=extra.pop("attempts", 1), path=extra.pop("path", "primary"), redactions=extra.pop("redactions", 0),
        error=error,
    )
