"""The embedded local provider: offline, deterministic, batch-first; no key, no network.

Answers the six generic task types (:mod:`.provider`); classify tasks use classifiers trained on
the family's labelled data (:mod:`.training`, :mod:`.classifier`) and kept as versioned
artifacts by the :class:`LocalModelStore` resource (:mod:`.store`). Importing this package is
cheap: its names load their module on first use (scikit-learn, joblib and jinja2 only load when
a model is trained, loaded or a template rendered).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "LocalProvider": "provider",
    "LocalModelStore": "store",
    "TrainingError": "store",
    "ClassifierParams": "classifier",
    "TrainedClassifier": "classifier",
    "train_classifier": "classifier",
    "classifier_version": "classifier",
    "params_for": "classifier",
    "TrainingSet": "training",
    "TrainingReport": "training",
    "TrainingDataError": "training",
    "prepare_training_set": "training",
    "is_golden": "training",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .classifier import ClassifierParams, TrainedClassifier, classifier_version, params_for, train_classifier
    from .provider import LocalProvider
    from .store import LocalModelStore, TrainingError
    from .training import TrainingDataError, TrainingReport, TrainingSet, is_golden, prepare_training_set


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
