"""What a family declares about routing: which model answers each task, and what it may spend.

The models a route names are defined once per deployment in the model catalog
(:mod:`resources.router.catalog`); a family's ``routing:`` and ``budget:`` keys are these models.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

LOCAL = "local"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskRoute(_Strict):
    """How one task is answered. Tasks a family does not route are answered by the local provider."""

    provider: str = Field(LOCAL, description="'local' or a model of the catalog")
    fallbacks: list[str] = Field(default_factory=list, description="tried in order after provider; local is always last")
    min_confidence: float | None = Field(None, ge=0, le=1, description="an LLM answer below this is a failure")
    escalate_below_confidence: float | None = Field(None, ge=0, le=1, description="cascade threshold")
    escalate_to: list[str] = Field(default_factory=list, description="cascade: models for items the local answer is unsure of")
    replace_less_confident: bool = Field(
        False, description="cascade: an LLM answer less confident than the local one may replace it")
    prompt: str = Field("champion", min_length=1, description="registered prompt version LLM calls use: an alias or a version id")
    candidates: list[str] = Field(default_factory=list, description="models evaluated for this task; the cheapest "
                                  "that passes every LLM gate becomes champion")

    @model_validator(mode="after")
    def _shape(self) -> "TaskRoute":
        cascade = self.escalate_below_confidence is not None or self.escalate_to
        if cascade:
            if self.provider != LOCAL:
                raise ValueError("a cascade starts at the local provider: set provider: local")
            if self.escalate_below_confidence is None or not self.escalate_to:
                raise ValueError("a cascade needs both escalate_below_confidence and escalate_to")
            if LOCAL in self.escalate_to:
                raise ValueError("escalate_to lists models to escalate to; 'local' answered already")
        if self.candidates and (LOCAL in self.candidates or not self.remote_chain()):
            raise ValueError("candidates lists catalog models for a task routed to one (provider or escalate_to)")
        if self.provider == LOCAL and any(f != LOCAL for f in self.fallbacks):
            raise ValueError("the local provider is the end of every chain; nothing falls back from it")
        return self

    @property
    def is_cascade(self) -> bool:
        return self.escalate_below_confidence is not None

    def remote_chain(self) -> list[str]:
        """Remote models tried in order (the local provider is implicitly after them)."""
        names = self.escalate_to if self.escalate_to else [self.provider, *self.fallbacks]
        chain: list[str] = []
        for name in names:
            if name != LOCAL and name not in chain:
                chain.append(name)
        return chain

    def model_names(self) -> list[tuple[str, str]]:
        """(key path, model name) of every model this route names, for validation against the catalog."""
        out = [("provider", self.provider)] if self.provider != LOCAL else []
        out += [(f"fallbacks[{i}]", m) for i, m in enumerate(self.fallbacks) if m != LOCAL]
        out += [(f"escalate_to[{i}]", m) for i, m in enumerate(self.escalate_to)]
        out += [(f"candidates[{i}]", m) for i, m in enumerate(self.candidates)]
        return out


class Budget(_Strict):
    """LLM spend limits of one family, in USD. Unset = unlimited."""

    per_run_usd: float | None = Field(None, ge=0, description="the router stops spending before a run exceeds this")
    per_day_usd: float | None = Field(None, ge=0, description="across the family's runs of one UTC day (spend ledger)")
    per_partition_usd: float | None = Field(None, ge=0, description="limit of the blocking spend check; default per_run_usd")

    @property
    def partition_limit(self) -> float | None:
        return self.per_partition_usd if self.per_partition_usd is not None else self.per_run_usd
