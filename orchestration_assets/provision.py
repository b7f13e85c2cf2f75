"""What a task asset needs before it can answer: the local provider over the champions, and documents.

A classify task is answered locally by its registry champion; with none yet (a fresh deployment,
a new family) the default model is trained on the family's labelled data, registered and promoted,
so the first run works with no manual step. Draft tasks with retrieval get the top documents of
their lookup's collection for each record.
"""

from typing import Sequence

import dagster as dg
import pandas as pd

from resources.providers.base import Document, Item
from resources.providers.definition import TaskDefinition
from resources.providers.local.provider import LocalProvider
from resources.providers.local.store import LocalModelStore
from resources.registry.resource import ModelRegistryResource
from resources.warehouse import Warehouse

from . import inputs
from .core.labelled import feedback_frame, labelled_frame
from .family import Family


def actor(context) -> str:
    """Who acts in a run: the launching user when Dagster knows one, else the run."""
    user = context.run.tags.get("dagster/user") or context.run.tags.get("user")
    return f"user:{user}" if user else f"dagster:run:{context.run_id[:8]}"


def training_set(family: Family, task: TaskDefinition, warehouse: Warehouse):
    """(TrainingSet, golden rows) of a classify task: its labelled file plus reviewed feedback."""
    from resources.providers.local.training import prepare_training_set

    table = family.table("review_feedback")
    reviewed = warehouse.read_table(table) if warehouse.has_table(table) else None
    lookups = {n: inputs.lookup_table(warehouse, family, n) for n in inputs.lookups_for(family, task)}
    return prepare_training_set(task, labelled_frame(family, task, lookups),
                                feedback_frame(reviewed, family.name, task.name))


def local_provider(context, family: Family, task: TaskDefinition, store: LocalModelStore,
                   registry: ModelRegistryResource, warehouse: Warehouse) -> LocalProvider:
    if task.type != "classify":
        return store.provider({}, label_rules=family.label_rules)
    from resources.registry.lifecycle import ensure_champion

    champion = ensure_champion(registry.get(), store, task, lambda: training_set(family, task, warehouse)[0],
                               actor=actor(context))
    context.log.info(f"{task.key}: local champion {champion.version}")
    return store.provider({task.name: champion.version}, label_rules=family.label_rules)


def documents_of(family: Family, task: TaskDefinition, table: pd.DataFrame):
    """The retrieval index over the task's document lookup."""
    from resources.retrieval import DocumentIndex

    lk = family.spec.context[task.spec.retrieval.from_]
    return DocumentIndex.from_frame(table, lk.documents)


def retrieve(warehouse: Warehouse, family: Family, task: TaskDefinition, items: Sequence[Item]) -> list[list[Document]]:
    retrieval = task.spec.retrieval
    table = inputs.lookup_table(warehouse, family, retrieval.from_)
    if table.empty:
        raise dg.Failure(f"{family.name}: context lookup {retrieval.from_!r} has no documents to retrieve from")
    return documents_of(family, task, table).search([i.text for i in items], k=retrieval.k)
