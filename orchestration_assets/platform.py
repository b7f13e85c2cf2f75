"""What every family shares: the resources (warehouse, router, registry, inbox, outbox ...) and platform sensors.

Every resource has an embedded default (bundled data, local model, SQLite under the data dir) and is
overridden by an environment variable, read through ``dg.EnvVar`` so a value is resolved at run time
and never stored in config or shown in the UI. Each variable is also checked while definitions load
(:func:`check_settings`), so a bad value fails ``dg check defs`` naming it, before any run starts.
"""

import os
from typing import Iterable

import dagster as dg

from resources.collector import tune_collector
from resources.configuration import ENVIRONMENT, ConfigError, folder_problem, http_url_problem
from resources.notifier import Notifier
from resources.outbox import Outbox
from resources.providers.local.store import LocalModelStore
from resources.registry.resource import ModelRegistryResource
from resources.router.catalog import CATALOG_ENV, load_catalog
from resources.router.resource import ModelRouter
from resources.sources import Inbox
from resources.warehouse import Warehouse, WarehouseIOManager
from resources.warehouse_url import WAREHOUSE_ENV, mask_url, url_problem
from sensors.alerts import run_failure_alert_sensor
from sensors.automation import automation_sensor
from sensors.run_health import run_health_sensor

# resource -> the environment variables it reads; the README's Configuration table lists the same
SETTINGS = {
    "warehouse": ("WAREHOUSE_URL",), "inbox": ("INBOX_DIR",), "local_models": ("MODEL_DIR",),
    "router": ("MODELS_CONFIG", "OPENAI_API_KEY"), "outbox": ("OUTBOX_DIR",),
    "notifier": ("ALERTS_DIR", "ALERTS_WEBHOOK_URL"),
}
DATA_DIR = "DATA_DIR"  # the default home of every folder and of the SQLite warehouse
FOLDERS = (DATA_DIR, "INBOX_DIR", "MODEL_DIR", "OUTBOX_DIR", "ALERTS_DIR")
RESOURCE_NAMES = ("warehouse", "io_manager", "inbox", "local_models", "registry", "router", "outbox", "notifier")


def _env(name: str) -> str | dg.EnvVar:
    """An EnvVar when the variable is set (resolved at run time, never stored in config), else ''."""
    return dg.EnvVar(name) if os.getenv(name) else ""


def check_settings(resources: Iterable[str] = tuple(SETTINGS)) -> None:
    """The environment settings of these resources, checked while definitions load.

    A bad value then fails ``dg check defs`` and the code location with the variable's name and
    the reason (:class:`~resources.configuration.ConfigError`), instead of every step of every run.
    The values are resolved again at run time (``dg.EnvVar``); nothing here is stored.
    """
    names = [DATA_DIR, *(var for r in resources for var in SETTINGS.get(r, ()))]
    problems = [(var, p) for var in dict.fromkeys(names) if os.getenv(var) and (p := _problem(var, os.environ[var]))]
    if problems:
        raise ConfigError(ENVIRONMENT, problems)
    if "router" in resources and os.getenv(CATALOG_ENV):
        load_catalog()  # its CatalogError names the file (and MODELS_CONFIG), the key and the reason


def _problem(var: str, value: str) -> str | None:
    if var in FOLDERS:
        return folder_problem(value)
    if var == WAREHOUSE_ENV:
        problem = url_problem(value)
        return f"{mask_url(value)}: {problem}" if problem else None
    if var == "ALERTS_WEBHOOK_URL":
        return http_url_problem(value)
    if var == "OPENAI_API_KEY" and any(ch.isspace() or not ch.isprintable() for ch in value):
        # every call would fail on its header, and fall back to the local model, run after run
        return "the key holds whitespace or a control character (a line break copied with it?)"
    return None


def platform_resources(names: Iterable[str] | None = None) -> dict[str, object]:
    """The embedded defaults (all, or the named ones), each overridable by an environment variable."""
    check_settings(tuple(SETTINGS) if names is None else tuple(names))
    warehouse = Warehouse(url=_env("WAREHOUSE_URL"))
    resources = {
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
    return resources if names is None else {n: resources[n] for n in names}


def with_dependents(resources: dict[str, object]) -> dict[str, object]:
    """``resources`` completed with the ones built on its warehouse (tests pass only what they change)."""
    out = dict(resources)
    warehouse = out.get("warehouse")
    if warehouse is not None:
        out.setdefault("io_manager", WarehouseIOManager(warehouse=warehouse))
        out.setdefault("registry", ModelRegistryResource(warehouse=warehouse))
    # only the defaults still missing are built, so only their settings are checked
    missing = [name for name in RESOURCE_NAMES if name not in out]
    out.update(platform_resources(missing))
    return out


def platform_defs(resources: dict[str, object] | None = None) -> dg.Definitions:
    # every process that executes steps loads these definitions first (run and step workers, in-process runs)
    tune_collector()
    return dg.Definitions(
        resources=with_dependents(resources) if resources is not None else platform_resources(),
        sensors=[run_failure_alert_sensor, automation_sensor, run_health_sensor],
    )
