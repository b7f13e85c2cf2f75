"""Evaluate the product's local classifier pipeline on any labelled CSV (plain or gzipped).

    python bench/evaluate.py --csv PATH --text-col COL --label-col COL [--test-size 0.2] [--seed 42]

Trains :func:`resources.providers.local_model.train_classifier` (the same pipeline and default
params the product uses) on a seeded stratified 80/20 split and evaluates it on the held-out
20%: macro-F1, accuracy, per-class recall, fit time and predict throughput, and the same for a
majority-class baseline. The last line is one JSON object with keys rows, classes, macro_f1,
accuracy, baseline_macro_f1, fit_s, predict_per_s.

Example (the shared real IT-ticket set):

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


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="Evaluate the local classifier pipeline on a labelled CSV.")
    ap.add_argument("--csv", required=True, help="labelled CSV (plain or .gz)")
    ap.add_argument("--text-col", required=True)
    ap.add_argument("--label-col", required=True)
    ap.add_argument("--test-size", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)

    import pandas as pd
    from sklearn.dummy import DummyClassifier
    from sklearn.metrics import accuracy_score, f1_score, recall_score
    from sklearn.model_selection import train_test_split

    from resources.providers.local_model import ClassifierParams, train_classifier

    path = Path(args.csv)
    if not path.exists():
        raise SystemExit(f"error: {path} does not exist")
    df = pd.read_csv(path)  # pandas infers gzip from the .gz suffix
    for col in (args.text_col, args.label_col):
        if col not in df.columns:
            raise SystemExit(f"error: column {col!r} not in {path} (columns: {list(df.columns)})")
    before = len(df)
    df = df[df[args.label_col].notna()]
    texts = df[args.text_col].fillna("").astype(str)
    labels = df[args.label_col].astype(str)
    x_train, x_test, y_train, y_test = train_test_split(
        texts.tolist(), labels.tolist(), test_size=args.test_size, stratify=labels, random_state=args.seed
    )
    classes = sorted(set(labels))
    print(f"{path.name}: {before} rows ({before - len(df)} without a label dropped), {len(classes)} classes; "
          f"train {len(x_train)}, test {len(x_test)} (stratified, seed {args.seed})")

    params = ClassifierParams()
    start = time.perf_counter()
    model = train_classifier(x_train, y_train, params)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    pred = model.predict(x_test)
    predict_s = time.perf_counter() - start
    macro_f1 = f1_score(y_test, pred, average="macro")
    accuracy = accuracy_score(y_test, pred)
    recall = recall_score(y_test, pred, labels=classes, average=None, zero_division=0)

    baseline = DummyClassifier(strategy="most_frequent").fit([[0]] * len(y_train), y_train)
    base_pred = baseline.predict([[0]] * len(y_test))
    base_f1 = f1_score(y_test, base_pred, average="macro", zero_division=0)
    base_acc = accuracy_score(y_test, base_pred)
    base_recall = recall_score(y_test, base_pred, labels=classes, average=None, zero_division=0)

    print(f"\nlocal classifier {model.model_id} (version {model.version}), params {params.model_dump()}")
    print(f"{'class':<28}{'support':>8}{'recall':>9}{'baseline':>10}")
    for c, r, b in zip(classes, recall, base_recall):
        print(f"{c:<28}{y_test.count(c):>8}{r:>9.3f}{b:>10.3f}")
    print(f"\n{'':<28}{'macro-F1':>9}{'accuracy':>10}")
    print(f"{'local classifier':<28}{macro_f1:>9.4f}{accuracy:>10.4f}")
    print(f"{'majority-class baseline':<28}{base_f1:>9.4f}{base_acc:>10.4f}")
    print(f"fit {fit_s:.1f}s on {len(x_train)} rows; predict {predict_s:.2f}s for {len(x_test)} rows "
          f"= {len(x_test) / predict_s:,.0f} tickets/s")
    result = {
        "rows": len(df),
        "classes": len(classes),
        "macro_f1": round(float(macro_f1), 4),
        "accuracy": round(float(accuracy), 4),
        "baseline_macro_f1": round(float(base_f1), 4),
        "baseline_accuracy": round(float(base_acc), 4),
        "per_class_recall": {c: round(float(r), 4) for c, r in zip(classes, recall)},
        "fit_s": round(fit_s, 2),
        "predict_per_s": round(len(x_test) / predict_s, 1),
        "model_version": model.version,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
