"""The ``AIWorkflow`` Dagster Component: one governed AI workflow family per ``defs.yaml``.

``orchestration_assets/defs/<family>/defs.yaml`` instantiates it (``type:
orchestration_assets.components.AIWorkflow``); its ``attributes`` are the family spec
(:mod:`orchestration_assets.spec`). ``build_defs`` emits the family's assets under its own key
prefix and groups, its checks, jobs, sensors and schedules; every family gets the same governance
by construction. ``dg scaffold defs orchestration_assets.components.AIWorkflow <name>`` writes a
working skeleton (see :mod:`orchestration_assets.scaffold`).

Validation is the platform's own, not Dagster's: the attributes are checked against the spec, the
family's folder and the deployment's model catalog, and a problem fails the load (so ``dg check
defs``) with ``file: key.path: reason`` lines (:class:`~resources.configuration.ConfigError`).
"""

from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import BaseModel, ConfigDict

from checks.anomaly import anomaly_checks
from checks.data_quality import data_quality_checks
from checks.guardrails import guardrail_checks
from checks.promotion import promotion_checks
from checks.spend import spend_check
from resources.configuration import ConfigError
from sensors.inbox import inbox_sensor
from sensors.registry import new_challenger_sensor
from sensors.review import review_decision_sensor
from sensors.schedules import family_schedules

from .enrichment import enrichment_assets
from .family import Family, display_path
from .governance import governance_assets
from .ingestion import ingestion_assets
from .jobs import family_jobs
from .kpis import kpi_assets
from .llm_models import llm_checks
from .models import model_assets
from .prompt_assets import prompt_assets
from .review import delivery_check, record_decision_job, review_assets
from .scaffold import WorkflowScaffolder


class _Attributes(BaseModel):
    """Dagster hands the attributes through as-is; :class:`Family` validates them with precise messages."""

    model_config = ConfigDict(extra="allow")


def known_models() -> set[str]:
    """Model names of the deployment's catalog (``MODELS_CONFIG``), which routes may name."""
    from resources.router.catalog import load_catalog

    return set(load_catalog().models)


def build_family_defs(family: Family) -> dg.Definitions:
    """Everything one family contributes to the code location (resources come from the platform)."""
    sensors = [inbox_sensor(family), review_decision_sensor(family), new_challenger_sensor(family)]
    return dg.Definitions(
        assets=[*ingestion_assets(family), *model_assets(family), *prompt_assets(family), *enrichment_assets(family),
                *governance_assets(family), *review_assets(family), *kpi_assets(family)],
        asset_checks=[*data_quality_checks(family), *guardrail_checks(family), spend_check(family),
                      *promotion_checks(family), *llm_checks(family), *anomaly_checks(family),
                      delivery_check(family)],
        jobs=[*family_jobs(family), record_decision_job(family)],
        sensors=[s for s in sensors if s is not None],
        schedules=family_schedules(family),
    )


@dg.scaffold_with(WorkflowScaffolder)
class AIWorkflow(dg.Component):
    """One governed AI workflow family: records in, tasks answered, policy, review, dispatch, audit, KPIs."""

    def __init__(self, family: Family):
        self.family = family

    @classmethod
    def get_model_cls(cls) -> type[BaseModel]:
        return _Attributes

    @classmethod
    def load(cls, attributes: Any, context: dg.ComponentLoadContext) -> "AIWorkflow":
        raw = attributes.model_dump() if isinstance(attributes, BaseModel) else dict(attributes or {})
        source = display_path(Path(context.path) / "defs.yaml")
        try:
            family = Family.from_attributes(raw, Path(context.path), source, known_models())
        except ConfigError as exc:
            # its lines name the file, key and reason; the validator's frames under them would only bury them
            raise exc.with_traceback(None) from None
        return cls(family)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return build_family_defs(self.family)
