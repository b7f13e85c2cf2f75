"""The workflow-family spec: the pydantic model of a family's ``defs.yaml`` attributes.

Everything family-specific lives here as data: the record's fields and the source column names
they come from, the inbox, context lookups, the tasks (generic types from
:mod:`resources.providers.tasks`), routing, the policy, review actions, dispatch, guardrail
thresholds, budgets, schedules and owners. The README's "Family spec reference" documents every
key. Structural checks happen here (unknown keys, types, references between sections); what
needs the family's folder (files, labels read from training data, CEL compilation against the
resolved names) happens in :mod:`orchestration_assets.family`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from resources.providers.tasks import IDENTIFIER, ClassifyTask, DraftTask, Strict, TaskSpec
from resources.router.routes import Budget, TaskRoute
from resources.evaluation.llm_gates import LlmPromotionSpec

from .spec_inputs import LookupSpec, RecordSpec, SourceSpec, _platform_names

Action = Literal["auto_send", "human_review", "escalate"]
SEVERITY: dict[str, int] = {"auto_send": 0, "human_review": 1, "escalate": 2}
ReviewAction = Literal["approve", "edit_and_approve", "reject", "relabel"]
OWNER = re.compile(r"^(team:[A-Za-z0-9_.-]+|[^@\s]+@[^@\s]+\.[A-Za-z]{2,})$")
CRON = re.compile(r"^\S+( \S+){4}$")
class PolicyRule(Strict):
    when: str = Field(..., min_length=1, description="CEL condition over the record, lookups and answers")
    action: Action
    reason: str = Field(..., min_length=1, description="reason code recorded on the decision and the audit log")


class ReviewSpec(Strict):
    actions: list[ReviewAction] = Field(default_factory=lambda: ["approve", "reject"], min_length=1)
    relabel_task: str | None = Field(None, description="classify task a relabel corrects")
    edit_task: str | None = Field(None, description="draft task whose text edit_and_approve replaces")


class DispatchSpec(Strict):
    """What goes out for an approved record, and where (outbox folder, webhook)."""

    output: str | None = Field(None, description="draft task whose text is sent; none = the answers only")
    include: list[str] = Field(default_factory=list, description="record fields and task answers in the payload")
    folder: str | None = Field(None, description="folder under the outbox root (default: the family name)")
    webhook_url_env: str | None = Field(None, description="environment variable holding a webhook URL")


class GuardrailSpec(Strict):
    max_failure_rate: float = Field(0.05, ge=0, le=1, description="blocking: share of records whose enrichment failed")
    output_action: Action = Field("human_review", description="for a record whose generated text broke a guardrail")
    failure_action: Action = Field("human_review", description="for a record whose enrichment failed")


class ScheduleSpec(Strict):
    catchup: str | None = Field("15 * * * *", description="re-run batches missing decisions; null = off")
    kpis: str | None = "30 0 * * *"
    context_refresh: str | None = "0 5 * * *"
    retraining: str | None = "0 3 * * 1"

    @field_validator("catchup", "kpis", "context_refresh", "retraining")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None and not CRON.match(v.strip()):
            raise ValueError(f"{v!r} is not a 5-field cron expression")
        return v


class PromotionOverride(Strict):
    macro_f1_tolerance: float | None = Field(None, ge=0, le=1)
    max_class_recall_drop: float | None = Field(None, ge=0, le=1)
    min_class_recall: float | None = Field(None, ge=0, le=1)
    max_cost_per_item_usd: float | None = Field(None, ge=0)


class PromotionSpec(Strict):
    """Gates a challenger classifier passes before it becomes champion (blocking checks)."""

    macro_f1_tolerance: float = Field(0.01, ge=0, le=1)
    max_class_recall_drop: float = Field(0.10, ge=0, le=1)
    min_class_recall: float = Field(0.30, ge=0, le=1)
    max_cost_per_item_usd: float = Field(0.01, ge=0)
    tasks: dict[str, PromotionOverride] = Field(default_factory=dict, description="per classify task overrides")
    llm: LlmPromotionSpec = Field(default_factory=LlmPromotionSpec, description="gates of LLM configurations")

    def for_task(self, task: str) -> "PromotionSpec":
        """The thresholds of one task: the family's, with that task's overrides."""
        override = self.tasks.get(task)
        if override is None:
            return self
        changes = {k: v for k, v in override.model_dump().items() if v is not None}
        return self.model_copy(update={**changes, "tasks": {}})


class KpiSpec(Strict):
    model_task: str | None = Field(None, description="task whose model version KPIs are grouped by (default: first classify)")


class WorkflowSpec(Strict):
    """One workflow family."""

    name: str = Field(..., description="family name: asset key prefix, job and table prefix")
    description: str = ""
    owners: list[str] = Field(default_factory=list, description="team:<name> or an e-mail address")
    record: RecordSpec
    source: SourceSpec = SourceSpec()
    context: dict[str, LookupSpec] = Field(default_factory=dict)
    tasks: dict[str, TaskSpec] = Field(..., min_length=1)
    routing: dict[str, TaskRoute] = Field(default_factory=dict)
    policy: list[PolicyRule] = Field(default_factory=list)
    default_action: Action = "auto_send"
    review: ReviewSpec = ReviewSpec()
    dispatch: DispatchSpec = DispatchSpec()
    guardrails: GuardrailSpec = GuardrailSpec()
    budget: Budget = Budget()
    schedules: ScheduleSpec = ScheduleSpec()
    promotion: PromotionSpec = PromotionSpec()
    kpis: KpiSpec = KpiSpec()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not IDENTIFIER.match(v) or "__" in v:
            raise ValueError("a family name is a lower_snake_case identifier without '__'")
        return v

    @field_validator("owners")
    @classmethod
    def _owners(cls, v: list[str]) -> list[str]:
        bad = [o for o in v if not OWNER.match(o)]
        if bad:
            raise ValueError(f"owners must be team:<name> or an e-mail address: {bad}")
        return v

    @field_validator("tasks", "context")
    @classmethod
    def _identifiers(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _platform_names(v)

    @model_validator(mode="after")
    def _references(self) -> "WorkflowSpec":
        problems: list[tuple[str, str]] = []
        fields, tasks, lookups = set(self.record.fields), self.tasks, self.context
        aliases = {lk.alias(n): n for n, lk in lookups.items()}
        derived = {f"{n}_{suffix}": n for n in tasks for suffix in ("confidence", "score")}
        for name in set(fields) & set(tasks):
            problems.append((f"tasks.{name}", f"name collides with record field {name!r}"))
        for alias, name in aliases.items():
            if alias in fields:
                problems.append((f"context.{name}", f"name {alias!r} collides with record field {alias!r}"))
            if alias in tasks:
                problems.append((f"context.{name}", f"name {alias!r} collides with task {alias!r}"))
        if len(aliases) != len(lookups):
            problems.append(("context", "two lookups use the same name (as:)"))
        for name, task in derived.items():
            if name in fields or name in tasks or name in aliases:
                problems.append((f"tasks.{task}", f"its value {name!r} collides with another name"))
        for fname, f in self.record.fields.items():
            if f.truth_for is not None and not isinstance(tasks.get(f.truth_for), ClassifyTask):
                problems.append((f"record.fields.{fname}.truth_for", f"{f.truth_for!r} is not a classify task"))
        for tname, task in tasks.items():
            for i, field_name in enumerate(task.text):
                if field_name not in fields:
                    problems.append((f"tasks.{tname}.text[{i}]", f"{field_name!r} is not a record field"))
            for i, used in enumerate(task.uses):
                if used not in tasks:
                    problems.append((f"tasks.{tname}.uses[{i}]", f"unknown task {used!r}"))
                elif used == tname:
                    problems.append((f"tasks.{tname}.uses[{i}]", "a task cannot use itself"))
            if isinstance(task, ClassifyTask):
                for i, feat in enumerate(task.features):
                    problem = self._feature_problem(tname, feat)
                    if problem:
                        problems.append((f"tasks.{tname}.features[{i}]", problem))
            if isinstance(task, DraftTask):
                r = task.retrieval
                if r is not None:
                    lk = lookups.get(r.from_)
                    if lk is None:
                        problems.append((f"tasks.{tname}.retrieval.from", f"unknown context lookup {r.from_!r}"))
                    elif lk.documents is None:
                        problems.append((f"tasks.{tname}.retrieval.from", f"lookup {r.from_!r} declares no documents"))
                    if r.prefer_group_of is not None and not isinstance(tasks.get(r.prefer_group_of), ClassifyTask):
                        problems.append((f"tasks.{tname}.retrieval.prefer_group_of",
                                         f"{r.prefer_group_of!r} is not a classify task"))
                    elif r.prefer_group_of is not None and r.prefer_group_of not in task.uses:
                        problems.append((f"tasks.{tname}.retrieval.prefer_group_of",
                                         f"list {r.prefer_group_of!r} in uses, so it runs first"))
                rt = task.rubric.label_task
                if rt is not None and not isinstance(tasks.get(rt), ClassifyTask):
                    problems.append((f"tasks.{tname}.rubric.label_task", f"{rt!r} is not a classify task"))
        cycle = _cycle({n: t.uses for n, t in tasks.items()})
        if cycle:
            problems.append(("tasks", f"tasks use each other in a cycle: {' -> '.join(cycle)}"))
        for lname, lk in lookups.items():
            if lk.join_on is not None:
                root, _, sub = lk.join_on.partition(".")
                if sub:
                    t = tasks.get(root)
                    if t is None or t.type != "extract" or sub not in t.fields:
                        problems.append((f"context.{lname}.join_on", f"{lk.join_on!r} is not <extract task>.<field>"))
                elif lk.join_on not in fields:
                    problems.append((f"context.{lname}.join_on", f"{lk.join_on!r} is not a record field"))
        for tname in self.routing:
            if tname not in tasks:
                problems.append((f"routing.{tname}", f"unknown task {tname!r}"))
            elif self.routing[tname].is_cascade or self.routing[tname].min_confidence is not None:
                if not tasks[tname].has_confidence:
                    problems.append((f"routing.{tname}", f"{tasks[tname].type} answers have no confidence to judge"))
        rv = self.review
        if "relabel" in rv.actions and not isinstance(tasks.get(rv.relabel_task or ""), ClassifyTask):
            problems.append(("review.relabel_task", "relabel needs relabel_task: a classify task"))
        if "edit_and_approve" in rv.actions and not isinstance(tasks.get(rv.edit_task or ""), DraftTask):
            problems.append(("review.edit_task", "edit_and_approve needs edit_task: a draft task"))
        if self.dispatch.output is not None and not isinstance(tasks.get(self.dispatch.output), DraftTask):
            problems.append(("dispatch.output", f"{self.dispatch.output!r} is not a draft task"))
        for i, name in enumerate(self.dispatch.include):
            if name not in fields and name not in tasks:
                problems.append((f"dispatch.include[{i}]", f"{name!r} is neither a record field nor a task"))
        for tname in self.promotion.tasks:
            if not isinstance(tasks.get(tname), ClassifyTask):
                problems.append((f"promotion.tasks.{tname}", f"{tname!r} is not a classify task"))
        mt = self.kpis.model_task
        if mt is not None and mt not in tasks:
            problems.append(("kpis.model_task", f"unknown task {mt!r}"))
        if problems:
            raise ValueError("; ".join(f"{loc}: {msg}" for loc, msg in problems))
        return self

    def lookup_by_alias(self, alias: str) -> "LookupSpec | None":
        for name, lk in self.context.items():
            if lk.alias(name) == alias:
                return lk
        return None

    def _feature_problem(self, task: str, feature: str) -> str | None:
        root, _, sub = feature.partition(".")
        if sub:
            lk = self.lookup_by_alias(root)
            if lk is None or lk.join_on is None:
                return f"{feature!r}: {root!r} is not a joined context lookup"
            if sub not in lk.columns:
                return f"{feature!r}: lookup {root!r} has no column {sub!r}"
            if "." in lk.join_on:
                return f"{feature!r}: lookup {root!r} is joined on an answer, not available to tasks"
            return None
        if feature in self.record.fields:
            return None
        if feature in self.tasks:
            return None if feature in self.tasks[task].uses else f"{feature!r}: list it in uses, so it runs first"
        return f"{feature!r} is not a record field, a task or lookup.column"

    @property
    def classify_tasks(self) -> list[str]:
        return [n for n, t in self.tasks.items() if isinstance(t, ClassifyTask)]


def _cycle(graph: dict[str, list[str]]) -> list[str]:
    """One dependency cycle of ``graph`` (node -> nodes it uses), or []."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str]:
        state[n] = 1
        stack.append(n)
        for m in graph.get(n, []):
            if m not in graph:
                continue
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if state.get(m) is None:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return []

    for node in graph:
        if state.get(node) is None:
            found = visit(node)
            if found:
                return found
    return []


def validation_problems(err: ValidationError) -> list[tuple[str, str]]:
    """(key path, reason) per problem, in the spec's own terms (``tasks.topic.labels``, not pydantic's)."""
    out = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e.get("loc", ()))
        msg = e.get("msg", "invalid")
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        kind = e.get("type")
        if kind == "extra_forbidden":
            msg = "unknown key (typo?)"
        elif kind == "missing":
            msg = "required key is missing"
        elif kind == "union_tag_invalid":
            msg = f"unknown task type; use one of {e.get('ctx', {}).get('expected_tags', '')}"
        elif kind == "union_tag_not_found":
            msg = "a task needs a type: classify, extract, sentiment, summarize, draft or flag"
        # a validator of a whole section reports "key: reason; key: reason" relative to it
        for part in msg.split("; ") if kind == "value_error" else [msg]:
            m = _RELATIVE.match(part)
            if m:
                out.append((_clean_path(".".join(p for p in (loc, m.group(1)) if p)), m.group(2)))
            else:
                out.append((_clean_path(loc), part))
    return out


_RELATIVE = re.compile(r"^([A-Za-z_][\w]*(?:\[\d+\])?(?:\.[A-Za-z_][\w]*(?:\[\d+\])?)*): (.+)$", re.S)


def _clean_path(path: str) -> str:
    """Drop the discriminator tag pydantic adds after a task's name (``tasks.topic.classify.labels``)."""
    return re.sub(r"^(tasks\.[^.]+)\.(classify|extract|sentiment|summarize|draft|flag)(\.|$)", r"\1\3", path).rstrip(".")
