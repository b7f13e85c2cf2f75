"""The model catalog of a deployment: the endpoints and models every family's routes may name.

One YAML file per deployment (``ModelRouter.config_path``; default: env ``MODELS_CONFIG``, else the
bundled ``resources/models.default.yaml``, which has no remote model, so a fresh machine needs no
key). Which model answers which task is not here: each family declares it (``routing:`` in its
``defs.yaml``, :class:`~resources.router.routes.TaskRoute`), validated against
:attr:`ModelCatalog.models`. Keys (see ``resources/models.example-openai.yaml``):

``concurrency``
    Remote calls in flight per router session, all endpoints together (default 32).
``endpoints.<name>``
    An OpenAI-compatible server: ``base_url``; ``api_key_env`` (env var with this endpoint's key;
    default the router's ``api_key``); ``api_key_required`` (false for Ollama / vLLM);
    ``timeout_s`` per call; ``max_attempts`` (first try included) with exponential ``backoff``
    ``{initial_s, max_s, jitter_s}`` honoring ``Retry-After`` up to ``max_retry_after_s``;
    ``max_concurrency``; ``rpm`` / ``tpm`` limits; ``cooldown: {after_failures, seconds}``;
    ``headers``; ``structured_output``: the endpoint's dialect for asking for a task's JSON schema
    (below; a model's own ``structured_output`` overrides it); ``params_supported``: request
    parameters beyond the standard ones this server takes (e.g. ``max_completion_tokens``,
    llama.cpp's ``top_k``); ``price_provider``: the provider id prices are looked up under in
    genai-prices (default from ``base_url`` when it is a known vendor's, e.g. ``openai``).
``models.<name>``
    ``endpoint``; ``model`` (the id sent, and the one recorded: the response's ``model`` is kept
    apart as ``served_model``); ``params``: Chat Completions parameters, checked at load
    (:data:`STANDARD_PARAMS`, plus the endpoint's ``params_supported``; ``stream`` never);
    ``max_tokens`` bounds each answer (a model without it is sent :data:`DEFAULT_MAX_TOKENS`, so the
    bound a budget reserves is one the server enforces); ``price: {input_per_1m, output_per_1m}`` in
    USD overrides the price table; without it the price comes from ``genai-prices`` (the endpoint's
    ``price_provider`` and the model id), and a model it does not know is refused at load;
    ``structured_output`` (default: the endpoint's).

``cache``
    ``{enabled, table}``: the content-hash cache of answers in the warehouse.
``ledger_table``
    The spend ledger the budgets and the spend check read.
``rate_limits``
    ``{shared, redis_url_env}``: where the endpoints' ``rpm`` / ``tpm`` windows shared by every
    process live: ``auto`` (default: Redis when the env var ``redis_url_env``, default
    ``RATE_LIMIT_REDIS_URL``, is set, else the warehouse), ``redis``, ``warehouse`` or ``process``
    (each session alone). See :mod:`resources.router.rates`.

Structured-output dialects (``structured_output``), how a task's JSON schema is asked for:

``json_schema`` (default)
    OpenAI structured outputs: ``response_format: {type: json_schema, json_schema: {name, schema,
    strict}}``. OpenAI, Azure, vLLM, recent Ollama.
``json_object_schema``
    ``response_format: {type: json_object, schema: {...}}``: llama.cpp's server (llama-cpp-python),
    which turns the schema into a grammar and answers a ``json_schema`` format with HTTP 500.
``json_object``
    ``response_format: {type: json_object}``; the schema is only in the system prompt.
``none``
    No ``response_format``; the schema is only in the system prompt.

A bad file fails with one line per problem naming the file, the key path and the reason::

    models.yaml: models.small.endpoint: unknown endpoint 'nowhere'; known: openai

Loading is cheap (YAML and pydantic only, no SDK import; genai-prices is imported, and each model
looked up once, only for models without a ``price:``): definitions call it at load time.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from resources.configuration import ConfigError, http_url_problem
from resources.router.routes import LOCAL

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_CATALOG_PATH = PROJECT_ROOT / "resources" / "models.default.yaml"
CATALOG_ENV = "MODELS_CONFIG"
StructuredOutput = Literal["json_schema", "json_object_schema", "json_object", "none"]
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# the body of each call is built from these; a catalog that set them would send another model or prompt
RESERVED_PARAMS = ("model", "messages", "response_format")
# Chat Completions parameters every OpenAI-compatible server takes; anything else must be declared
# by the endpoint (params_supported), as servers silently ignore what they do not know
STANDARD_PARAMS = frozenset({
    "temperature", "top_p", "max_tokens", "seed", "stop", "presence_penalty", "frequency_penalty", "n",
    "logprobs", "top_logprobs", "logit_bias", "user",
})
# the router validates, costs and caches whole answers: a streamed body is none
NEVER_PARAMS = {"stream": "the router needs whole answers", "stream_options": "the router needs whole answers"}
# sent as max_tokens when a model sets none, so what a budget reserves is a bound the server enforces
DEFAULT_MAX_TOKENS = 400
# base_url host -> genai-prices provider id, for the vendors whose host says who they are
PRICE_PROVIDERS = {
    "api.openai.com": "openai", "api.anthropic.com": "anthropic", "api.mistral.ai": "mistral",
    "api.groq.com": "groq", "api.deepseek.com": "deepseek", "openrouter.ai": "openrouter",
    "api.together.xyz": "together", "api.x.ai": "x-ai",
}
# (low, high, type): max_tokens also sizes what a budget reserves before each call
NUMERIC_PARAMS: dict[str, tuple[float, float, type | tuple[type, ...]]] = {
    "max_tokens": (1, 1_000_000, int), "max_completion_tokens": (1, 1_000_000, int),
    "temperature": (0, 2, (int, float)), "top_p": (0, 1, (int, float)), "n": (1, 1, int),
    "presence_penalty": (-2, 2, (int, float)), "frequency_penalty": (-2, 2, (int, float)),
    "top_logprobs": (0, 20, int), "seed": (-(2**63), 2**63 - 1, int),
}


class CatalogError(ConfigError):
    """The model catalog file is missing, not YAML, or fails validation; one line per problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Backoff(_Strict):
    initial_s: float = Field(0.5, ge=0)
    max_s: float = Field(8.0, ge=0)
    jitter_s: float = Field(0.5, ge=0)


class Cooldown(_Strict):
    after_failures: int = Field(5, ge=1, description="consecutive failed calls that open the cooldown")
    seconds: float = Field(60.0, ge=0, description="how long the endpoint then gets no calls")


class EndpointConfig(_Strict):
    """An OpenAI-compatible HTTP endpoint (OpenAI, Azure OpenAI, vLLM, Ollama ...)."""

    base_url: str | None = Field(None, description="None = the SDK default (api.openai.com)")
    api_key_env: str | None = Field(None, description="env var holding this endpoint's key; default: the router's api_key")
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
    structured_output: StructuredOutput = Field("json_schema", description="how the task's JSON schema is asked for")
    params_supported: list[str] = Field(default_factory=list, description="request params beyond the standard ones")
    price_provider: str | None = Field(None, min_length=1,
                                       description="genai-prices provider id; default from base_url")

    @field_validator("params_supported")
    @classmethod
    def _supported(cls, v: list[str]) -> list[str]:
        problems = [f"{k!r}: {NEVER_PARAMS[k]}" for k in v if k in NEVER_PARAMS]
        problems += [f"{k!r} is set by the router, not here" for k in v if k in RESERVED_PARAMS]
        if problems:
            raise ValueError("; ".join(problems))
        return v

    @property
    def price_provider_id(self) -> str | None:
        """The genai-prices provider of this endpoint: declared, or known from the base URL's host."""
        if self.price_provider:
            return self.price_provider
        host = urlsplit(self.base_url or "https://api.openai.com/v1").hostname or ""
        return PRICE_PROVIDERS.get(host)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        # the SDK accepts any string and every call then fails mid-run, after the free steps have run
        problem = http_url_problem(v) if v is not None else None
        if problem:
            raise ValueError(f"{v!r}: {problem}")
        return v

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not ENV_NAME.match(v):
            raise ValueError("not an environment variable name; give the variable's name, never the key itself")
        return v


class Price(_Strict):
    input_per_1m: float = Field(0.0, ge=0)
    output_per_1m: float = Field(0.0, ge=0)

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input_per_1m + tokens_out * self.output_per_1m) / 1_000_000


class ModelConfig(_Strict):
    """One model on one endpoint, with the parameters and price of its calls."""

    endpoint: str
    model: str = Field(..., min_length=1, description="model id sent to the endpoint")
    params: dict[str, Any] = Field(default_factory=lambda: {"temperature": 0, "max_tokens": DEFAULT_MAX_TOKENS})
    price: Price | None = Field(None, description="USD per 1M tokens; default: the genai-prices table")
    structured_output: StructuredOutput | None = Field(None, description="default: the endpoint's dialect")
    # where `price` came from once the catalog is loaded: "catalog" or "genai-prices <version>"
    _price_source: str = PrivateAttr("catalog")

    @field_validator("params")
    @classmethod
    def _params(cls, v: dict[str, Any]) -> dict[str, Any]:
        problems = [f"{k!r} is set by the router, not here" for k in v if k in RESERVED_PARAMS]
        problems += [f"{k!r}: {NEVER_PARAMS[k]}" for k in v if k in NEVER_PARAMS]
        for key, (low, high, kind) in NUMERIC_PARAMS.items():
            value = v.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
                what = "an integer" if kind is int else "a number"
                if key == "n":
                    problems.append(f"n must be 1 (the router takes one answer per call), got {value!r}")
                else:
                    problems.append(f"{key} must be {what} from {low} to {high}, got {value!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return v

    @property
    def max_tokens(self) -> int:
        """The output bound of one call, for the worst-case cost a budget reserves (sent with every call)."""
        return int(self.params.get("max_tokens") or self.params.get("max_completion_tokens") or DEFAULT_MAX_TOKENS)

    @property
    def request_params(self) -> dict[str, Any]:
        """The params as sent: with ``max_tokens`` added when none bounds the answer."""
        if "max_tokens" in self.params or "max_completion_tokens" in self.params:
            return self.params
        return {**self.params, "max_tokens": DEFAULT_MAX_TOKENS}

    @property
    def deterministic(self) -> bool:
        """Whether the same request gets the same answer (temperature 0, or a seed): never resent as is."""
        return self.params.get("temperature", 1) == 0 or self.params.get("seed") is not None

    @property
    def price_source(self) -> str:
        return self._price_source

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (self.price or Price()).cost(tokens_in, tokens_out)


class CacheConfig(_Strict):
    enabled: bool = True
    table: str = Field("llm_cache", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class RateLimitsConfig(_Strict):
    shared: Literal["auto", "redis", "warehouse", "process"] = "auto"
    redis_url_env: str = Field("RATE_LIMIT_REDIS_URL", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                               description="env var holding the Redis URL (it may hold a password)")


class _ReferenceErrors(ValueError):
    """Problems that span keys (a model naming an unknown endpoint); reported one per key path."""

    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__("; ".join(f"{loc}: {msg}" for loc, msg in problems))
        self.problems = problems


class ModelCatalog(_Strict):
    """The endpoints and models of a deployment."""

    version: int = 1
    concurrency: int = Field(32, ge=1, description="remote calls in flight per router session")
    endpoints: dict[str, EndpointConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    cache: CacheConfig = CacheConfig()
    ledger_table: str = Field("llm_spend", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    rate_limits: RateLimitsConfig = RateLimitsConfig()

    @model_validator(mode="after")
    def _references(self) -> "ModelCatalog":
        problems: list[tuple[str, str]] = []
        if LOCAL in self.models:
            problems.append((f"models.{LOCAL}", "'local' is the built-in provider; pick another name"))
        known = ", ".join(sorted(self.endpoints)) or "(none)"
        for name, model in self.models.items():
            endpoint = self.endpoints.get(model.endpoint)
            if endpoint is None:
                problems.append((f"models.{name}.endpoint", f"unknown endpoint {model.endpoint!r}; known: {known}"))
                continue
            for key in sorted(set(model.params) - STANDARD_PARAMS - set(endpoint.params_supported)):
                if key in NEVER_PARAMS or key in RESERVED_PARAMS:
                    continue  # reported by the params check
                problems.append((f"models.{name}.params.{key}", f"not a parameter endpoint {model.endpoint!r} takes "
                                 f"(standard: {', '.join(sorted(STANDARD_PARAMS))}); declare it in "
                                 f"endpoints.{model.endpoint}.params_supported if this server supports it"))
            if model.price is None:
                found = table_price(model, endpoint)
                if isinstance(found, str):
                    problems.append((f"models.{name}.price", found))
                    continue
                priced = model.model_copy(update={"price": found[0]})
                priced._price_source = found[1]
                self.models[name] = priced  # resolved once, at load: lookups are not free
        if problems:
            raise _ReferenceErrors(problems)
        return self

    def endpoint_of(self, model: str) -> EndpointConfig:
        return self.endpoints[self.models[model].endpoint]


def table_price(model: ModelConfig, endpoint: EndpointConfig) -> tuple[Price, str] | str:
    """(price, source) of a model without a ``price:`` from genai-prices, or why it has none."""
    provider = endpoint.price_provider_id
    if provider is None:
        return (f"no price, and the price table cannot tell who serves {model.model!r} at {endpoint.base_url}: "
                f"set price: {{input_per_1m, output_per_1m}}, or endpoints.{model.endpoint}.price_provider")
    found = _table_price(provider, model.model)
    if isinstance(found, str):
        return f"no price, and {found}: set price: {{input_per_1m, output_per_1m}}"
    return found


@functools.lru_cache(maxsize=256)
def _table_price(provider: str, model: str) -> tuple[Price, str] | str:
    """USD per 1M input / output tokens of ``model`` at ``provider`` in genai-prices, or why not."""
    from importlib.metadata import version

    from genai_prices import Usage, calc_price  # imported only for a model without a price (~0.5 s)

    try:
        # the price of 1M tokens each way is the per-1M rate (tiers, if any, start above it)
        got = calc_price(Usage(input_tokens=1_000_000, output_tokens=1_000_000), model_ref=model, provider_id=provider)
    except LookupError as err:
        return f"genai-prices does not know it ({err})"
    price = Price(input_per_1m=float(got.input_price), output_per_1m=float(got.output_price))
    return price, f"genai-prices {version('genai-prices')}"


def _problems(err: ValidationError) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for e in err.errors():
        original = (e.get("ctx") or {}).get("error")
        if isinstance(original, _ReferenceErrors):
            out.extend(original.problems)
            continue
        loc = ".".join(str(p) for p in e.get("loc", ()))
        msg = e.get("msg", "invalid").removeprefix("Value error, ")
        if e.get("type") == "extra_forbidden":
            msg = "unknown key (typo?)"
        out.append((loc, msg))
    return out


def parse_catalog(data: Any, source: str = "<catalog>") -> ModelCatalog:
    """Validate already-parsed YAML as a model catalog; raises :class:`CatalogError`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CatalogError(source, [("", f"the top level must be a mapping, got {type(data).__name__}")])
    try:
        return ModelCatalog.model_validate(data)
    except ValidationError as err:
        raise CatalogError(source, _problems(err)) from None


def resolve_catalog_path(path: str | Path | None = None) -> Path:
    """The file a path names: "" / None = env ``MODELS_CONFIG``, else the bundled default;
    a relative path that is not found from the working directory is tried from the project root."""
    if not path:
        path = os.environ.get(CATALOG_ENV) or DEFAULT_CATALOG_PATH
    p = Path(path).expanduser()
    if not p.is_absolute() and not p.exists() and (PROJECT_ROOT / p).exists():
        p = PROJECT_ROOT / p
    return p


def load_catalog(path: str | Path | None = None) -> ModelCatalog:
    """Load and validate a model catalog file (see :func:`resolve_catalog_path` for the default)."""
    p = resolve_catalog_path(path)
    source = str(p)
    if not path and os.environ.get(CATALOG_ENV):
        source = f"{p} (from {CATALOG_ENV})"  # the user set a variable, not a path: name it
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(source, [("", "model catalog file not found")]) from None
    except OSError as exc:
        raise CatalogError(source, [("", f"cannot read the file: {exc.strerror}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise CatalogError(source, [("", f"not valid YAML{where}: {getattr(err, 'problem', err)}")]) from None
    return parse_catalog(data, source)
