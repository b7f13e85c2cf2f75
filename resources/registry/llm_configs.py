"""LLM configurations as registry versions: (catalog model, model id, params, prompt version) of one routed task.

Stored in the model registry's own tables under the task key ``<task>@llm``: ``model_versions``
already has the columns a configuration needs (``provider`` = the endpoint, ``model_id``,
``params``, ``prompt_template`` / ``prompt_hash``), and reusing them gives configurations the
same guarantees as classifiers for free: immutable versions, at most one champion and one
challenger per key (the partial unique index), the append-only alias history, compare-and-set
promotion and one-command rollback. The ``@`` cannot occur in a task name (they are identifiers),
so the key space of configurations never meets a classifier's. ``artifact`` holds the rest of the
configuration as JSON (the catalog model's name, its structured-output mode, the prompt registry's
version id), and ``prompt_template`` the prompt text itself, so live traffic binds exactly the
text that was evaluated (:func:`task_for`), whatever the task's template file says today.

The version is a hash of everything that changes an answer: a model, params or prompt change is
a new version; re-registering an unchanged one moves no alias.
"""

import json
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from resources.providers.base import content_hash

from .api import ModelRegistry
from .records import CHALLENGER, VersionInfo

SUFFIX = "@llm"


def config_key(task: str) -> str:
    """The registry task key of a task's LLM configurations."""
    return f"{task}{SUFFIX}"


@dataclass(frozen=True)
class LlmConfig:
    family: str
    task: str
    model: str  # the catalog's model name (what a route names)
    endpoint: str
    model_id: str
    params: dict[str, Any]
    structured_output: str
    prompt_text: str
    prompt_version: str  # the prompt registry's version id of prompt_text

    @property
    def version(self) -> str:
        return "llm-" + content_hash(self.model, self.endpoint, self.model_id, self.params, self.structured_output,
                                     self.prompt_version)

    def describe(self) -> str:
        return f"{self.model} ({self.model_id} on {self.endpoint}, params {json.dumps(self.params, sort_keys=True)}, " \
               f"prompt {self.prompt_version})"


def config_for(task: Any, model_name: str, catalog: Any, prompt: Any) -> LlmConfig:
    """The configuration a route names: the catalog's model with its params and ``prompt`` (a PromptVersion)."""
    model = catalog.models[model_name]
    return LlmConfig(family=task.family, task=task.name, model=model_name, endpoint=model.endpoint,
                     model_id=model.model, params=dict(model.params), structured_output=model.structured_output,
                     prompt_text=prompt.text, prompt_version=prompt.version)


def task_for(task: Any, config: LlmConfig) -> Any:
    """The task definition bound to the configuration's prompt text (its LLM calls send exactly that)."""
    from resources.providers.prompts import with_prompt

    return with_prompt(task, config.prompt_version, config.prompt_text)


def _of(info: VersionInfo) -> LlmConfig:
    extra = json.loads(info.artifact or "{}")
    return LlmConfig(family=info.family, task=info.task.removesuffix(SUFFIX), model=extra.get("model", info.model_id),
                     endpoint=info.provider, model_id=info.model_id, params=dict(info.params),
                     structured_output=extra.get("structured_output", "json_schema"),
                     prompt_text=info.prompt_template or "", prompt_version=extra.get("prompt_version", ""))


class LlmConfigRegistry:
    """The registry API seen through ``<task>@llm`` keys; every method takes the plain task name."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    def register(self, config: LlmConfig, *, actor: str, alias: str | None = CHALLENGER,
                 reason: str | None = None) -> tuple[LlmConfig, bool, str | None]:
        """Register (idempotent); a new version takes ``alias``. Returns (config, created, its alias now)."""
        extra = {"model": config.model, "structured_output": config.structured_output,
                 "prompt_version": config.prompt_version}
        info, created = self.registry.register(
            family=config.family, task=config_key(config.task), version=config.version, provider=config.endpoint,
            model_id=config.model_id, params=config.params, prompt_template=config.prompt_text,
            artifact=json.dumps(extra, sort_keys=True), created_by=actor, alias=alias if alias else None,
            description=f"LLM configuration of {config.family}.{config.task}: {config.describe()}",
            reason=reason or f"routing names {config.describe()}",
        )
        return _of(info), created, info.alias

    def get(self, family: str, task: str, version: str) -> LlmConfig | None:
        info = self.registry.get(family, config_key(task), version)
        return _of(info) if info else None

    def alias(self, family: str, task: str, alias: str) -> LlmConfig | None:
        info = self.registry.alias(family, config_key(task), alias)
        return _of(info) if info else None

    def champion(self, family: str, task: str) -> LlmConfig | None:
        return self.alias(family, task, "champion")

    def set_alias(self, config: LlmConfig, alias: str, *, actor: str, reason: str) -> None:
        self.registry.set_alias(config.family, config_key(config.task), config.version, alias, actor=actor,
                                reason=reason)

    def promote(self, config: LlmConfig, *, actor: str, reason: str, evaluation_id: str | None,
                expected_champion: str | None) -> str | None:
        return self.registry.promote(config.family, config_key(config.task), config.version, actor=actor,
                                     reason=reason, evaluation_id=evaluation_id, expected_champion=expected_champion)

    def rollback(self, family: str, task: str, *, to_version: str | None = None, actor: str,
                 reason: str) -> tuple[str | None, str]:
        return self.registry.rollback(family, config_key(task), to_version=to_version, actor=actor, reason=reason)

    def snapshot(self, family: str | None = None, task: str | None = None) -> pd.DataFrame:
        df = self.registry.snapshot(family, config_key(task) if task else None)
        if df.empty:
            return df
        df = _configs_only(df)
        df["model"] = [json.loads(a or "{}").get("model") for a in self._artifacts(df)]
        return df

    def _artifacts(self, df: pd.DataFrame) -> list[str | None]:
        out = []
        for fam, task, version in zip(df["family"], df["task"], df["version"]):
            info = self.registry.get(fam, config_key(task), version)
            out.append(info.artifact if info else None)
        return out

    def history(self, family: str | None = None, task: str | None = None) -> pd.DataFrame:
        return _configs_only(self.registry.history(family, config_key(task) if task else None))

    def evaluations(self, family: str | None = None, task: str | None = None) -> pd.DataFrame:
        return _configs_only(self.registry.evaluations(family, config_key(task) if task else None))

    def latest_evaluation(self, family: str, task: str):
        return self.registry.latest_evaluation(family, config_key(task))


def _configs_only(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of LLM configurations among a registry table's, with the task's own name."""
    if df.empty:
        return df
    df = df[df["task"].str.endswith(SUFFIX)].copy()
    df["task"] = df["task"].str.removesuffix(SUFFIX)
    return df.reset_index(drop=True)


def as_row(config: LlmConfig) -> dict[str, Any]:
    """A configuration as a table row (the prompt text left out: the registry keeps it)."""
    row = asdict(config)
    row.pop("prompt_text")
    return {**row, "version": config.version, "params": json.dumps(config.params, sort_keys=True)}
