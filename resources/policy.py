"""The routing policy: a YAML file validated by pydantic, applied to enriched tickets.

``RoutingPolicy.from_file(path)`` raises :class:`PolicyError` naming the file, the key and the
reason for any invalid setting. :func:`route` is plain logic (no Dagster): one decision per
ticket with reason codes and the policy hash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import dagster as dg
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .providers.base import CATEGORIES, PRIORITIES, content_hash

Action = Literal["auto_send", "human_review", "escalate"]
SEVERITY: dict[str, int] = {"auto_send": 0, "human_review": 1, "escalate": 2}
FLAGS = ("legal_flag", "security_flag", "data_deletion_flag", "refund_over_threshold", "prompt_injection_flag")
DEFAULT_POLICY_PATH = Path(__file__).with_name("policy.default.yaml")


class PolicyError(ValueError):
    """An invalid policy file; the message names file, key and reason."""


class NegativeHighPriority(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sentiment_at_most: float = Field(ge=-1.0, le=1.0)
    priorities: list[Literal["low", "medium", "high", "urgent"]]
    action: Action = "escalate"


class GuardrailSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_failure_rate: float = Field(default=0.05, ge=0.0, le=1.0)


class RoutingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    confidence_threshold: float = Field(ge=0.0, le=1.0)
    sensitive_categories: dict[str, Action] = Field(default_factory=dict)
    flag_actions: dict[str, Action] = Field(default_factory=dict)
    vip_action: Action = "human_review"
    negative_high_priority: NegativeHighPriority | None = None
    draft_guardrail_action: Action = "human_review"
    enrichment_failed_action: Action = "human_review"
    guardrails: GuardrailSettings = Field(default_factory=GuardrailSettings)
    # refunds above this amount raise the refund_over_threshold flag
    refund_threshold_usd: float = Field(default=500.0, gt=0)

    # set by from_file / from_dict, not by the YAML
    source: str = Field(default="<dict>", exclude=True)
    policy_hash: str = Field(default="", exclude=True)

    @field_validator("sensitive_categories")
    @classmethod
    def _known_categories(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(CATEGORIES))
        if unknown:
            raise ValueError(f"unknown categor{'y' if len(unknown) == 1 else 'ies'} {unknown}; allowed: {list(CATEGORIES)}")
        return v

    @field_validator("flag_actions")
    @classmethod
    def _known_flags(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(FLAGS))
        if unknown:
            raise ValueError(f"unknown flag(s) {unknown}; allowed: {list(FLAGS)}")
        return v

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> "RoutingPolicy":
        if not isinstance(data, dict):
            raise PolicyError(f"{source}: the policy must be a mapping of keys to values, got {type(data).__name__}")
        try:
            policy = cls.model_validate(data)
        except ValidationError as exc:
            lines = []
            for err in exc.errors():
                key = ".".join(str(p) for p in err["loc"]) or "<root>"
                msg = err["msg"].removeprefix("Value error, ")
                if err["type"] == "extra_forbidden":
                    msg = "unknown key (typo?)"
                lines.append(f"{source}: key '{key}': {msg}")
            raise PolicyError("invalid routing policy:\n" + "\n".join(lines)) from None
        policy.source = source
        policy.policy_hash = content_hash(policy.model_dump(mode="json"))
        return policy

    @classmethod
    def from_file(cls, path: str | Path) -> "RoutingPolicy":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"{path}: cannot read the policy file: {exc.strerror}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise PolicyError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
        return cls.from_dict(data, source=str(path))


def route(enriched: pd.DataFrame, policy: RoutingPolicy) -> pd.DataFrame:
    """One decision per enriched ticket: ticket_id, decision, reasons (list), policy_hash.

    Expected columns: ticket_id, status, category, category_confidence, priority,
    sentiment_score, is_vip, guardrail_violations (list) and the flag columns.
    """
    out = []
    for row in enriched.to_dict(orient="records"):
        triggered: list[tuple[str, str]] = []  # (reason code, action)
        if row.get("status") != "enriched":
            triggered.append(("ENRICHMENT_FAILED", policy.enrichment_failed_action))
        else:
            conf = row.get("category_confidence")
            if conf is None or pd.isna(conf) or conf < policy.confidence_threshold:
                triggered.append(("LOW_CONFIDENCE", "human_review"))
            cat = row.get("category")
            if cat in policy.sensitive_categories:
                triggered.append((f"SENSITIVE_CATEGORY:{cat}", policy.sensitive_categories[cat]))
            for flag, action in policy.flag_actions.items():
                if bool(row.get(flag)):
                    triggered.append((f"SENSITIVE_FLAG:{flag}", action))
            if bool(row.get("is_vip")):
                triggered.append(("VIP_ACCOUNT", policy.vip_action))
            nhp = policy.negative_high_priority
            score = row.get("sentiment_score")
            if (
                nhp is not None
                and score is not None
                and not pd.isna(score)
                and score <= nhp.sentiment_at_most
                and row.get("priority") in nhp.priorities
            ):
                triggered.append(("NEGATIVE_HIGH_PRIORITY", nhp.action))
            for violation in row.get("guardrail_violations") or []:
                triggered.append((f"DRAFT_GUARDRAIL:{violation}", policy.draft_guardrail_action))
        decision = max((a for _, a in triggered), key=SEVERITY.__getitem__, default="auto_send")
        out.append(
            {
                "ticket_id": row["ticket_id"],
                "decision": decision,
                "reasons": [code for code, _ in triggered],
                "policy_hash": policy.policy_hash,
                "policy_version": policy.version,
            }
        )
    return pd.DataFrame(out, columns=["ticket_id", "decision", "reasons", "policy_hash", "policy_version"])


class RoutingPolicyResource(dg.ConfigurableResource):
    """Where the routing policy lives: ``path`` to a YAML file (default: the bundled policy)."""

    path: str = ""

    def load(self) -> RoutingPolicy:
        return RoutingPolicy.from_file(self.path or DEFAULT_POLICY_PATH)
