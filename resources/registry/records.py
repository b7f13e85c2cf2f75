"""Plain records the registry returns, its errors and its alias names (no SQLAlchemy, no Dagster)."""

import getpass
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

CHAMPION, CHALLENGER, RETIRED = "champion", "challenger", "retired"
ALIASES = (CHAMPION, CHALLENGER, RETIRED)
# aliases a task may hold at most once at a time (enforced by a partial unique index)
EXCLUSIVE_ALIASES = (CHAMPION, CHALLENGER)


class RegistryError(Exception):
    """A registry operation that cannot be done as asked (unknown version, nothing to roll back to)."""


class PromotionConflict(RegistryError):
    """The champion changed since the promotion was decided (or another promotion won the race)."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def default_actor() -> str:
    """Who is acting: ``REGISTRY_ACTOR`` if set, else ``user:<login>``."""
    if os.getenv("REGISTRY_ACTOR"):
        return os.environ["REGISTRY_ACTOR"]
    try:
        return f"user:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "user:unknown"


@dataclass(frozen=True)
class VersionInfo:
    """One registered model version of a family's task, with its current alias."""

    family: str
    task: str
    version: str
    provider: str
    model_id: str
    params: dict[str, Any]
    prompt_template: str | None
    prompt_hash: str | None
    training_data_hash: str | None
    training_rows: int | None
    artifact: str | None
    metrics: dict[str, Any]
    training_report: dict[str, Any] | None
    description: str | None
    created_by: str
    created_at: str
    alias: str | None = None

    @property
    def key(self) -> str:
        """``family.task@version``, for messages."""
        return f"{self.family}.{self.task}@{self.version}"

    @classmethod
    def of(cls, row: Any, alias: str | None) -> "VersionInfo":
        """From a ``model_versions`` row (JSON columns decoded)."""
        return cls(
            family=row.family, task=row.task, version=row.version, provider=row.provider, model_id=row.model_id,
            params=json.loads(row.params or "{}"), prompt_template=row.prompt_template, prompt_hash=row.prompt_hash,
            training_data_hash=row.training_data_hash, training_rows=row.training_rows, artifact=row.artifact,
            metrics=json.loads(row.metrics or "{}"),
            training_report=json.loads(row.training_report) if row.training_report else None,
            description=row.description, created_by=row.created_by, created_at=row.created_at, alias=alias,
        )


@dataclass(frozen=True)
class EvaluationRecord:
    """One golden-set evaluation of a task's challenger against its champion, with its gate results."""

    evaluation_id: str
    family: str
    task: str
    challenger_version: str | None
    champion_version: str | None
    golden_set_hash: str
    golden_rows: int
    metrics: dict[str, dict[str, Any]]  # {version: {metric: value}}
    gates: list[dict[str, Any]]
    passed: bool
    run_id: str | None
    created_by: str
    created_at: str

    @classmethod
    def of(cls, rec: Any) -> "EvaluationRecord":
        """From a ``model_evaluations`` row (JSON columns decoded)."""
        return cls(
            evaluation_id=rec.evaluation_id, family=rec.family, task=rec.task,
            challenger_version=rec.challenger_version, champion_version=rec.champion_version,
            golden_set_hash=rec.golden_set_hash, golden_rows=rec.golden_rows, metrics=json.loads(rec.metrics),
            gates=json.loads(rec.gates or "[]"), passed=bool(rec.passed), run_id=rec.run_id,
            created_by=rec.created_by, created_at=rec.created_at,
        )


@dataclass(frozen=True)
class PromotionDecision:
    """What a gated promotion did (of a model, or of a routed task's LLM configuration) and why."""

    family: str
    task: str
    promoted: bool
    champion: str | None
    previous: str | None
    challenger: str | None
    reason: str
    evaluation_id: str | None
