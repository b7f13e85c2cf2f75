"""The Dagster resource of the model router: the deployment's model catalog and its API keys.

Usage (an asset body of a family)::

    session = router.session(family=family.name, routes=family.spec.routing, budget=family.spec.budget,
                             local=local_provider, warehouse=warehouse, run_id=context.run_id,
                             partition=context.partition_key, logger=context.log)
    batch = session.run(family.tasks["topic"], items)       # one result per item, in order; never raises
    context.add_output_metadata(session.stats().as_metadata())

Put the assets that call remote models in one Dagster ``pool`` so concurrent runs share an
endpoint's limits.
"""

import os
from typing import Any, Mapping

import dagster as dg
from pydantic import Field, PrivateAttr

from resources.providers.base import ModelProvider
from resources.providers.openai import OpenAIProvider
from resources.router.catalog import CatalogError, EndpointConfig, ModelCatalog, load_catalog, resolve_catalog_path
from resources.router.routes import Budget, TaskRoute
from resources.router.session import RouterSession
from resources.warehouse import Warehouse


class ModelRouter(dg.ConfigurableResource):
    """Routes each family's tasks between the local provider and OpenAI-compatible models.

    ``config_path``: the model catalog YAML ("" = env ``MODELS_CONFIG``, else the bundled all-local
    ``resources/models.default.yaml``). ``api_key``: the default endpoint key, e.g.
    ``dg.EnvVar("OPENAI_API_KEY")``; never logged. ``api_key_env``: the env var it comes from, named
    when an endpoint rejects the key (taken from the ``dg.EnvVar`` when there is one).
    """

    config_path: str = Field(default="", description="model catalog YAML; empty = $MODELS_CONFIG or the bundled default")
    api_key: str | None = Field(default=None, repr=False, description="OpenAI-compatible API key (use dg.EnvVar)")
    api_key_env: str = Field(default="", description="env var of api_key, named in errors; default: the dg.EnvVar's")

    _catalog: ModelCatalog | None = PrivateAttr(default=None)

    def __init__(self, **data: Any) -> None:
        # at run time Dagster rebuilds the resource from its config with the key resolved: the variable's
        # name is kept from definition time, as config (a validator's additions would not reach the config)
        key = data.get("api_key")
        if isinstance(key, dg.EnvVar) and not data.get("api_key_env"):
            data["api_key_env"] = key.env_var_name
        super().__init__(**data)

    def catalog(self) -> ModelCatalog:
        """The validated model catalog (read once per resource instance)."""
        if self._catalog is None:
            self._catalog = load_catalog(self.config_path or None)
        return self._catalog

    @property
    def catalog_path(self) -> str:
        return str(resolve_catalog_path(self.config_path or None))

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if context.dagster_run is not None:  # (a sensor only masks the keys: it must work with a bad catalog)
            self.catalog()  # a bad catalog fails at run start, naming file, key path and reason

    def _key_for(self, cfg: EndpointConfig) -> str | None:
        if cfg.api_key_env:
            return os.environ.get(cfg.api_key_env) or None
        return self.api_key or None

    def key_source(self, endpoint: str) -> str:
        """Where an endpoint's key comes from, for messages (never the key itself)."""
        try:
            cfg = self.catalog().endpoints.get(endpoint)
        except CatalogError:
            cfg = None
        if cfg is not None and cfg.api_key_env:
            return f"env var {cfg.api_key_env}"
        return f"env var {self.api_key_env}" if self.api_key_env else "the router's api_key"

    def _secrets(self) -> list[str | None]:
        catalog = self.catalog()
        return [self.api_key, *(os.environ.get(e.api_key_env) for e in catalog.endpoints.values() if e.api_key_env)]

    def secrets(self) -> list[str]:
        """The API keys this router may use, to mask them wherever text leaves the platform (alerts).

        With a catalog that cannot be read (runs then fail at start, naming the problem), the default key.
        """
        try:
            return [s for s in self._secrets() if s]
        except CatalogError:
            return [self.api_key] if self.api_key else []

    def remote_providers(self) -> dict[str, OpenAIProvider]:
        """model name -> its provider, one per model of the catalog (no client is created yet)."""
        catalog = self.catalog()
        out: dict[str, OpenAIProvider] = {}
        for name, model in catalog.models.items():
            endpoint = catalog.endpoints[model.endpoint]
            out[name] = OpenAIProvider(model, endpoint, api_key=self._key_for(endpoint), endpoint_name=model.endpoint,
                                       model_name=name)
        return out

    def session(
        self,
        *,
        family: str,
        routes: Mapping[str, TaskRoute],
        budget: Budget,
        local: ModelProvider,
        warehouse: Warehouse | None = None,
        run_id: str = "",
        partition: str | None = None,
        logger: Any = None,
    ) -> RouterSession:
        """A session routing one family's task batches for one asset execution.

        Raises ``ValueError`` when a route names a model the catalog does not have.
        """
        return RouterSession(
            self.catalog(), family=family, routes=routes, budget=budget, local=local,
            remote=self.remote_providers(), warehouse=warehouse, run_id=run_id, partition=partition,
            logger=logger, secrets=self._secrets(),
            key_sources={name: self.key_source(name) for name in self.catalog().endpoints},
        )
