"""Versioned artifacts of the local classifiers, as a Dagster resource: train once, then only load.

``<model_dir>/<version>.joblib`` per trained classifier. :meth:`LocalModelStore.train` is
idempotent: the version is known before fitting (a hash of the training set, the params, the
feature columns and the scikit-learn version), so an already saved version is loaded, never
refitted, and a file lock keeps parallel steps from training the same model twice.
"""

# no ``from __future__ import annotations`` here: Dagster resolves resource field annotations at
# class creation and fails on string annotations (a known Dagster limitation)

import threading
from pathlib import Path
from typing import Mapping, Optional, Sequence

import dagster as dg

from resources.expressions import Condition
from resources.providers.definition import TaskDefinition

from .classifier import ARTIFACT_SUFFIX, TrainedClassifier, classifier_version, params_for, train_classifier
from .provider import LocalProvider
from .training import TrainingSet

_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


class TrainingError(ValueError):
    """A training set the classifier cannot learn from; the message is the training report."""


class LocalModelStore(dg.ConfigurableResource):
    """Versioned artifacts of the embedded classifiers: train once, then only load for inference."""

    model_dir: str = ""

    def _dir(self) -> Path:
        if self.model_dir:
            path = Path(self.model_dir)
        else:
            from resources.warehouse import data_dir

            path = data_dir() / "models"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def path_for(self, version: str) -> Path:
        return self._dir() / f"{version}{ARTIFACT_SUFFIX}"

    def versions(self) -> list:
        """Saved versions, oldest first."""
        files = sorted(self._dir().glob(f"*{ARTIFACT_SUFFIX}"), key=lambda p: (p.stat().st_mtime, p.name))
        return [p.name[: -len(ARTIFACT_SUFFIX)] for p in files]

    def version_for(self, task: TaskDefinition, training: TrainingSet) -> str:
        """The version :meth:`train` gives for this task and training set, without fitting."""
        return classifier_version(training.data_hash, params_for(task), training.feature_columns)

    def train(self, task: TaskDefinition, training: TrainingSet) -> TrainedClassifier:
        """The classifier of ``task`` trained on ``training``: loaded when that version is saved,
        else fitted and saved. :class:`TrainingError` (with the report) when it cannot learn."""
        if not training.report.trainable:
            raise TrainingError(training.report.summary())
        version = self.version_for(task, training)
        if self.path_for(version).exists():
            return self.load(version)
        with _TrainLock(self._dir()):
            if self.path_for(version).exists():  # another process trained it while we waited
                return self.load(version)
            model = train_classifier(training.texts, training.labels, params_for(task), training.features,
                                     training.vocabulary or None)
            if model.version != version:  # the version must be known before fitting, or idempotence breaks
                raise RuntimeError(f"trained version {model.version} differs from the predicted {version}")
            model.metrics["training"] = training.report.as_dict()
            model.metrics["task"] = task.key
            model.save(self._dir())
        return self.load(version)

    def load(self, version: str) -> TrainedClassifier:
        path = self.path_for(version)
        if not path.exists():
            raise FileNotFoundError(f"no local model version {version!r} in {self._dir()} (saved: {self.versions()})")
        key = (str(path), path.stat().st_mtime)
        with _CACHE_LOCK:
            model = _CACHE.get(key)
            if model is None:
                model = _CACHE[key] = TrainedClassifier.load(path)
        return model

    def provider(self, versions: Mapping[str, str],
                 label_rules: Optional[Mapping[str, Sequence[Optional[Condition]]]] = None) -> LocalProvider:
        """A provider over the saved classifier ``versions`` (task name -> version)."""
        return LocalProvider({task: self.load(v) for task, v in versions.items()}, label_rules or {})


class _TrainLock:
    """An exclusive file lock in the model folder, so parallel steps do not train the same model twice."""

    def __init__(self, directory: Path):
        self.path = directory / ".train.lock"
        self._fh = None

    def __enter__(self):
        self._fh = open(self.path, "a+")
        try:
            import fcntl

            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows: best effort
            pass
        return self

    def __exit__(self, *exc):
        try:
            import fcntl

            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
        except ImportError:  # pragma: no cover
            pass
        self._fh.close()
        return False
