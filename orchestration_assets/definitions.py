"""The code location: every asset, check, job, sensor, schedule and resource in one Definitions."""

from __future__ import annotations

import os
import warnings

import dagster as dg

# Partitioned asset checks and freshness policies are Dagster preview/beta features this code
# location uses on purpose; their warnings would repeat on every load.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from checks.anomaly import anomaly_checks, with_freshness_policies
from checks.data_quality import data_quality_checks
from checks.guardrails import guardrail_checks
from checks.promotion import promotion_checks
from checks.spend import llm_spend_within_budget
from resources.notifier import Notifier
from resources.outbox import Outbox
from resources.policy import RoutingPolicyResource
from resources.providers.local import LocalModelStore
from resources.registry import ModelRegistryResource
from resources.router import ModelRouter
from resources.sources import ContextSources, TicketInbox
from resources.warehouse import Warehouse, WarehouseIOManager
from sensors.automation import automation_sensor
from sensors.inbox import inbox_sensor
from sensors.registry import registry_schedules, registry_sensors
from sensors.review import review_sensors
from sensors.schedules import schedules

from . import enrichment, governance, ingestion, kpis, models, review
from .jobs import jobs


def _env(name: str) -> str | dg.EnvVar:
    """An EnvVar when the variable is set (resolved at run time, never stored in config), else ''."""
    return dg.EnvVar(name) if os.getenv(name) else ""


def build_resources() -> dict[str, object]:
    """Embedded defaults (bundled data, local model, SQLite); each overridable by an environment variable."""
    warehouse = Warehouse(url=_env("WAREHOUSE_URL"))
    return {
        "warehouse": warehouse,
        "io_manager": WarehouseIOManager(warehouse=warehouse),
        "inbox": TicketInbox(path=_env("INBOX_DIR")),
        "sources": ContextSources(directory=_env("CONTEXT_DIR")),
        "policy": RoutingPolicyResource(path=_env("ROUTING_POLICY")),
        "local_models": LocalModelStore(model_dir=_env("MODEL_DIR")),
        "registry": ModelRegistryResource(warehouse=warehouse),
        "router": ModelRouter(
            config_path=_env("ROUTING_CONFIG"),
            api_key=dg.EnvVar("OPENAI_API_KEY") if os.getenv("OPENAI_API_KEY") else None,
        ),
        **review_resources(),
    }


def review_resources() -> dict[str, object]:
    """The outbox (replies) and the notifier (alerts): data-dir folders, plus webhooks when configured."""
    return {
        "outbox": Outbox(folder=_env("OUTBOX_DIR"), webhook_url=_env("OUTBOX_WEBHOOK_URL")),
        "notifier": Notifier(folder=_env("ALERTS_DIR"), webhook_url=_env("ALERTS_WEBHOOK_URL")),
    }


def _registry_for(resources: dict[str, object]) -> dict[str, object]:
    """The model registry over the given warehouse, unless the caller passed one."""
    if "registry" in resources or "warehouse" not in resources:
        return {}
    return {"registry": ModelRegistryResource(warehouse=resources["warehouse"])}


def build_definitions(resources: dict[str, object] | None = None) -> dg.Definitions:
    """The Definitions with the given resources (tests pass temp ones), else the embedded defaults."""
    defs = dg.Definitions(
        assets=dg.load_assets_from_modules([ingestion, enrichment, governance, kpis, review, models]),
        asset_checks=[*data_quality_checks, *guardrail_checks, llm_spend_within_budget, *review.review_checks,
                      *anomaly_checks, *promotion_checks],
        jobs=jobs,
        sensors=[inbox_sensor, automation_sensor, *review_sensors, *registry_sensors],
        schedules=[*schedules, *registry_schedules],
        resources={**review_resources(), **_registry_for(resources), **resources} if resources is not None else build_resources(),
    )
    return with_freshness_policies(defs)


defs = build_definitions()
