"""What every family shares: the resources (warehouse, router, registry, inbox, outbox ...) and platform sensors.

Every resource has an embedded default (bundled data, local model, SQLite under the data dir) and is
overridden by an environment variable, read through ``dg.EnvVar`` so a value is resolved at run time
and never stored in config or shown in the UI.
"""

import os

import dagster as dg

from resources.notifier import Notifier
from resources.outbox import Outbox
from resources.providers.local.store import LocalModelStore
from resources.registry.resource import ModelRegistryResource
from resources.router.resource import ModelRouter
from resources.sources import Inbox
from resources.warehouse import Warehouse, WarehouseIOManager
from sensors.alerts import run_failure_alert_sensor
from sensors.automation import automation_sensor

# name -> (environment variable, what it sets); the README's Configuration table lists the same
SETTINGS = {
    "warehouse": "WAREHOUSE_URL", "inbox": "INBOX_DIR", "models": "MODEL_DIR", "catalog": "MODELS_CONFIG",
    "outbox": "OUTBOX_DIR", "alerts": "ALERTS_DIR", "alerts_webhook": "ALERTS_WEBHOOK_URL",
}


def _env(name: str) -> str | dg.EnvVar:
    """An EnvVar when the variable is set (resolved at run time, never stored in config), else ''."""
    return dg.EnvVar(name) if os.getenv(name) else ""


def platform_resources() -> dict[str, object]:
    """The embedded defaults, each overridable by an environment variable."""
    warehouse = Warehouse(url=_env("WAREHOUSE_URL"))
    return {
        "warehouse": warehouse,
        "io_manager": WarehouseIOManager(warehouse=warehouse),
        "inbox": Inbox(root=_env("INBOX_DIR")),
        "local_models": LocalModelStore(model_dir=_env("MODEL_DIR")),
        "registry": ModelRegistryResource(warehouse=warehouse),
        "router": ModelRouter(config_path=_env("MODELS_CONFIG"),
                              api_key=dg.EnvVar("OPENAI_API_KEY") if os.getenv("OPENAI_API_KEY") else None),
        "outbox": Outbox(folder=_env("OUTBOX_DIR")),
        "notifier": Notifier(folder=_env("ALERTS_DIR"), webhook_url=_env("ALERTS_WEBHOOK_URL")),
    }


def with_dependents(resources: dict[str, object]) -> dict[str, object]:
    """``resources`` completed with the ones built on its warehouse (tests pass only what they change)."""
    out = dict(resources)
    warehouse = out.get("warehouse")
    if warehouse is not None:
        out.setdefault("io_manager", WarehouseIOManager(warehouse=warehouse))
        out.setdefault("registry", ModelRegistryResource(warehouse=warehouse))
    defaults = platform_resources()
    for name, resource in defaults.items():
        out.setdefault(name, resource)
    return out


def platform_defs(resources: dict[str, object] | None = None) -> dg.Definitions:
    return dg.Definitions(
        resources=with_dependents(resources) if resources is not None else platform_resources(),
        sensors=[run_failure_alert_sensor, automation_sensor],
    )
