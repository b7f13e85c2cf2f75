"""A task of one family, resolved: what providers, the router, tables and the policy need of it.

:class:`TaskDefinition` joins a task declaration (:mod:`resources.providers.tasks`) with what the
family resolved for it at load: the family name, the task's name, its labels (read from the
training file when declared ``from_training_data``), the record fields it reads, and the folder
its template and training file are relative to. It knows the task type's output:

- :meth:`output_model`: the pydantic model an LLM answer must validate against (its JSON schema
  is what the OpenAI-compatible provider asks for);
- :meth:`columns` / :meth:`to_columns`: the columns of the task's asset table;
- :meth:`cel_values`: the names the family's policy and rules read (``<task>``,
  ``<task>_confidence``, ``<task>.<field>`` for extract tasks ...).
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from pydantic import BaseModel

from .base import PROVENANCE_FIELDS, Item, TaskResult, content_hash
from .tasks import (
    SENTIMENT_LABELS,
    ClassifyTask,
    DraftTask,
    ExtractTask,
    FlagTask,
    SentimentTask,
    SummarizeTask,
)

# logical column types, as the warehouse stores them
STR, FLOAT, INT, BOOL, JSON = "str", "float", "int", "bool", "json"
_PROVENANCE_TYPES = {
    "provider": STR, "model_id": STR, "model_version": STR, "served_model": STR, "prompt_hash": STR, "tokens_in": INT,
    "tokens_out": INT, "cost_usd": FLOAT, "latency_ms": FLOAT, "attempts": INT, "path": STR,
    "redactions": INT, "error": STR,
}
_FIELD_TYPES = {"string": STR, "email": STR, "date": STR, "enum": STR, "integer": INT, "number": FLOAT, "boolean": BOOL}


class InvalidAnswer(ValueError):
    """A validated LLM answer that still cannot be accepted (e.g. it cites a document it was not given)."""


@dataclass(frozen=True, eq=False)
class TaskDefinition:
    family: str
    name: str
    spec: Any  # one of the task declarations in resources.providers.tasks
    root: Path = Path(".")
    labels: tuple[str, ...] = ()
    text_fields: tuple[str, ...] = ()
    # the family's description, used in LLM prompts (no family word lives in platform code)
    family_description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"TaskDefinition({self.family}.{self.name}: {self.type})"

    @property
    def type(self) -> str:
        return self.spec.type

    @property
    def key(self) -> str:
        """``family.task``: unique across a deployment."""
        return f"{self.family}.{self.name}"

    @property
    def has_confidence(self) -> bool:
        return bool(self.spec.has_confidence)

    @functools.cached_property
    def fingerprint(self) -> str:
        """A hash of the declaration and the resolved labels: any change gives a new one."""
        # the LLM prompt file is versioned by the prompt registry, not by the local answers' version
        spec = self.spec.model_dump(mode="json", by_alias=True, exclude={"prompt"})
        return content_hash(self.family, self.name, spec, self.labels, self.text_fields)

    # ---- the answer ----------------------------------------------------------------------
    @functools.cached_property
    def output_model(self) -> type[BaseModel]:
        labels = self.labels or (SENTIMENT_LABELS if isinstance(self.spec, SentimentTask) else ())
        return self.spec.output_model(labels)

    def json_schema(self) -> dict[str, Any]:
        return self.output_model.model_json_schema()

    def accept(self, answer: BaseModel, item: Item) -> tuple[dict[str, Any], float | None]:
        """The (output, confidence) of a validated LLM answer; raises :class:`InvalidAnswer`."""
        data = answer.model_dump()
        spec = self.spec
        if isinstance(spec, ClassifyTask):
            return {"label": data["label"], "confidence": data["confidence"],
                    "probabilities": {data["label"]: data["confidence"]}, "reasons": ["llm"]}, data["confidence"]
        if isinstance(spec, ExtractTask):
            confidence = data.pop("confidence")
            missing = [n for n, f in spec.fields.items() if f.required and data.get(n) is None]
            return data, (0.0 if missing else confidence)
        if isinstance(spec, DraftTask):
            known = {d.id for d in item.documents}
            unknown = [c for c in data["cited_ids"] if c not in known]
            if unknown:
                raise InvalidAnswer(f"draft cites unknown document(s) {unknown[:3]}")
            return data, None
        if isinstance(spec, FlagTask):
            return {"flags": sorted(set(data["flags"]))}, None
        return data, None

    # ---- tables --------------------------------------------------------------------------
    def answer_columns(self) -> dict[str, str]:
        """Answer columns of the task's table (name -> logical type), prefixed by the task name."""
        n, spec = self.name, self.spec
        if isinstance(spec, ClassifyTask):
            return {n: STR, f"{n}_confidence": FLOAT, f"{n}_probabilities": JSON, f"{n}_reasons": JSON}
        if isinstance(spec, ExtractTask):
            cols = {f"{n}_{f}": _FIELD_TYPES[fs.type] for f, fs in spec.fields.items()}
            return {**cols, f"{n}_confidence": FLOAT}
        if isinstance(spec, SentimentTask):
            return {n: STR, f"{n}_score": FLOAT}
        if isinstance(spec, SummarizeTask):
            return {n: STR}
        if isinstance(spec, DraftTask):
            return {n: STR, f"{n}_cited_ids": JSON}
        if isinstance(spec, FlagTask):
            return {n: JSON, **{f"{n}_{r}": BOOL for r in spec.rules}}
        raise TypeError(f"unknown task type {self.type!r}")  # pragma: no cover

    def provenance_columns(self) -> dict[str, str]:
        return {f"{self.name}_{f}": _PROVENANCE_TYPES[f] for f in PROVENANCE_FIELDS}

    def columns(self) -> dict[str, str]:
        return {**self.answer_columns(), **self.provenance_columns()}

    def to_columns(self, result: TaskResult) -> dict[str, Any]:
        """One table row's task columns from a result (answer columns empty when it failed)."""
        n, spec, out = self.name, self.spec, result.output or {}
        if isinstance(spec, ClassifyTask):
            row = {n: out.get("label"), f"{n}_confidence": result.confidence,
                   f"{n}_probabilities": out.get("probabilities") or {}, f"{n}_reasons": out.get("reasons") or []}
        elif isinstance(spec, ExtractTask):
            row = {f"{n}_{f}": out.get(f) for f in spec.fields}
            row[f"{n}_confidence"] = result.confidence
        elif isinstance(spec, SentimentTask):
            row = {n: out.get("label"), f"{n}_score": out.get("score")}
        elif isinstance(spec, SummarizeTask):
            row = {n: out.get("summary")}
        elif isinstance(spec, DraftTask):
            row = {n: out.get("text"), f"{n}_cited_ids": list(out.get("cited_ids") or [])}
        else:  # flag
            raised = list(out.get("flags") or []) if result.ok else []
            row = {n: raised, **{f"{n}_{r}": (r in raised) if result.ok else None for r in spec.rules}}
        for f in PROVENANCE_FIELDS:
            row[f"{n}_{f}"] = getattr(result, f)
        return row

    def table_columns(self, results: Sequence[TaskResult]) -> dict[str, list[Any]]:
        """:meth:`to_columns` of many results, column by column: a list per column, in :meth:`columns` order.

        A task table is built from these (a dict per result cost a third of it); :meth:`to_columns`
        stays for one result, and a test holds the two to the same values for every task type.
        """
        n, spec = self.name, self.spec
        outs = [r.output or {} for r in results]
        if isinstance(spec, ClassifyTask):
            cols = {n: [o.get("label") for o in outs], f"{n}_confidence": [r.confidence for r in results],
                    f"{n}_probabilities": [o.get("probabilities") or {} for o in outs],
                    f"{n}_reasons": [o.get("reasons") or [] for o in outs]}
        elif isinstance(spec, ExtractTask):
            cols = {f"{n}_{f}": [o.get(f) for o in outs] for f in spec.fields}
            cols[f"{n}_confidence"] = [r.confidence for r in results]
        elif isinstance(spec, SentimentTask):
            cols = {n: [o.get("label") for o in outs], f"{n}_score": [o.get("score") for o in outs]}
        elif isinstance(spec, SummarizeTask):
            cols = {n: [o.get("summary") for o in outs]}
        elif isinstance(spec, DraftTask):
            cols = {n: [o.get("text") for o in outs], f"{n}_cited_ids": [list(o.get("cited_ids") or []) for o in outs]}
        else:  # flag
            ok = [r.ok for r in results]
            raised = [list(o.get("flags") or []) if good else [] for o, good in zip(outs, ok)]
            cols = {n: raised, **{f"{n}_{rule}": [(rule in fs) if good else None for fs, good in zip(raised, ok)]
                                  for rule in spec.rules}}
        provenance = list(zip(*map(operator.attrgetter(*PROVENANCE_FIELDS), results))) or [()] * len(PROVENANCE_FIELDS)
        for f, values in zip(PROVENANCE_FIELDS, provenance):
            cols[f"{n}_{f}"] = list(values)
        return cols

    # ---- what rules and the policy read --------------------------------------------------
    def value_names(self) -> dict[str, str]:
        """Names this task contributes to CEL expressions (name -> logical type)."""
        n, spec = self.name, self.spec
        if isinstance(spec, (ClassifyTask, SentimentTask)):
            second = f"{n}_confidence" if isinstance(spec, ClassifyTask) else f"{n}_score"
            return {n: STR, second: FLOAT}
        if isinstance(spec, ExtractTask):
            return {n: "map", f"{n}_confidence": FLOAT}
        if isinstance(spec, FlagTask):
            return {n: "list"}
        return {n: STR}

    def cel_values(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The task's CEL values read from a row holding its columns."""
        n, spec = self.name, self.spec
        if isinstance(spec, ExtractTask):
            return {n: {f: row.get(f"{n}_{f}") for f in spec.fields}, f"{n}_confidence": row.get(f"{n}_confidence")}
        if isinstance(spec, FlagTask):
            raised = row.get(n)
            return {n: list(raised) if isinstance(raised, (list, tuple)) else []}
        return {k: row.get(k) for k in self.value_names()}

    def item_values(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Flat values a later task's :class:`Item` gets from this task (``<task>.<field>`` for extract)."""
        values = self.cel_values(row)
        if isinstance(self.spec, ExtractTask):
            inner = values.pop(self.name)
            values.update({f"{self.name}.{k}": v for k, v in inner.items()})
        return values

    def item_source_columns(self) -> list[str]:
        """The answer columns :meth:`item_columns` reads (all a later task needs of this one's table)."""
        if isinstance(self.spec, ExtractTask):
            return [f"{self.name}_confidence", *(f"{self.name}_{f}" for f in self.spec.fields)]
        return list(self.value_names())

    def item_columns(self, columns: Mapping[str, Sequence[Any]], size: int) -> dict[str, list[Any]]:
        """:meth:`item_values` of ``size`` rows at once, from a list per column (a missing column reads None).

        What items are built from; :meth:`item_values` stays for one row (a test holds the two equal).
        """
        n, spec = self.name, self.spec
        missing = [None] * size

        def col(name: str) -> list[Any]:
            return list(columns.get(name, missing))

        if isinstance(spec, ExtractTask):  # the confidence first, as cel_values' map is popped then re-added flat
            return {f"{n}_confidence": col(f"{n}_confidence"), **{f"{n}.{f}": col(f"{n}_{f}") for f in spec.fields}}
        if isinstance(spec, FlagTask):
            return {n: [list(v) if isinstance(v, (list, tuple)) else [] for v in col(n)]}
        return {k: col(k) for k in self.value_names()}
