"""The registry as a Dagster resource: the warehouse it lives in, and the plain API on it."""

# no `from __future__ import annotations` here: Dagster reads the resource's annotations at runtime

import dagster as dg

from resources.warehouse import Warehouse


class ModelRegistryResource(dg.ConfigurableResource):
    """The model registry in the warehouse: versions, aliases, alias history and evaluations of every family.

    Promotion thresholds are not configured here: each family declares them under ``promotion:``.
    """

    warehouse: dg.ResourceDependency[Warehouse]

    def get(self):
        """The plain API (:class:`resources.registry.api.ModelRegistry`) over the warehouse."""
        from .api import ModelRegistry

        return ModelRegistry(self.warehouse.engine)

    def prompts(self):
        """The prompt registry (:class:`resources.registry.prompts.PromptRegistry`) over the warehouse."""
        from .prompts import PromptRegistry

        return PromptRegistry(self.warehouse.engine)
