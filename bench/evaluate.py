"""Classifier quality of the local pipeline on any labelled CSV (plain or gzipped), as users export it.

    python bench/evaluate.py --csv PATH --text-col COL --label-col COL [--id-col COL]
                             [--test-size 0.2] [--seed 20261123] [--min-rows 2] [--merge-into LABEL]

The CSV goes through what the product does with a family's labelled file
(:func:`resources.providers.local.prepare_training_set`): empty texts, rows without a label, exact
duplicates, conflicting labels for the same text and labels with fewer than ``--min-rows`` rows
are dropped (or merged into ``--merge-into``), and a hash of each row's id (``--id-col``, else a
content hash of text and label) puts ``--test-size`` of the rows into the held-out golden set.
The training report is printed first; then the classifier (default ``ClassifierParams``: word
1-2 gram TF-IDF, balanced LinearSVC + NB-weighted LinearSVC, temperature calibration) is trained
and scored on the golden rows next to a majority-class baseline: macro-F1, accuracy, per-class
recall, fit time and predict throughput. A file it cannot use gives a readable error, never a
traceback. The last line is one JSON object with keys rows, classes, macro_f1, accuracy,
baseline_macro_f1, fit_s, predict_per_s (plus the report, per-class recall, the model version),
or ``{"error": ...}`` with exit status 1.

Example (the shared real IT-service set):

    python bench/evaluate.py --csv ../shared/data/it_service_tickets/tickets.csv.gz \\
        --text-col Document --label-col Topic_group
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def fail(message: str, **extra) -> int:
    print(f"error: {message}", file=sys.stderr)
    print(json.dumps({"error": message, **extra}))
    return 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Evaluate the local classifier pipeline on a labelled CSV.")
    ap.add_argument("--csv", required=True, help="labelled CSV (plain or .gz)")
    ap.add_argument("--text-col", required=True)
    ap.add_argument("--label-col", required=True)
    ap.add_argument("--id-col", default=None, help="record id column (default: a content hash of text and label)")
    ap.add_argument("--test-size", type=float, default=0.2, help="golden (held-out) fraction, by id hash")
    ap.add_argument("--seed", type=int, default=20261123, help="seed of the golden-set hash")
    ap.add_argument("--min-rows", type=int, default=2, help="rows a label needs to be learned")
    ap.add_argument("--merge-into", default=None, help="label that absorbs rare labels (default: drop them)")
    args = ap.parse_args(argv)

    import pandas as pd
    from pydantic import ValidationError

    from resources.providers.definition import TaskDefinition
    from resources.providers.local import TrainingDataError, prepare_training_set, train_classifier
    from resources.providers.local.classifier import ClassifierParams
    from resources.providers.tasks import ClassifyTask

    path = Path(args.csv)
    if not path.is_file():
        return fail(f"{path} does not exist")
    try:
        df = pd.read_csv(path, dtype=str, on_bad_lines="warn")  # pandas infers gzip from the .gz suffix
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        return fail(f"cannot read {path}: {exc}")
    missing = [c for c in (args.text_col, args.label_col, args.id_col) if c and c not in df.columns]
    if missing:
        return fail(f"column(s) {missing} not in {path.name} (columns: {', '.join(map(str, df.columns))})")
    frame = pd.DataFrame({"text": df[args.text_col], "label": df[args.label_col]})
    if args.id_col:
        frame.insert(0, "record_id", df[args.id_col])
    labels = sorted({str(v).strip() for v in frame["label"].dropna() if str(v).strip()})
    if args.merge_into and args.merge_into not in labels:
        labels = sorted({*labels, args.merge_into})
    try:
        spec = ClassifyTask(type="classify", labels="from_training_data", training_data=path.name,
                            label_column=args.label_col, golden_fraction=args.test_size,
                            rare_classes={"min_rows": args.min_rows, "merge_into": args.merge_into})
    except ValidationError as exc:
        return fail(f"invalid option: {exc.errors()[0]['msg']}")
    task = TaskDefinition(family="bench", name="evaluate", spec=spec, labels=tuple(labels), text_fields=("text",))
    try:
        training, golden = prepare_training_set(task, frame, seed=args.seed)
    except TrainingDataError as exc:
        return fail(str(exc))
    report = training.report
    print(f"{path.name}: {len(df)} rows, {len(labels)} labels in the file")
    print(report.summary())
    summary = {"rows_in": report.rows_in, "rows_used": report.rows_used, "golden_rows": report.golden_rows,
               "dropped": {d.reason: d.rows for d in report.dropped}, "merged": report.merged,
               "derived_ids": report.derived_ids}
    if not report.trainable:
        return fail("; ".join(report.problems), report=summary)
    if not len(golden):
        return fail("the golden set is empty: raise --test-size or add rows", report=summary)

    params = ClassifierParams()
    start = time.perf_counter()
    model = train_classifier(training.texts, training.labels, params, None, training.vocabulary or None)
    fit_s = time.perf_counter() - start
    y_test = golden["label"].astype(str).tolist()
    metrics = model.evaluate(golden["text"].tolist(), y_test)

    from sklearn.metrics import accuracy_score, f1_score, recall_score

    classes = sorted(set(y_test))
    majority = pd.Series(training.labels).value_counts().idxmax()
    base_pred = [majority] * len(y_test)
    base_f1 = f1_score(y_test, base_pred, labels=classes, average="macro", zero_division=0)
    base_acc = accuracy_score(y_test, base_pred)
    base_recall = dict(zip(classes, recall_score(y_test, base_pred, labels=classes, average=None, zero_division=0)))

    print(f"\nlocal classifier {model.model_id} (version {model.version}), params {params.model_dump()}")
    print(f"{'class':<28}{'support':>8}{'recall':>9}{'baseline':>10}")
    for c in classes:
        print(f"{c[:27]:<28}{y_test.count(c):>8}{metrics['per_class_recall'][c]:>9.3f}{base_recall[c]:>10.3f}")
    print(f"\n{'':<28}{'macro-F1':>9}{'accuracy':>10}")
    print(f"{'local classifier':<28}{metrics['macro_f1']:>9.4f}{metrics['accuracy']:>10.4f}")
    print(f"{'majority-class baseline':<28}{base_f1:>9.4f}{base_acc:>10.4f}")
    print(f"fit {fit_s:.1f}s on {len(training)} rows; predict {metrics['predict_s']:.2f}s for {len(y_test)} rows "
          f"= {metrics['predict_per_s'] or 0:,.0f} rows/s")
    print(json.dumps({
        "rows": len(df),
        "classes": len(model.labels),
        "train_rows": len(training),
        "test_rows": len(y_test),
        "macro_f1": metrics["macro_f1"],
        "accuracy": metrics["accuracy"],
        "baseline_macro_f1": round(float(base_f1), 4),
        "baseline_accuracy": round(float(base_acc), 4),
        "per_class_recall": metrics["per_class_recall"],
        "fit_s": round(fit_s, 2),
        "predict_per_s": metrics["predict_per_s"],
        "model_version": model.version,
        "report": summary,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
