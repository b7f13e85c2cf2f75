"""A classify task's training set from labelled rows as users export them, and its golden set.

:func:`prepare_training_set` takes the labelled frame (``record_id``, ``text``, ``label`` and one
column per side feature the task declares) and optional reviewed feedback (``record_id, text,
label, source, recorded_at``) and returns a :class:`TrainingSet` plus the golden rows. It never
raises on dirty data; what it did is in the :class:`TrainingReport`:

1. rows without a label or with an empty (whitespace) text are dropped; for a task with an
   explicit label list, labels outside it are dropped;
2. a row without ``record_id`` gets a stable id from a content hash of its text and label;
3. the golden set: a row is golden when a seeded hash of its record id falls below
   ``golden_fraction``, so membership never depends on other rows (adding data never moves a
   golden row into training);
4. feedback: the latest review per record wins; reviews of golden records and labels the task
   does not have are left out; a review replaces the labelled label of the same record (missing
   text or features are taken from that labelled row);
5. training rows with the text of a golden row are dropped (the golden set stays unseen);
6. rows with the same text and features but different labels keep the majority label (a tie
   drops them all); exact duplicates are kept once;
7. a label with fewer than ``rare_classes.min_rows`` rows is merged into ``merge_into`` when the
   task names one, else dropped; golden rows of labels the model cannot learn are left out of
   the golden set (and mapped when merged).

The text vectorizer is fitted on the set of distinct texts of every non-golden row with a text,
whatever its label (TF-IDF learns no label, and two classify tasks trained from one labelled file
then share one vectorizer at inference). A training set with fewer than two labels is not
:attr:`~TrainingReport.trainable`; the report
says why and :meth:`LocalModelStore.train` refuses it with that text.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from resources.providers.base import content_hash

from .classifier import data_digest
from .values import feature_value, label_value, text_value

if TYPE_CHECKING:  # pragma: no cover
    from resources.providers.definition import TaskDefinition

GOLDEN_SEED = 20261123
ROW_COLUMNS = ("record_id", "text", "label")
_SPACE = re.compile(r"\s+")

NO_LABEL = "no label"
EMPTY_TEXT = "empty text"
UNKNOWN_LABEL = "label not declared by the task"
FEEDBACK_GOLDEN = "feedback on a golden record"
FEEDBACK_LABEL = "feedback label not a label of the task"
FEEDBACK_SUPERSEDED = "feedback superseded by a later review"
GOLDEN_TEXT = "same text as a golden row"
CONFLICT_MINORITY = "conflicting labels for the same text: minority label"
CONFLICT_TIE = "conflicting labels for the same text: no majority"
DUPLICATE = "duplicate row"
RARE = "rare label"
GOLDEN_DUPLICATE = "golden record listed twice"
GOLDEN_UNLEARNED = "golden row of a label the model does not learn"


class TrainingDataError(ValueError):
    """Labelled data that lacks a required column (the only thing training cannot work around)."""


def is_golden(record_id: str, fraction: float, seed: int = GOLDEN_SEED) -> bool:
    """Whether a record belongs to the golden set: depends on its id only."""
    digest = hashlib.sha256(f"{seed}:{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def golden_mask(record_ids: pd.Series, fraction: float, seed: int = GOLDEN_SEED) -> pd.Series:
    return record_ids.astype(str).map(lambda r: is_golden(r, fraction, seed)).astype(bool)


@dataclass
class Drop:
    reason: str
    rows: int
    labels: dict[str, int] = field(default_factory=dict)


@dataclass
class TrainingReport:
    """What :func:`prepare_training_set` did with the rows it was given, and why."""

    task: str
    rows_in: int = 0
    feedback_in: int = 0
    golden_rows: int = 0
    rows_used: int = 0
    feedback_used: int = 0
    replaced_by_feedback: int = 0
    derived_ids: int = 0
    dropped: list[Drop] = field(default_factory=list)
    merge_into: str | None = None
    merged: dict[str, int] = field(default_factory=dict)
    label_counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def trainable(self) -> bool:
        return not self.problems

    @property
    def rows_dropped(self) -> int:
        return sum(d.rows for d in self.dropped)

    @property
    def balanced(self) -> bool:
        """Every row given is accounted for: used, golden, dropped, or replaced by its review."""
        return (self.rows_in + self.feedback_in
                == self.rows_used + self.golden_rows + self.rows_dropped + self.replaced_by_feedback)

    def drop(self, reason: str, rows: pd.DataFrame) -> None:
        if len(rows):
            counts = rows["label"].astype(str).value_counts()
            self.dropped.append(Drop(reason, int(len(rows)), {str(k): int(v) for k, v in counts.items()}))

    def dropped_for(self, reason: str) -> int:
        return sum(d.rows for d in self.dropped if d.reason == reason)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["trainable"] = self.trainable
        out["rows_dropped"] = self.rows_dropped
        out["dropped"] = [asdict(d) for d in self.dropped]
        return out

    def summary(self) -> str:
        """A few lines a user reads to see what training used and left out."""
        lines = [f"training set for {self.task}: {self.rows_in:,} labelled rows + {self.feedback_in:,} feedback "
                 f"-> {self.rows_used:,} rows used for training ({self.feedback_used:,} from feedback), "
                 f"{self.golden_rows:,} golden rows held out"]
        for d in self.dropped:
            labels = ", ".join(f"{k!r} ({v})" for k, v in sorted(d.labels.items())[:8])
            more = f" +{len(d.labels) - 8} more" if len(d.labels) > 8 else ""
            detailed = d.reason in (UNKNOWN_LABEL, FEEDBACK_LABEL, GOLDEN_UNLEARNED) or d.reason.startswith(RARE)
            detail = f": {labels}{more}" if detailed else ""
            lines.append(f"  dropped {d.rows:,} row{'s' * (d.rows != 1)}: {d.reason}{detail}")
        if self.merged:
            labels = ", ".join(f"{k!r} ({v})" for k, v in sorted(self.merged.items()))
            n = sum(self.merged.values())
            lines.append(f"  merged {n:,} rows of rare labels into {self.merge_into!r}: {labels}")
        if self.replaced_by_feedback:
            lines.append(f"  {self.replaced_by_feedback:,} labelled rows replaced by a reviewed label")
        lines += [f"  {note}" for note in self.notes]
        if self.label_counts:
            lines.append("  labels: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.label_counts.items())))
        lines += [f"  cannot train: {p}" for p in self.problems]
        return "\n".join(lines)


@dataclass
class TrainingSet:
    """The rows a classifier trains on (``record_id, text, label, <features>..., source``)."""

    task: str
    rows: pd.DataFrame
    report: TrainingReport
    data_hash: str
    feature_columns: list[str]
    vocabulary: list[str] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        return self.rows["text"].tolist()

    @property
    def labels(self) -> list[str]:
        return self.rows["label"].tolist()

    @property
    def features(self) -> pd.DataFrame | None:
        return self.rows[self.feature_columns].reset_index(drop=True) if self.feature_columns else None

    def __len__(self) -> int:
        return len(self.rows)


def _frame(df: pd.DataFrame, features: list[str], source: str, report: TrainingReport) -> pd.DataFrame:
    """The contract columns, normalised: strings, stripped, missing values empty."""
    # a review may leave the text out: it is then taken from the labelled row of the same record
    needed = ("text", "label") if source == "labelled" else ("label",)
    missing = [c for c in needed if c not in df.columns]
    if missing:
        have = ", ".join(map(str, df.columns))
        raise TrainingDataError(f"{source} rows lack column(s) {missing} (columns: {have})")
    out = pd.DataFrame(index=df.index)
    out["text"] = df["text"].map(text_value) if "text" in df.columns else ""
    out["label"] = df["label"].map(label_value)
    ids = df["record_id"].map(label_value) if "record_id" in df.columns else pd.Series("", index=df.index)
    no_id = ids == ""
    if no_id.any():
        ids = ids.where(~no_id, [f"h-{content_hash(t, y)}" for t, y in zip(out["text"], out["label"])])
        if source == "labelled":
            report.derived_ids += int(no_id.sum())
    out.insert(0, "record_id", ids)
    for name in features:
        out[name] = df[name].map(feature_value) if name in df.columns else ""
    if source == "labelled":
        absent = [n for n in features if n not in df.columns]
        if absent:
            report.notes.append(f"side feature column(s) {absent} absent from the labelled rows: filled empty")
    if "source" in df.columns and source != "labelled":
        out["source"] = [f"feedback:{s}" if isinstance(s, str) and s else "feedback" for s in df["source"]]
    else:
        out["source"] = source
    if "recorded_at" in df.columns:
        out["recorded_at"] = df["recorded_at"].astype(str)
    return out.reset_index(drop=True)


def _normal(text: pd.Series) -> pd.Series:
    return text.map(lambda t: _SPACE.sub(" ", t).strip().casefold())


def _clean(frame: pd.DataFrame, allowed: set[str] | None, report: TrainingReport, unknown_reason: str) -> pd.DataFrame:
    no_label = frame["label"] == ""
    report.drop(NO_LABEL, frame[no_label])
    frame = frame[~no_label]
    empty = frame["text"] == ""
    report.drop(EMPTY_TEXT, frame[empty])
    frame = frame[~empty]
    if allowed is not None:
        unknown = ~frame["label"].isin(allowed)
        report.drop(unknown_reason, frame[unknown])
        frame = frame[~unknown]
    return frame


def _resolve_conflicts(rows: pd.DataFrame, keys: list[str], report: TrainingReport) -> pd.DataFrame:
    """Same input, different labels: keep the majority label's rows; a tie drops the input."""
    counts = rows.groupby([*keys, "label"], sort=False).size().rename("n").reset_index()
    by_input = counts.groupby(keys, sort=False)["n"]
    counts["labels"] = by_input.transform("size")
    if (counts["labels"] == 1).all():
        return rows
    counts["top"] = by_input.transform("max")
    counts["winners"] = (counts["n"] == counts["top"]).groupby([counts[k] for k in keys], sort=False).transform("sum")
    counts["verdict"] = None
    counts.loc[(counts["labels"] > 1) & (counts["n"] < counts["top"]), "verdict"] = CONFLICT_MINORITY
    counts.loc[(counts["labels"] > 1) & (counts["winners"] > 1), "verdict"] = CONFLICT_TIE
    marked = rows.merge(counts[[*keys, "label", "verdict"]], on=[*keys, "label"], how="left")
    for reason in (CONFLICT_MINORITY, CONFLICT_TIE):
        report.drop(reason, marked[marked["verdict"] == reason])
    return marked[marked["verdict"].isna()].drop(columns="verdict")


def prepare_training_set(
    task: "TaskDefinition",
    labelled: pd.DataFrame,
    feedback: pd.DataFrame | None = None,
    *,
    seed: int = GOLDEN_SEED,
) -> tuple[TrainingSet, pd.DataFrame]:
    """(the training set, the golden rows) of a classify task; see the module docstring."""
    spec = task.spec
    features = list(getattr(spec, "features", []) or [])
    fraction = float(getattr(spec, "golden_fraction", 0.2))
    rare = getattr(spec, "rare_classes", None)
    min_rows = rare.min_rows if rare is not None else 2
    merge_into = rare.merge_into if rare is not None else None
    report = TrainingReport(task=task.key, merge_into=merge_into)
    declared = set(spec.labels) if isinstance(getattr(spec, "labels", None), list) else None
    allowed = None if declared is None else declared | ({merge_into} - {None})
    feedback_allowed = set(task.labels) | ({merge_into} - {None}) if task.labels else allowed

    report.rows_in = len(labelled)
    frame = _frame(labelled, features, "labelled", report)
    rows = _clean(frame, allowed, report, UNKNOWN_LABEL)
    if report.derived_ids:
        report.notes.append(f"record ids derived from a content hash of text and label for {report.derived_ids:,} "
                            "rows without a record_id")
    golden_rows = golden_mask(rows["record_id"], fraction, seed)
    golden = rows[golden_rows]
    twice = golden.duplicated("record_id", keep="last")
    report.drop(GOLDEN_DUPLICATE, golden[twice])
    golden = golden[~twice]
    golden_texts = set(_normal(golden["text"]))
    train = rows[~golden_rows]

    if feedback is not None and len(feedback):
        report.feedback_in = len(feedback)
        fb = _frame(feedback, [f for f in features if f in feedback.columns], "feedback", report)
        known = rows.drop_duplicates("record_id", keep="last").set_index("record_id")
        for name in ["text", *features]:  # what a review lacks comes from the labelled row of the same record
            if name not in fb.columns:
                fb[name] = ""
            blank = (fb[name] == "") & fb["record_id"].isin(known.index)
            fb.loc[blank, name] = fb.loc[blank, "record_id"].map(known[name])
        if "recorded_at" in fb.columns:
            fb = fb.sort_values("recorded_at", kind="stable")
        latest = fb.duplicated("record_id", keep="last")
        report.drop(FEEDBACK_SUPERSEDED, fb[latest])
        fb = _clean(fb[~latest], feedback_allowed, report, FEEDBACK_LABEL)
        on_golden = golden_mask(fb["record_id"], fraction, seed)
        report.drop(FEEDBACK_GOLDEN, fb[on_golden])
        fb = fb[~on_golden].drop(columns=["recorded_at"], errors="ignore")
        replaced = train["record_id"].isin(set(fb["record_id"]))
        report.replaced_by_feedback = int(replaced.sum())
        train = pd.concat([train[~replaced], fb], ignore_index=True)
    train = train.drop(columns=["recorded_at"], errors="ignore")

    train = train.assign(_norm=_normal(train["text"]))
    leaked = train["_norm"].isin(golden_texts)
    report.drop(GOLDEN_TEXT, train[leaked])
    train = train[~leaked]
    keys = ["_norm", *features]
    train = _resolve_conflicts(train.sort_values(["record_id", "source"], kind="stable"), keys, report)
    dupes = train.duplicated([*keys, "label"], keep="first")
    report.drop(DUPLICATE, train[dupes])
    train = train[~dupes].drop(columns="_norm")

    counts = train["label"].value_counts()
    rare_labels = sorted(str(k) for k, v in counts.items() if v < min_rows and k != merge_into)
    if rare_labels and merge_into is not None:
        is_rare = train["label"].isin(rare_labels)
        report.merged = {k: int(counts[k]) for k in rare_labels}
        train = train.assign(label=train["label"].where(~is_rare, merge_into))
        counts = train["label"].value_counts()
        rare_labels = [merge_into] if counts.get(merge_into, 0) < min_rows else []
    if rare_labels:
        is_rare = train["label"].isin(rare_labels)
        report.drop(f"{RARE} (fewer than {min_rows} rows)", train[is_rare])
        train = train[~is_rare]
    learned = set(train["label"])

    mapping = {k: merge_into for k in report.merged}
    golden = golden.assign(label=golden["label"].map(lambda y: mapping.get(y, y)))
    unlearned = ~golden["label"].isin(learned)
    report.drop(GOLDEN_UNLEARNED, golden[unlearned])
    golden = golden[~unlearned].sort_values("record_id", kind="stable").reset_index(drop=True)

    train = train.sort_values(["record_id", "source", "text"], kind="stable").reset_index(drop=True)
    train = train[["record_id", "text", "label", *features, "source"]]
    report.rows_used = len(train)
    report.feedback_used = int(train["source"].str.startswith("feedback").sum())
    report.golden_rows = len(golden)
    report.label_counts = {str(k): int(v) for k, v in train["label"].value_counts().sort_index().items()}
    if len(learned) < 2:
        report.problems.append(
            f"a classifier needs at least two labels with {min_rows} or more training rows; "
            f"left: {sorted(learned) or 'none'} ({len(train)} rows)")
    vocabulary = _vocabulary(frame, train, golden_texts, fraction, seed)
    feature_frame = train[features] if features else None
    data_hash = data_digest(train["text"].tolist(), train["label"].tolist(), feature_frame, vocabulary or None)
    return TrainingSet(task.key, train, report, data_hash, features, vocabulary), golden


def _vocabulary(frame: pd.DataFrame, train: pd.DataFrame, golden_texts: set[str], fraction: float,
                seed: int) -> list[str]:
    """Distinct texts of every non-golden labelled row with a text, whatever its label, and the
    training rows (reviews included); none equal to a golden text."""
    rows = frame[(frame["text"] != "") & ~golden_mask(frame["record_id"], fraction, seed)]
    texts = set(rows["text"][~_normal(rows["text"]).isin(golden_texts)]) | set(train["text"])
    return sorted(texts)
