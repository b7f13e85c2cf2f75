"""The model registry: versions of every family's models, their aliases, an append-only history, evaluations.

- :mod:`.schema`: the tables, keyed by family, and :func:`ensure_schema`;
- :mod:`.api`: :class:`ModelRegistry`, the plain API (no Dagster);
- :mod:`.prompts`: :class:`PromptRegistry`, the LLM prompt templates' versions and aliases;
- :mod:`.aliases`: :class:`AliasBook`, the alias moves, champion compare-and-set and rollback both share;
- :mod:`.lifecycle`: train -> register -> evaluate -> promote, as plain functions;
- :mod:`.resource`: :class:`ModelRegistryResource`, the registry for assets, sensors and checks.
"""

# Names are resolved on first use: the code location imports only the resource at load, and the
# API, the lifecycle and the evaluation (with their ORM and pandas work) load with the first step.
_EXPORTS = {
    "ModelRegistry": ".api",
    "TrainingOutcome": ".lifecycle", "ensure_champion": ".lifecycle",
    "evaluate_candidates": ".lifecycle", "golden_hash": ".lifecycle", "promote_if_passed": ".lifecycle",
    "train_and_register": ".lifecycle",
    "ALIASES": ".records", "CHALLENGER": ".records", "CHAMPION": ".records", "EXCLUSIVE_ALIASES": ".records",
    "RETIRED": ".records", "EvaluationRecord": ".records", "PromotionConflict": ".records",
    "RegistryError": ".records", "VersionInfo": ".records",
    "PromotionDecision": ".records", "default_actor": ".records",
    "ModelRegistryResource": ".resource", "ensure_schema": ".schema",
    "PromptRegistry": ".prompts", "PromptVersion": ".prompts", "bind_prompt": ".prompts",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
