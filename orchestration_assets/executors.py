"""Where a family's multi-step jobs run their steps: a deployment setting, not a code change.

``PLATFORM_EXECUTOR`` picks the default executor of the workflow and ingest jobs:

- ``multiprocess`` (the default): a process per step on the run's machine;
- ``in_process``: every step in the run's own process;
- ``celery``: each step is a task on a Celery broker, executed by ``dagster-celery`` workers on any
  machine (``CELERY_BROKER_URL``, e.g. ``redis://:password@redis:6379/0``; step results go to
  ``CELERY_RESULT_BACKEND``, by default Celery's ``rpc://`` through the broker). These are Celery's
  own variables, so a worker given the same environment finds the same broker with no config file.
  The workers and the runs need the same Dagster instance storage (PostgreSQL) and warehouse:
  README "Production".

Whatever the default, a run may still choose ``in_process`` or ``multiprocess`` under ``execution:
config:`` (the quick start and the tests ask for ``in_process``), so a run config written for the
local deployment stays valid on a Celery one. The URLs reach the executor as ``{env: ...}`` config, resolved
when a run starts: they are never stored in a run's config or shown in the UI, and a problem with one
is reported with its password masked.
"""

import os
from typing import Any

import dagster as dg

from resources.configuration import ENVIRONMENT, ConfigError
from resources.warehouse_url import mask_url

EXECUTOR_ENV = "PLATFORM_EXECUTOR"
BROKER_ENV = "CELERY_BROKER_URL"
# Celery's own variables: a worker started with them in its environment needs no config file
BACKEND_ENV = "CELERY_RESULT_BACKEND"
EXECUTORS = ("multiprocess", "in_process", "celery")
DEFAULT_EXECUTOR = "multiprocess"


def executor_setting() -> str:
    """The deployment's executor name (``PLATFORM_EXECUTOR``), checked: a ConfigError names the problem."""
    name = os.getenv(EXECUTOR_ENV, "").strip().lower() or DEFAULT_EXECUTOR
    if name not in EXECUTORS:
        raise ConfigError(ENVIRONMENT, [(EXECUTOR_ENV, f"unknown executor {os.environ[EXECUTOR_ENV]!r}; "
                                                       f"expected one of {', '.join(EXECUTORS)}")])
    if name == "celery":
        problems = celery_problems()
        if problems:
            raise ConfigError(ENVIRONMENT, problems)
    return name


def celery_problems() -> list[tuple[str, str]]:
    """Why the Celery settings cannot work, as (variable, reason) pairs; checked without connecting."""
    try:
        import dagster_celery  # noqa: F401
    except ImportError:
        return [(EXECUTOR_ENV, "celery needs dagster-celery, which is not installed; install the project's "
                               "'celery' extra: pip install -e '.[celery]'")]
    broker = os.getenv(BROKER_ENV, "").strip()
    if not broker:
        return [(BROKER_ENV, f"not set; {EXECUTOR_ENV}=celery needs the URL of the Celery broker the workers "
                             "listen on, e.g. redis://:password@redis-host:6379/0")]
    problems = []
    if problem := _broker_problem(broker):
        problems.append((BROKER_ENV, f"{mask_url(broker)}: {problem}"))
    backend = os.getenv(BACKEND_ENV, "").strip()
    if backend and (problem := _backend_problem(backend)):
        problems.append((BACKEND_ENV, f"{mask_url(backend)}: {problem}"))
    return problems


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def _broker_problem(url: str) -> str | None:
    from kombu.transport import TRANSPORT_ALIASES, resolve_transport

    scheme = _scheme(url)
    if not scheme:
        return "not a broker URL; expected e.g. redis://host:6379/0 or amqp://user:password@host:5672//"
    if scheme not in TRANSPORT_ALIASES:
        return f"unknown broker transport {scheme!r}; expected e.g. redis, rediss or amqp"
    try:
        resolve_transport(scheme)
    except Exception:  # noqa: BLE001 - a transport whose client is missing fails on import, not always cleanly
        return f"the {scheme!r} transport cannot be loaded; is its client library installed?"
    return _client_problem(scheme)


def _backend_problem(url: str) -> str | None:
    from celery.app.backends import by_url
    from celery.exceptions import ImproperlyConfigured

    scheme = _scheme(url)
    try:
        if not scheme:
            raise ValueError(url)
        by_url(url)
    except (ValueError, ImportError, ImproperlyConfigured):
        return f"unknown result backend {scheme or url!r}; expected e.g. redis://host:6379/1 or rpc://"
    return _client_problem(scheme)


def _client_problem(scheme: str) -> str | None:
    if scheme in ("redis", "rediss"):
        try:
            import redis  # noqa: F401
        except ImportError:
            return "the redis client is not installed; install the project's 'celery' extra: pip install -e '.[celery]'"
    return None


def _celery_run_config() -> dict[str, Any]:
    config: dict[str, Any] = {"broker": {"env": BROKER_ENV}}
    # unset, runs and workers both keep Celery's default (rpc://, replies through the broker)
    if os.getenv(BACKEND_ENV, "").strip():
        config["backend"] = {"env": BACKEND_ENV}
    return {"celery": config}


def _requirements(config: dict) -> list:
    return [] if "in_process" in config else list(dg.multiple_process_executor_requirements())


def platform_executor(name: str) -> dg.ExecutorDefinition:
    """An executor offering in_process, multiprocess and (when it is the setting) celery, ``name``'s by default."""
    choices = {"in_process": dg.in_process_executor, "multiprocess": dg.multiprocess_executor}
    if name == "celery":  # imported only then: Celery and kombu cost a default code location ~0.3 s to load
        from dagster_celery import celery_executor

        choices["celery"] = celery_executor
    default = _celery_run_config() if name == "celery" else {name: {}}

    @dg.executor(
        name="platform_executor",
        config_schema=dg.Field(dg.Selector({k: e.config_schema.as_field() for k, e in choices.items()}),
                               default_value=default),
        requirements=_requirements,
    )
    def _platform_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
        (chosen, config), = init_context.executor_config.items()
        executor_def = choices[chosen]
        return executor_def.executor_creation_fn(dg.InitExecutorContext(
            job=init_context.job, executor_def=executor_def, executor_config=config, instance=init_context.instance))

    return _platform_executor


def workflow_run_config(name: str, multiprocess: dict[str, Any]) -> dict[str, Any]:
    """The default run config of a job on ``name``'s executor; ``multiprocess`` is the local default's."""
    if name == "multiprocess":
        return multiprocess
    return {"execution": {"config": _celery_run_config() if name == "celery" else {name: {}}}}
