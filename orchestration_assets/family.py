"""A workflow family resolved from its spec and folder: a plain object, no Dagster inside.

:meth:`Family.from_attributes` validates a ``defs.yaml``'s attributes (:mod:`.spec`), then what
needs the family's folder: files exist, labels declared ``from_training_data`` are read from the
training file, every CEL condition compiles against the names the family really has (and reads
only keys and compares only with values they have: :mod:`.condition_checks`), every model
a route names is in the deployment's model catalog, and the URLs a lookup or the dispatch reads
from the environment, when set, can work. Any problem raises :class:`SpecError`, whose
message names the file, the key path and the reason, one line per problem::

    orchestration_assets/defs/my_family/defs.yaml: tasks.topic.labels: a classify task needs at least two labels

Builders (``ingestion_assets(family)`` ...) read names from here: asset keys, groups, tables,
partitions, job names, and the tasks as :class:`~resources.providers.definition.TaskDefinition`
objects in dependency order.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import ValidationError

from resources.configuration import ConfigError, http_url_problem
from resources.expressions import Condition, ConditionError, compile_condition
from resources.providers.definition import TaskDefinition
from resources.providers.prompt_templates import problems as prompt_problems
from resources.providers.tasks import FROM_TRAINING_DATA, ClassifyTask, DraftTask
from resources.warehouse_url import mask_url, url_problem

from .condition_checks import condition_problems, vocabulary
from .spec import WorkflowSpec, validation_problems

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STAGES = ("ingestion", "models", "enrichment", "governance", "kpis")


class SpecError(ConfigError):
    """A family spec that cannot be loaded; one ``file: key.path: reason`` line per problem."""


def display_path(path: Path) -> str:
    """``path`` relative to the working directory (or the project) when inside it."""
    path = Path(path).resolve()
    for base in (Path.cwd(), PROJECT_ROOT):
        try:
            return str(path.relative_to(base.resolve()))
        except ValueError:
            continue
    return str(path)


@dataclass(frozen=True)
class PolicyRuleProgram:
    index: int
    condition: Condition
    action: str
    reason: str


class Family:
    """One workflow family: its spec, its folder and every name derived from them."""

    def __init__(self, spec: WorkflowSpec, root: Path, source: str, tasks: dict[str, TaskDefinition],
                 policy: list[PolicyRuleProgram], label_rules: dict[str, list[Condition | None]]):
        self.spec = spec
        self.root = root
        self.source = source
        self.tasks = tasks  # in dependency order
        self.policy = policy
        self.label_rules = label_rules

    def __repr__(self) -> str:
        return f"Family({self.name!r}, tasks={list(self.tasks)})"

    # ---- loading -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, known_models: set[str] | None = None) -> "Family":
        """A family from its folder (or its ``defs.yaml``): reads the YAML's ``attributes``."""
        path = Path(path)
        file = path / "defs.yaml" if path.is_dir() else path
        source = display_path(file)
        try:
            doc = yaml.safe_load(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SpecError(source, [("", f"cannot read the file: {exc.strerror}")]) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise SpecError(source, [("", f"not valid YAML: {where}{getattr(exc, 'problem', exc)}")]) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("attributes"), dict):
            raise SpecError(source, [("attributes", "a defs.yaml needs a type and an attributes mapping")])
        return cls.from_attributes(doc["attributes"], file.parent, source, known_models)

    @classmethod
    def from_attributes(cls, attributes: Mapping[str, Any], root: Path, source: str,
                        known_models: set[str] | None = None) -> "Family":
        try:
            spec = WorkflowSpec.model_validate(dict(attributes))
        except ValidationError as err:
            raise SpecError(source, validation_problems(err)) from None
        return _resolve(spec, Path(root), source, known_models)

    # ---- names ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def owners(self) -> list[str]:
        return list(self.spec.owners)

    @property
    def description(self) -> str:
        return self.spec.description.strip()

    @property
    def record(self):
        return self.spec.record

    @property
    def id_field(self) -> str:
        return self.spec.record.id

    @property
    def timestamp_field(self) -> str | None:
        return self.spec.record.timestamp

    def key(self, asset: str) -> list[str]:
        """The asset key path of one of the family's assets."""
        return [self.name, asset]

    def table(self, asset: str) -> str:
        """The warehouse table of one of the family's assets (asset key joined by ``__``)."""
        return f"{self.name}__{asset}"

    def group(self, stage: str) -> str:
        return f"{self.name}_{stage}"

    def job_name(self, job: str) -> str:
        return f"{self.name}__{job}"

    @property
    def partitions_name(self) -> str:
        return f"{self.name}__batches"

    def path(self, relative: str) -> Path:
        """A file of the family's folder."""
        return (self.root / relative).resolve()

    # ---- tasks ---------------------------------------------------------------------------
    def tasks_of(self, type_: str) -> list[TaskDefinition]:
        return [t for t in self.tasks.values() if t.type == type_]

    @property
    def model_task(self) -> TaskDefinition | None:
        """The task whose model version is "the" model version of a record (KPIs, audit)."""
        if self.spec.kpis.model_task:
            return self.tasks[self.spec.kpis.model_task]
        classify = self.tasks_of("classify")
        return classify[0] if classify else next(iter(self.tasks.values()))

    def truth_field(self, task: str) -> str | None:
        """The record field holding the known answer of a classify task, if any."""
        for name, f in self.spec.record.fields.items():
            if f.truth_for == task:
                return name
        return None

    def route(self, task: str):
        from resources.router.routes import TaskRoute

        return self.spec.routing.get(task, TaskRoute())

    @functools.cached_property
    def value_types(self) -> dict[str, str]:
        """Every name a CEL condition may read (record fields, lookups, answers) -> its type."""
        return _value_types(self.spec, self.tasks)


def _value_types(spec: WorkflowSpec, tasks: Mapping[str, TaskDefinition]) -> dict[str, str]:
    types = {name: f.type for name, f in spec.record.fields.items()}
    for name, lk in spec.context.items():
        if lk.join_on is not None:
            types[lk.alias(name)] = "map"
    for t in tasks.values():
        types.update(t.value_names())
    return types


def _resolve(spec: WorkflowSpec, root: Path, source: str, known_models: set[str] | None) -> Family:
    problems: list[tuple[str, str]] = []

    def need_file(loc: str, relative: str) -> Path:
        p = (root / relative).resolve()
        if not p.is_file():
            problems.append((loc, f"file {relative!r} not found in {display_path(root)}"))
        return p

    if spec.promotion.llm.golden_file is not None:
        need_file("promotion.llm.golden_file", spec.promotion.llm.golden_file)
    for name, lk in spec.context.items():
        if lk.file is not None:
            need_file(f"context.{name}.file", lk.file)
        elif lk.sql is not None:
            # an unset url_env is read at run time (that run fails naming it); a URL given now must work
            url = lk.sql.url or os.getenv(lk.sql.url_env or "")
            problem = url_problem(url) if url else None
            if problem:
                key, var = ("url", "") if lk.sql.url else ("url_env", f"environment variable {lk.sql.url_env}: ")
                problems.append((f"context.{name}.sql.{key}", f"{var}{mask_url(url)}: {problem}"))
    hook = spec.dispatch.webhook_url_env
    if hook and os.getenv(hook) and (problem := http_url_problem(os.environ[hook])):
        problems.append(("dispatch.webhook_url_env", f"environment variable {hook}: {problem}"))
    if spec.source.sample is not None and not (root / spec.source.sample).is_dir():
        problems.append(("source.sample", f"folder {spec.source.sample!r} not found in {display_path(root)}"))

    tasks: dict[str, TaskDefinition] = {}
    for name in _dependency_order(spec):
        task = spec.tasks[name]
        labels: tuple[str, ...] = ()
        if isinstance(task, ClassifyTask):
            labels = _labels(spec, name, task, root, problems, need_file)
        if isinstance(task, DraftTask):
            need_file(f"tasks.{name}.template", task.template)
        tasks[name] = TaskDefinition(
            family=spec.name, name=name, spec=task, root=root, labels=labels,
            text_fields=tuple(task.text or spec.record.text), family_description=spec.description.strip(),
        )
        # the platform's default template always renders the instructions: only a family's own file can be
        # broken, and checking it needs Jinja, which the definitions otherwise load only inside steps
        if task.prompt is not None and not (isinstance(task, ClassifyTask) and not labels):
            problems += prompt_problems(tasks[name])  # (a classify task without labels failed above)

    known = _value_types(spec, tasks)
    sample = _sample_values(spec, tasks)
    members, values = vocabulary(spec, tasks)
    policy: list[PolicyRuleProgram] = []
    for i, rule in enumerate(spec.policy):
        try:
            condition = compile_condition(rule.when, known)
            _type_check(condition, sample)
            policy.append(PolicyRuleProgram(i, condition, rule.action, rule.reason))
            problems += [(f"policy[{i}].when", p) for p in condition_problems(rule.when, members, values)]
        except ConditionError as exc:
            problems.append((f"policy[{i}].when", str(exc)))
    label_rules: dict[str, list[Condition | None]] = {}
    for name, t in tasks.items():
        if isinstance(t.spec, ClassifyTask) and t.spec.rules:
            # a rule reads the record, its lookups and the answers of the tasks this one uses
            visible = {k: v for k, v in known.items() if k not in tasks or k in t.spec.uses}
            visible.update({k: v for u in t.spec.uses for k, v in tasks[u].value_names().items()})
            compiled: list[Condition | None] = []
            for j, rule in enumerate(t.spec.rules):
                if t.labels and rule.at_least not in t.labels:
                    problems.append((f"tasks.{name}.rules[{j}].at_least", f"{rule.at_least!r} is not a label of {name!r}"))
                if rule.when is None:
                    compiled.append(None)
                    continue
                try:
                    condition = compile_condition(rule.when, visible)
                    _type_check(condition, sample)
                    compiled.append(condition)
                    problems += [(f"tasks.{name}.rules[{j}].when", p)
                                 for p in condition_problems(rule.when, members, values)]
                except ConditionError as exc:
                    problems.append((f"tasks.{name}.rules[{j}].when", str(exc)))
                    compiled.append(None)
            label_rules[name] = compiled
    if known_models is not None:
        for tname, route in spec.routing.items():
            for loc, model in route.model_names():
                if model not in known_models:
                    problems.append((f"routing.{tname}.{loc}", f"unknown model {model!r}; the model catalog has: "
                                     f"{', '.join(sorted(known_models)) or '(none)'}"))
        for tname, t in tasks.items():
            judge = t.spec.rubric.judge if isinstance(t.spec, DraftTask) else None
            if judge is not None and judge not in known_models:
                problems.append((f"tasks.{tname}.rubric.judge", f"unknown model {judge!r}; the model catalog has: "
                                 f"{', '.join(sorted(known_models)) or '(none)'}"))
    if problems:
        raise SpecError(source, problems)
    return Family(spec, root, source, tasks, policy, label_rules)


_SAMPLE_BY_TYPE: dict[str, Any] = {
    "string": "", "email": "", "str": "", "integer": 0, "number": 0.5, "float": 0.5, "boolean": False,
    "bool": False, "list": [], "timestamp": None, "date": "",
}


def _sample_values(spec: WorkflowSpec, tasks: Mapping[str, TaskDefinition]) -> dict[str, Any]:
    """A well-typed row of every name, to find type errors in conditions at load, not mid-run."""
    import datetime as dt

    out: dict[str, Any] = {}
    for name, t in _value_types(spec, tasks).items():
        out[name] = _SAMPLE_BY_TYPE.get(t, "")
        if t == "timestamp":
            out[name] = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for name, lk in spec.context.items():
        if lk.join_on is not None:
            out[lk.alias(name)] = {c: (dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) if col.type == "timestamp"
                                       else _SAMPLE_BY_TYPE.get(col.type, "")) for c, col in lk.columns.items()}
    for t in tasks.values():
        if t.labels:
            out[t.name] = t.labels[0]
        if t.type == "extract":
            out[t.name] = {f: _SAMPLE_BY_TYPE.get({"enum": "str"}.get(fs.type, fs.type), "")
                           for f, fs in t.spec.fields.items()}
    return out


def _type_check(condition: Condition, sample: Mapping[str, Any]) -> None:
    """Evaluate on well-typed sample values: an operator on the wrong types is a spec error."""
    try:
        condition(sample)
    except ConditionError as exc:
        if "overload" in str(exc).lower() or "not true/false" in str(exc):
            raise ConditionError(f"{condition.source!r}: {exc}") from None


def _dependency_order(spec: WorkflowSpec) -> list[str]:
    """Task names so that every task comes after the tasks it uses (declaration order otherwise)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for used in spec.tasks[name].uses:
            visit(used)
        order.append(name)

    for name in spec.tasks:
        visit(name)
    return order


def _labels(spec: WorkflowSpec, name: str, task: ClassifyTask, root: Path, problems: list, need_file) -> tuple[str, ...]:
    if task.training_data is not None:
        path = need_file(f"tasks.{name}.training_data", task.training_data)
        if not path.is_file():
            return tuple(task.labels) if isinstance(task.labels, list) else ()
        try:
            column = read_label_column(path, task.label_column or "", spec.record.columns)
        except (KeyError, ValueError) as exc:
            problems.append((f"tasks.{name}.label_column", str(exc.args[0]) if exc.args else str(exc)))
            return tuple(task.labels) if isinstance(task.labels, list) else ()
        seen = sorted({str(v).strip() for v in column if isinstance(v, str) and v.strip()})
        if task.labels == FROM_TRAINING_DATA:
            if len(seen) < 2:
                problems.append((f"tasks.{name}.labels", f"the training file has {len(seen)} distinct label(s); need 2"))
            merge = task.rare_classes.merge_into
            return tuple(seen) if merge is None or merge in seen else tuple(sorted({*seen, merge}))
        unknown = sorted(set(seen) - set(task.labels) - ({task.rare_classes.merge_into} - {None}))
        if unknown:
            problems.append((f"tasks.{name}.labels", f"the training file has label(s) not declared: {unknown[:10]}"))
    return tuple(task.labels) if isinstance(task.labels, list) else ()


def read_label_column(path: Path, label_column: str, mapping: Mapping[str, str]) -> list[Any]:
    """The label column of a training file (CSV, CSV.GZ or JSONL), found by its name after mapping."""
    import pandas as pd

    sources = [src for src, target in mapping.items() if target == label_column] or [label_column]
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        df = pd.read_json(path, lines=True, dtype=False)
    else:
        header = pd.read_csv(path, nrows=0).columns
        wanted = [c for c in header if c in sources or c.strip().lower() in {s.lower() for s in sources}]
        if not wanted:
            raise KeyError(f"{label_column!r} is not a column of {path.name} (columns: {', '.join(header)})")
        df = pd.read_csv(path, usecols=wanted[:1], dtype=str, keep_default_na=False)
        return df.iloc[:, 0].tolist()
    for col in df.columns:
        if col in sources:
            return df[col].tolist()
    raise KeyError(f"{label_column!r} is not a key of {path.name}")
