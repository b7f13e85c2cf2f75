"""Classification metrics of a model on labelled rows: accuracy, macro-F1, per-class recall."""

from typing import Any, Sequence


def classification_metrics(y_true: Sequence[Any], y_pred: Sequence[Any | None]) -> dict[str, Any]:
    """``accuracy``, ``macro_f1`` (over the classes present in ``y_true``) and ``per_class_recall``.

    A missing prediction (``None``: a failed call, an item without an answer) counts as wrong, so a
    model cannot look better by failing on the hard rows. Predictions of a class absent from
    ``y_true`` lower the precision of nothing and the recall of the true class.
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    truth = [str(y) for y in y_true]
    # None never equals a label, whatever the label is called
    pred: list[str | None] = [None if p is None else str(p) for p in y_pred]
    n = len(truth)
    recall: dict[str, float] = {}
    f1: dict[str, float] = {}
    for c in sorted(set(truth)):
        tp = sum(1 for t, p in zip(truth, pred) if t == c and p == c)
        fn = sum(1 for t, p in zip(truth, pred) if t == c and p != c)
        fp = sum(1 for t, p in zip(truth, pred) if t != c and p == c)
        r = tp / (tp + fn) if tp + fn else 0.0
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall[c] = round(r, 4)
        f1[c] = 2 * precision * r / (precision + r) if precision + r else 0.0
    return {
        "accuracy": round(sum(t == p for t, p in zip(truth, pred)) / n, 4) if n else 0.0,
        "macro_f1": round(sum(f1.values()) / len(f1), 4) if f1 else 0.0,
        "per_class_recall": recall,
    }
