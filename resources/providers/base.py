"""The provider interface: typed, batch-first tasks with provenance on every result.

Every task takes a batch of :class:`TicketInput` and returns one result per ticket, in order.
A result always carries who answered (provider, model id and version), the prompt/template
hash, tokens, cost, latency and attempts; a ticket the provider could not answer gets a
result with ``error`` set and its label fields left empty, never a missing row.
"""

from __future__ import annotations

import abc
import hashlib
import json
from enum import Enum
from typing import Any, ClassVar, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field


class Task(str, Enum):
    classify = "classify"
    prioritize = "prioritize"
    sentiment = "sentiment"
    summarize = "summarize"
    draft_reply = "draft_reply"


CATEGORIES: tuple[str, ...] = (
    "billing",
    "technical_issue",
    "account_access",
    "shipping",
    "refund",
    "product_question",
    "security",
    "privacy",
)
PRIORITIES: tuple[str, ...] = ("low", "medium", "high", "urgent")
SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")


def content_hash(*parts: Any) -> str:
    """Stable short hash of JSON-serialisable parts (inputs, prompts, policies)."""
    payload = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


class AccountContext(BaseModel):
    account_id: str
    name: str | None = None
    tier: str | None = None
    is_vip: bool = False
    arr_usd: float | None = None
    region: str | None = None


class KBArticle(BaseModel):
    article_id: str
    title: str
    body: str
    category: str | None = None
    url: str | None = None
    score: float | None = None


class TicketInput(BaseModel):
    """What a provider sees of one ticket. ``category``/``articles`` are filled by upstream steps."""

    model_config = ConfigDict(frozen=False)

    ticket_id: str
    subject: str = ""
    body: str = ""
    channel: str | None = None
    account: AccountContext | None = None
    category: str | None = None
    articles: list[KBArticle] = Field(default_factory=list)

    @property
    def text(self) -> str:
        return f"{self.subject}\n{self.body}".strip()

    def input_hash(self) -> str:
        return content_hash(self.ticket_id, self.subject, self.body)


class TaskResult(BaseModel):
    """Provenance shared by every task result."""

    task: ClassVar[Task]

    ticket_id: str
    provider: str
    model_id: str
    model_version: str
    prompt_hash: str
    input_hash: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    attempts: int = 1
    # which path answered: "local", "llm", "cache", "fallback:<reason>", "cascade:<...>"
    path: str = "primary"
    redactions: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class ClassifyResult(TaskResult):
    task: ClassVar[Task] = Task.classify
    category: str | None = None
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    probabilities: dict[str, float] = Field(default_factory=dict)


class PriorityResult(TaskResult):
    task: ClassVar[Task] = Task.prioritize
    priority: Literal["low", "medium", "high", "urgent"] | None = None
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    reasons: list[str] = Field(default_factory=list)


class SentimentResult(TaskResult):
    task: ClassVar[Task] = Task.sentiment
    sentiment: Literal["negative", "neutral", "positive"] | None = None
    score: float | None = Field(default=None, ge=-1.0, le=1.0)


class SummaryResult(TaskResult):
    task: ClassVar[Task] = Task.summarize
    summary: str | None = None


class DraftResult(TaskResult):
    task: ClassVar[Task] = Task.draft_reply
    draft: str | None = None
    cited_article_ids: list[str] = Field(default_factory=list)


RESULT_TYPES: dict[Task, type[TaskResult]] = {
    Task.classify: ClassifyResult,
    Task.prioritize: PriorityResult,
    Task.sentiment: SentimentResult,
    Task.summarize: SummaryResult,
    Task.draft_reply: DraftResult,
}


class ModelProvider(abc.ABC):
    """A model provider answers tasks for batches of tickets.

    ``external`` providers are outside the trust boundary: text is PII-redacted before it
    reaches them. Local providers may see raw text.
    """

    name: str = "provider"
    external: bool = False

    @abc.abstractmethod
    def supports(self, task: Task) -> bool: ...

    @abc.abstractmethod
    def run(self, task: Task, tickets: Sequence[TicketInput]) -> list[TaskResult]:
        """One result per ticket, in input order."""

    # typed conveniences
    def classify(self, tickets: Sequence[TicketInput]) -> list[ClassifyResult]:
        return self.run(Task.classify, tickets)  # type: ignore[return-value]

    def prioritize(self, tickets: Sequence[TicketInput]) -> list[PriorityResult]:
        return self.run(Task.prioritize, tickets)  # type: ignore[return-value]

    def sentiment(self, tickets: Sequence[TicketInput]) -> list[SentimentResult]:
        return self.run(Task.sentiment, tickets)  # type: ignore[return-value]

    def summarize(self, tickets: Sequence[TicketInput]) -> list[SummaryResult]:
        return self.run(Task.summarize, tickets)  # type: ignore[return-value]

    def draft_reply(self, tickets: Sequence[TicketInput]) -> list[DraftResult]:
        return self.run(Task.draft_reply, tickets)  # type: ignore[return-value]
