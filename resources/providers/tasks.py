"""The generic task types a workflow family declares, and what each one produces.

A family's ``defs.yaml`` lists its tasks under ``tasks:``; each is one of six types. This module
holds, per type, the declaration (a strict pydantic model: a wrong key or value names the key),
the typed output an LLM must return (a pydantic model built from the declaration, so the JSON
schema sent to the model and the validation of its answer come from one place), the table
columns the task's asset stores, and the values the family's policy (CEL) can read.

======== =================================================== =========================================
type     declares                                            produces (columns, prefixed by task name)
======== =================================================== =========================================
classify labels (or ``from_training_data``), training file,  ``<t>`` label, ``<t>_confidence``,
         side ``features``, ordered-label ``rules``          ``<t>_probabilities``, ``<t>_reasons``
extract  typed ``fields`` with ``patterns`` / ``keywords``   ``<t>_<field>`` per field, ``<t>_confidence``
sentiment optional extra ``lexicon`` words                   ``<t>`` label, ``<t>_score`` in [-1, 1]
summarize ``max_chars``, ``sentences``, ``keywords``         ``<t>`` summary text
draft    a Jinja ``template`` file, ``retrieval`` of docs    ``<t>`` text, ``<t>_cited_ids``
flag     named ``rules`` (regex ``patterns`` or a builtin)   ``<t>`` raised names, ``<t>_<rule>`` bools
======== =================================================== =========================================

Nothing here knows any family: labels, fields, patterns and templates all come from the spec.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

FROM_TRAINING_DATA = "from_training_data"
SENTIMENT_LABELS = ("negative", "neutral", "positive")
BUILTIN_PATTERNS = ("money", "currency", "email")  # extract ``patterns: [builtin:money]``
BUILTIN_FLAGS = ("prompt_injection",)
IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


class Strict(BaseModel):
    """Spec models reject unknown keys (a typo fails at load, naming the key)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_regexes(patterns: list[str]) -> list[str]:
    for p in patterns:
        if p.startswith("builtin:"):
            continue
        try:
            re.compile(p)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {p!r}: {exc}") from None
    return patterns


class TaskCommon(Strict):
    description: str = Field("", description="what the task answers; shown in the UI")
    text: list[str] = Field(
        default_factory=list, description="record fields the task reads; empty = the record's text fields"
    )
    uses: list[str] = Field(
        default_factory=list, description="tasks whose answers this task reads (they run first)"
    )
    instructions: str = Field("", description="instructions for an LLM answering this task (default per type)")
    prompt: str | None = Field(
        None, description="Jinja prompt template file for LLM answers, relative to the family folder (default: the platform's)"
    )

    @property
    def has_confidence(self) -> bool:
        """Whether answers carry a confidence a cascade or ``min_confidence`` can judge."""
        return False


# ---- classify ---------------------------------------------------------------------------------


class LabelRule(Strict):
    """For ordered labels: raise the answer to at least ``at_least`` when the rule fires."""

    when: str | None = Field(None, description="CEL condition over the record, lookups and used tasks")
    pattern: str | None = Field(None, description="regular expression searched (case-insensitive) in the text")
    at_least: str
    reason: str = Field(..., min_length=1, description="recorded in <task>_reasons when the rule fires")

    @model_validator(mode="after")
    def _one_trigger(self) -> "LabelRule":
        if (self.when is None) == (self.pattern is None):
            raise ValueError("a rule needs exactly one of 'when' (CEL) or 'pattern' (regex)")
        if self.pattern is not None:
            _check_regexes([self.pattern])
        return self


class RareClasses(Strict):
    """What training does with a label that has fewer than ``min_rows`` labelled rows."""

    min_rows: int = Field(2, ge=2, description="rows a label needs to be learned (calibration needs 2)")
    merge_into: str | None = Field(None, description="label that absorbs rare labels; default: they are dropped")


class ClassifierTuning(Strict):
    """Overrides of the local classifier's hyper-parameters (part of the model version)."""

    word_ngram_max: int | None = Field(None, ge=1, le=3)
    char_ngrams: tuple[int, int] | None = None
    C: float | None = Field(None, gt=0)
    nb_C: float | None = Field(None, gt=0)


class ClassifyTask(TaskCommon):
    type: Literal["classify"]
    labels: list[str] | Literal["from_training_data"] = Field(
        ..., description="the allowed labels, or from_training_data (the label column's distinct values)"
    )
    training_data: str | None = Field(None, description="labelled file (CSV or JSONL), relative to the family folder")
    label_column: str | None = Field(None, description="label column of the training file (after column mapping)")
    ordered: bool = Field(False, description="labels are ranked lowest first; rules raise to a minimum")
    features: list[str] = Field(
        default_factory=list,
        description="categorical side inputs: record fields, used task names, lookup columns (lookup.column)",
    )
    rules: list[LabelRule] = Field(default_factory=list)
    rare_classes: RareClasses = RareClasses()
    golden_fraction: float = Field(0.2, gt=0, lt=1, description="share of labelled rows held out as golden set")
    tuning: ClassifierTuning = ClassifierTuning()

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: Any) -> Any:
        if isinstance(v, list):
            if len(v) < 2:
                raise ValueError(f"a classify task needs at least two labels, got {v}")
            dupes = sorted({x for x in v if v.count(x) > 1})
            if dupes:
                raise ValueError(f"duplicate label(s) {dupes}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "ClassifyTask":
        if self.labels == FROM_TRAINING_DATA and not (self.training_data and self.label_column):
            raise ValueError("labels: from_training_data needs training_data and label_column")
        if bool(self.training_data) != bool(self.label_column):
            raise ValueError("training_data and label_column go together")
        if self.rules and not self.ordered:
            raise ValueError("rules raise an answer to a minimum label: set ordered: true")
        if isinstance(self.labels, list):
            for i, rule in enumerate(self.rules):
                if rule.at_least not in self.labels:
                    raise ValueError(f"rules[{i}].at_least: {rule.at_least!r} is not one of the labels {self.labels}")
        return self

    @property
    def has_confidence(self) -> bool:
        return True

    def output_model(self, labels: tuple[str, ...]) -> type[BaseModel]:
        return create_model(
            "ClassifyAnswer",
            __config__=ConfigDict(extra="ignore"),
            label=(Literal[labels], Field(description="exactly one of the allowed labels")),  # type: ignore[valid-type]
            confidence=(float, Field(ge=0, le=1, description="how sure, 0 to 1")),
        )


# ---- extract ----------------------------------------------------------------------------------

FieldType = Literal["string", "integer", "number", "boolean", "date", "enum", "email"]


class Conversion(Strict):
    """Convert an extracted amount to one currency with fixed rates (``{EUR: 1.08}`` = 1 EUR in ``to``)."""

    to: str = Field(..., min_length=3, max_length=3)
    rates: dict[str, float] = Field(default_factory=dict)
    currency_field: str | None = Field(None, description="extracted field holding the amount's currency")


class ExtractField(Strict):
    type: FieldType = "string"
    description: str = ""
    patterns: list[str] = Field(
        default_factory=list,
        description="regexes (first group, or the group named 'value'); builtin:money, builtin:currency, builtin:email",
    )
    values: list[str] | None = Field(None, description="allowed values (type enum)")
    keywords: dict[str, list[str]] = Field(
        default_factory=dict, description="enum value -> words whose presence selects it (local extraction)"
    )
    default: Any = None
    required: bool = Field(False, description="a record without this field is answered with low confidence")
    pick: Literal["first", "last", "max", "min"] = Field("first", description="which match when several")
    convert: Conversion | None = None

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        for p in v:
            if p.startswith("builtin:") and p.removeprefix("builtin:") not in BUILTIN_PATTERNS:
                raise ValueError(f"unknown builtin pattern {p!r}; known: {', '.join('builtin:' + b for b in BUILTIN_PATTERNS)}")
        return _check_regexes(v)

    @model_validator(mode="after")
    def _enum(self) -> "ExtractField":
        if self.type == "enum" and not self.values:
            raise ValueError("an enum field needs values")
        unknown = sorted(set(self.keywords) - set(self.values or []))
        if unknown:
            raise ValueError(f"keywords for unknown value(s) {unknown}; values: {self.values}")
        if self.keywords and self.type != "enum":
            raise ValueError("keywords select an enum value: set type: enum")
        if self.convert is not None and self.type != "number":
            raise ValueError("convert applies to number fields")
        return self

    def python_type(self) -> Any:
        if self.type == "enum":
            return Literal[tuple(self.values or ())]  # type: ignore[valid-type]
        return {"string": str, "email": str, "date": str, "integer": int, "number": float, "boolean": bool}[self.type]


class ExtractTask(TaskCommon):
    type: Literal["extract"]
    fields: dict[str, ExtractField] = Field(..., min_length=1)

    @field_validator("fields")
    @classmethod
    def _names(cls, v: dict[str, ExtractField]) -> dict[str, ExtractField]:
        bad = [k for k in v if not IDENTIFIER.match(k)]
        if bad:
            raise ValueError(f"field names must be lower_snake_case identifiers: {bad}")
        if "confidence" in v:
            raise ValueError("'confidence' is reserved (it is <task>_confidence)")
        return v

    @model_validator(mode="after")
    def _conversions(self) -> "ExtractTask":
        for name, f in self.fields.items():
            if f.convert and f.convert.currency_field and f.convert.currency_field not in self.fields:
                raise ValueError(f"fields.{name}.convert.currency_field: unknown field {f.convert.currency_field!r}")
        return self

    @property
    def has_confidence(self) -> bool:
        return True

    def output_model(self, labels: tuple[str, ...] = ()) -> type[BaseModel]:
        fields: dict[str, Any] = {
            name: (f.python_type() | None, Field(None, description=f.description or name))
            for name, f in self.fields.items()
        }
        fields["confidence"] = (float, Field(ge=0, le=1, description="how sure of the fields, 0 to 1"))
        return create_model("ExtractAnswer", __config__=ConfigDict(extra="ignore"), **fields)


# ---- sentiment, summarize ---------------------------------------------------------------------


class SentimentTask(TaskCommon):
    type: Literal["sentiment"]
    lexicon: dict[str, float] = Field(default_factory=dict, description="extra words and their valence (-3..3)")
    threshold: float = Field(0.25, gt=0, lt=1, description="|score| from which the label is not neutral")

    @field_validator("lexicon")
    @classmethod
    def _valence(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {w: x for w, x in v.items() if not -3 <= x <= 3}
        if bad:
            raise ValueError(f"valences must be within -3..3: {bad}")
        return v

    def output_model(self, labels: tuple[str, ...] = ()) -> type[BaseModel]:
        return create_model(
            "SentimentAnswer",
            __config__=ConfigDict(extra="ignore"),
            label=(Literal[SENTIMENT_LABELS], ...),  # type: ignore[valid-type]
            score=(float, Field(ge=-1, le=1, description="-1 very negative .. 1 very positive")),
        )


class SummarizeTask(TaskCommon):
    type: Literal["summarize"]
    max_chars: int = Field(280, ge=40, le=4000)
    sentences: int = Field(2, ge=1, le=10)
    keywords: list[str] = Field(default_factory=list, description="words that make a sentence worth keeping")

    def output_model(self, labels: tuple[str, ...] = ()) -> type[BaseModel]:
        return create_model(
            "SummaryAnswer",
            __config__=ConfigDict(extra="ignore"),
            summary=(str, Field(min_length=1, max_length=2 * self.max_chars)),
        )


# ---- draft ------------------------------------------------------------------------------------


class Retrieval(Strict):
    """Documents retrieved for each record from a context lookup that holds a document collection."""

    from_: str = Field(..., alias="from", description="context lookup with documents")
    k: int = Field(3, ge=1, le=20, description="documents retrieved per record")
    prefer_group_of: str | None = Field(
        None, description="a classify task: documents whose group equals its label are cited first"
    )


class DraftRubric(Strict):
    """What a good draft does: the keyword rubric (offline default) and, with ``judge``, criteria a model scores.

    ``criteria`` maps a criterion name to what a good draft does; ``judge`` names a model of the
    catalog that scores them (pass/fail and a reason each, :mod:`resources.evaluation.judge`).
    Without ``judge`` the deterministic keyword rubric scores the drafts.
    """

    label_task: str | None = Field(None, description="classify task whose label the draft should address")
    terms: dict[str, list[str]] = Field(default_factory=dict, description="label -> words a draft about it uses")
    min_score: float = Field(0.75, ge=0, le=1)
    criteria: dict[str, str] = Field(default_factory=dict, description="criterion -> what a good draft does")
    judge: str | None = Field(None, description="catalog model scoring the criteria; none = the keyword rubric")

    @field_validator("criteria")
    @classmethod
    def _criteria(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not IDENTIFIER.match(k) or k.endswith("_reason") or k == "confidence"]
        if bad:
            raise ValueError(f"criterion names must be lower_snake_case identifiers, not 'confidence' nor "
                             f"ending in '_reason': {bad}")
        empty = [k for k, text in v.items() if not str(text).strip()]
        if empty:
            raise ValueError(f"criteria {empty} say nothing: describe what a good draft does")
        return v

    @model_validator(mode="after")
    def _judged(self) -> "DraftRubric":
        if self.judge is not None and not self.criteria:
            raise ValueError("judge needs criteria: the judge model scores the declared criteria")
        if self.judge == "local":
            raise ValueError("judge names a model of the model catalog; leave it unset for the keyword rubric")
        return self


class DraftTask(TaskCommon):
    type: Literal["draft"]
    template: str = Field(..., description="Jinja template file (sandboxed), relative to the family folder")
    retrieval: Retrieval | None = None
    min_chars: int = Field(80, ge=1)
    max_chars: int = Field(4000, ge=10)
    require_citation: bool | None = Field(None, description="default: true when retrieval is configured")
    rubric: DraftRubric = DraftRubric()

    @model_validator(mode="after")
    def _bounds(self) -> "DraftTask":
        if self.min_chars >= self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) must be below max_chars ({self.max_chars})")
        if self.require_citation and self.retrieval is None:
            raise ValueError("require_citation needs retrieval")
        return self

    @property
    def citation_required(self) -> bool:
        return self.retrieval is not None if self.require_citation is None else self.require_citation

    def output_model(self, labels: tuple[str, ...] = ()) -> type[BaseModel]:
        return create_model(
            "DraftAnswer",
            __config__=ConfigDict(extra="ignore"),
            text=(str, Field(min_length=1, max_length=self.max_chars * 2)),
            cited_ids=(list[str], Field(default_factory=list, description="ids of the documents used")),
        )


# ---- flag -------------------------------------------------------------------------------------


class FlagRule(Strict):
    description: str = ""
    patterns: list[str] = Field(default_factory=list, description="regexes searched case-insensitively")
    builtin: Literal["prompt_injection"] | None = None

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        return _check_regexes(v)

    @model_validator(mode="after")
    def _one(self) -> "FlagRule":
        if bool(self.patterns) == bool(self.builtin):
            raise ValueError("a flag rule needs either patterns or builtin")
        return self


class FlagTask(TaskCommon):
    type: Literal["flag"]
    rules: dict[str, FlagRule] = Field(..., min_length=1)

    @field_validator("rules")
    @classmethod
    def _names(cls, v: dict[str, FlagRule]) -> dict[str, FlagRule]:
        bad = [k for k in v if not IDENTIFIER.match(k)]
        if bad:
            raise ValueError(f"flag names must be lower_snake_case identifiers: {bad}")
        return v

    def output_model(self, labels: tuple[str, ...] = ()) -> type[BaseModel]:
        names = tuple(self.rules)
        return create_model(
            "FlagAnswer",
            __config__=ConfigDict(extra="ignore"),
            flags=(list[Literal[names]], Field(default_factory=list, description="the flags that apply")),  # type: ignore[valid-type]
        )


TaskSpec = Annotated[
    Union[ClassifyTask, ExtractTask, SentimentTask, SummarizeTask, DraftTask, FlagTask],
    Field(discriminator="type"),
]
TASK_TYPES = ("classify", "extract", "sentiment", "summarize", "draft", "flag")
