"""The declarative routing config of the model router: pydantic models plus YAML loading.

A bad config fails at load with one message per problem, naming the file, the key path and the
reason, e.g. ``routing.yaml: tasks.classify.escalate_to[0]: unknown model 'gpt-5o'; known: local,
gpt-4o-mini``. See :mod:`resources.router` for what each key does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from resources.providers.base import Task

LOCAL = "local"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent / "routing.default.yaml"

# Tasks whose results carry a confidence, so a cascade / min_confidence can judge them.
CONFIDENCE_TASKS = frozenset({Task.classify, Task.prioritize})


class RoutingConfigError(ValueError):
    """The routing config file is missing, not YAML, or fails validation."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Backoff(_Strict):
    initial_s: float = Field(0.5, ge=0)
    max_s: float = Field(8.0, ge=0)
    jitter_s: float = Field(0.5, ge=0)


class Cooldown(_Strict):
    after_failures: int = Field(5, ge=1, description="consecutive failed calls that open the cooldown")
    seconds: float = Field(60.0, ge=0, description="how long the endpoint gets no calls")


class EndpointConfig(_Strict):
    """An OpenAI-compatible HTTP endpoint (OpenAI, Azure OpenAI, vLLM, Ollama ...)."""

    base_url: str | None = Field(None, description="None = the SDK default (api.openai.com)")
    api_key_env: str | None = Field(
        None, description="env var holding this endpoint's key; default: the router's api_key"
    )
    api_key_required: bool = Field(True, description="False for keyless servers (Ollama, local vLLM)")
    timeout_s: float = Field(30.0, gt=0)
    max_attempts: int = Field(3, ge=1, le=10, description="attempts per call, first one included")
    backoff: Backoff = Backoff()
    max_retry_after_s: float = Field(30.0, ge=0, description="cap on a server's Retry-After")
    max_concurrency: int = Field(32, ge=1)
    rpm: int | None = Field(None, ge=1, description="requests per minute")
    tpm: int | None = Field(None, ge=1, description="tokens per minute (estimated before the call)")
    cooldown: Cooldown = Cooldown()
    headers: dict[str, str] = Field(default_factory=dict)


class Price(_Strict):
    input_per_1m: float = Field(0.0, ge=0)
    output_per_1m: float = Field(0.0, ge=0)

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input_per_1m + tokens_out * self.output_per_1m) / 1_000_000


class ModelConfig(_Strict):
    endpoint: str
    model: str = Field(..., min_length=1, description="model id sent to the endpoint")
    params: dict[str, Any] = Field(default_factory=lambda: {"temperature": 0, "max_tokens": 400})
    price: Price = Price()
    json_mode: bool = Field(True, description="send response_format={'type': 'json_object'}")

    @property
    def max_tokens(self) -> int:
        return int(self.params.get("max_tokens") or self.params.get("max_completion_tokens") or 400)


class TaskRoute(_Strict):
    provider: str = LOCAL
    fallbacks: list[str] = Field(default_factory=list, description="tried in order after provider; local is always last")
    min_confidence: float | None = Field(None, ge=0, le=1, description="an LLM answer below this is a failure")
    escalate_below_confidence: float | None = Field(None, ge=0, le=1, description="cascade threshold")
    escalate_to: list[str] = Field(default_factory=list, description="cascade: models for low-confidence tickets")


class Budget(_Strict):
    per_run_usd: float | None = Field(None, ge=0)
    per_day_usd: float | None = Field(None, ge=0)
    per_partition_usd: float | None = Field(None, ge=0, description="the blocking spend check's limit")


class CacheConfig(_Strict):
    enabled: bool = True
    table: str = "llm_cache"


class RoutingConfig(_Strict):
    version: int = 1
    concurrency: int = Field(32, ge=1, description="remote calls in flight per run")
    endpoints: dict[str, EndpointConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    tasks: dict[Task, TaskRoute] = Field(default_factory=dict)
    budget: Budget = Budget()
    cache: CacheConfig = CacheConfig()
    ledger_table: str = "llm_spend"

    @model_validator(mode="after")
    def _references(self) -> "RoutingConfig":
        problems: list[tuple[str, str]] = []
        if LOCAL in self.models:
            problems.append((f"models.{LOCAL}", "'local' is the built-in provider; pick another name"))
        for name, model in self.models.items():
            if model.endpoint not in self.endpoints:
                known = ", ".join(sorted(self.endpoints)) or "(none)"
                problems.append((f"models.{name}.endpoint", f"unknown endpoint {model.endpoint!r}; known: {known}"))
        known_models = ", ".join([LOCAL, *sorted(self.models)])

        def check_name(loc: str, name: str, *, allow_local: bool = True) -> None:
            if name == LOCAL and allow_local:
                return
            if name not in self.models:
                problems.append((loc, f"unknown model {name!r}; known: {known_models}"))

        for task, route in self.tasks.items():
            base = f"tasks.{task.value}"
            check_name(f"{base}.provider", route.provider)
            for i, name in enumerate(route.fallbacks):
                check_name(f"{base}.fallbacks[{i}]", name)
            for i, name in enumerate(route.escalate_to):
                check_name(f"{base}.escalate_to[{i}]", name, allow_local=False)
            cascade = route.escalate_below_confidence is not None or route.escalate_to
            if cascade:
                if route.provider != LOCAL:
                    problems.append((f"{base}.escalate_to", "a cascade starts at the local provider: set provider: local"))
                if route.escalate_below_confidence is None or not route.escalate_to:
                    problems.append(
                        (f"{base}.escalate_below_confidence", "a cascade needs both escalate_below_confidence and escalate_to")
                    )
                if task not in CONFIDENCE_TASKS:
                    problems.append((base, f"{task.value} results have no confidence, so they cannot cascade"))
            if route.min_confidence is not None and task not in CONFIDENCE_TASKS:
                problems.append((f"{base}.min_confidence", f"{task.value} results have no confidence"))
            if route.provider == LOCAL and route.fallbacks and any(f != LOCAL for f in route.fallbacks):
                problems.append((f"{base}.fallbacks", "the local provider is the end of every chain; nothing falls back from it"))
        if problems:
            raise ValueError("; ".join(f"{loc}: {msg}" for loc, msg in problems))
        return self

    # ---- queries -------------------------------------------------------------------------
    def route(self, task: Task) -> TaskRoute:
        return self.tasks.get(task, TaskRoute())

    def remote_chain(self, task: Task) -> list[str]:
        """Remote models tried in order for ``task`` (local is implicitly after them)."""
        route = self.route(task)
        names = route.escalate_to if route.escalate_to else [route.provider, *route.fallbacks]
        chain: list[str] = []
        for name in names:
            if name != LOCAL and name not in chain:
                chain.append(name)
        return chain

    def is_cascade(self, task: Task) -> bool:
        return self.route(task).escalate_below_confidence is not None

    @property
    def uses_remote(self) -> bool:
        return any(self.remote_chain(t) for t in Task)


def _format_validation_error(source: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "__root__")
        msg = e.get("msg", "invalid")
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if e.get("type") == "extra_forbidden":
            msg = "unknown key (typo?)"
        lines.append(f"{source}: {loc}: {msg}" if loc else f"{source}: {msg}")
    return "invalid routing config:\n  " + "\n  ".join(lines)


def parse_config(data: Any, source: str = "<config>") -> RoutingConfig:
    """Validate a dict (already parsed YAML) as a routing config."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RoutingConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    try:
        return RoutingConfig.model_validate(data)
    except ValidationError as err:
        raise RoutingConfigError(_format_validation_error(source, err)) from None


def resolve_config_path(path: str | Path | None) -> Path:
    if not path:
        return DEFAULT_CONFIG_PATH
    p = Path(path).expanduser()
    if not p.is_absolute() and not p.exists() and (PROJECT_ROOT / p).exists():
        p = PROJECT_ROOT / p
    return p


def load_config(path: str | Path | None = None) -> RoutingConfig:
    """Load and validate a routing config file ("" / None: the embedded all-local default)."""
    p = resolve_config_path(path)
    if not p.exists():
        raise RoutingConfigError(f"{p}: routing config file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RoutingConfigError(f"{p}: not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    return parse_config(data, str(p))
