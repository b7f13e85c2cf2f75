"""Router sessions that answer with registered LLM configurations, for evaluation and for live traffic.

Live traffic uses each routed task's CHAMPION configuration, not whatever the routing YAML says
today: a model, params or prompt change reaches records only through the gates. A task whose
route names a model but that has no LLM champion yet is answered by the local provider, and the
plan says why. Evaluation forces a task's route to one candidate configuration.

A configuration whose model id or params differ from the catalog's entry of the same name (the
catalog changed after it was registered) is served by a copy of that model's provider with the
configuration's id and params, under its own route name, so two tasks never share a patched copy.
"""

import copy
from dataclasses import dataclass, field
from typing import Any, Mapping

from resources.router.routes import TaskRoute
from resources.router.session import RouterSession

from .llm_configs import LlmConfig, LlmConfigRegistry, task_for


def forced_route(route: TaskRoute, model: str) -> TaskRoute:
    """``route``'s shape (cascade threshold, min confidence ...) with ``model`` as its only remote model.

    Remote fallbacks are dropped: a model that was not evaluated must not answer live traffic.
    """
    if route.is_cascade:
        return route.model_copy(update={"escalate_to": [model], "candidates": []})
    return route.model_copy(update={"provider": model, "fallbacks": [], "candidates": []})


def primary_models(route: TaskRoute) -> list[str]:
    """The models a route offers for its task: its ``candidates``, else the first model of its chain."""
    listed = list(getattr(route, "candidates", None) or [])
    if listed:
        return list(dict.fromkeys(listed))
    chain = route.remote_chain()
    return chain[:1]


@dataclass
class LivePlan:
    """Routes, configurations and reasons of one family's tasks for a session."""

    routes: dict[str, TaskRoute] = field(default_factory=dict)
    configs: dict[str, LlmConfig] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def task(self, task: Any) -> Any:
        """The task definition to run: with the champion configuration's prompt when it has one."""
        cfg = self.configs.get(task.name)
        return task_for(task, cfg) if cfg is not None else task


def live_plan(family: str, routing: Mapping[str, TaskRoute], reg: LlmConfigRegistry, catalog: Any) -> LivePlan:
    plan = LivePlan()
    for name, route in routing.items():
        if not route.remote_chain():
            plan.routes[name] = route
            continue
        champ = reg.champion(family, name)
        if champ is None:
            plan.routes[name] = TaskRoute()
            plan.notes[name] = (f"no LLM champion yet: answered by the local provider until {name}_llm_champion "
                                "promotes a configuration that passes the gates")
            continue
        if champ.endpoint not in catalog.endpoints:
            plan.routes[name] = TaskRoute()
            plan.notes[name] = (f"LLM champion {champ.version} is on endpoint {champ.endpoint!r}, which the model "
                                "catalog no longer has: answered by the local provider")
            continue
        plan.routes[name] = forced_route(route, route_name(champ, catalog))
        plan.configs[name] = champ
        plan.notes[name] = f"LLM champion {champ.version}: {champ.describe()}"
    return plan


def route_name(cfg: LlmConfig, catalog: Any) -> str:
    """The catalog name when the catalog still describes the configuration, else a name of its own."""
    model = catalog.models.get(cfg.model)
    if model is not None and model.endpoint == cfg.endpoint and model.model == cfg.model_id \
            and dict(model.params) == cfg.params and model.structured_output == cfg.structured_output:
        return cfg.model
    return f"{cfg.model}@{cfg.version}"


def _provider_for(router: Any, providers: Mapping[str, Any], cfg: LlmConfig, catalog: Any) -> Any:
    base = providers.get(cfg.model)
    if base is None:  # the catalog dropped the model's name: any provider of the endpoint carries its key
        base = next((p for p in providers.values() if p.name == cfg.endpoint), None)
        if base is None:
            raise ValueError(f"no model of endpoint {cfg.endpoint!r} in the catalog to serve {cfg.version}")
        template = catalog.models[next(n for n, p in providers.items() if p is base)]
    else:
        template = base.model
    clone = copy.copy(base)
    clone.model = template.model_copy(update={"model": cfg.model_id, "params": dict(cfg.params),
                                              "structured_output": cfg.structured_output})
    clone.model_name = route_name(cfg, catalog)
    clone._prompts = {}  # the copy's prompts carry its own params in their hash
    return clone


def session_for(router: Any, *, family: str, routes: Mapping[str, TaskRoute], configs: Mapping[str, LlmConfig],
                budget: Any, local: Any, warehouse: Any = None, run_id: str = "", partition: str | None = None,
                logger: Any = None) -> RouterSession:
    """A router session like ``ModelRouter.session`` whose routes may name registered configurations."""
    catalog = router.catalog()
    remote = dict(router.remote_providers())
    for cfg in configs.values():
        name = route_name(cfg, catalog)
        if name not in remote:
            remote[name] = _provider_for(router, remote, cfg, catalog)
    return RouterSession(catalog, family=family, routes=routes, budget=budget, local=local, remote=remote,
                         warehouse=warehouse, run_id=run_id, partition=partition, logger=logger,
                         secrets=router.secrets(), key_sources={n: router.key_source(n) for n in catalog.endpoints})
