"""Per-class precision, recall and F1 from a confusion matrix, printed as scikit-learn's
``classification_report`` prints them (the table Keras notebooks print after ``predict``), and
the most confused pairs of classes (fastai's ``ClassificationInterpretation.most_confused``)."""
from __future__ import annotations

import torch


def classification_report(confusion: torch.Tensor | list, classes: list[str]) -> dict[str, dict]:
    """Precision, recall, F1 and support per class, and their macro and support-weighted means.

    Args:
        confusion: int ``(K, K)`` counts, rows the true class, columns the predicted class.
        classes: the K class names.

    Returns:
        ``{class: {"precision", "recall", "f1", "support"}}`` for the classes that have examples
        or were predicted (fractions rounded to 4 digits; support a count), then ``"macro avg"``
        and ``"weighted avg"`` over those classes, as scikit-learn's report over the labels of
        ``y_true`` and ``y_pred``: a class never predicted has precision 0, a class predicted
        without examples recall 0 (``zero_division=0``), and both count in the macro average.

    Raises:
        ValueError: the matrix is not K x K for the K classes.
    """
    cm = torch.as_tensor(confusion, dtype=torch.float64)
    k = len(classes)
    if cm.shape != (k, k):
        raise ValueError(f"confusion matrix of shape {tuple(cm.shape)} for {k} classes")
    tp, support, predicted = cm.diag(), cm.sum(1), cm.sum(0)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), 0.0)
    recall = torch.where(support > 0, tp / support.clamp(min=1), 0.0)
    both = precision + recall
    f1 = torch.where(both > 0, 2 * precision * recall / both.clamp(min=1e-12), 0.0)
    present = (support > 0) | (predicted > 0)
    out = {c: {"precision": round(float(precision[i]), 4), "recall": round(float(recall[i]), 4),
               "f1": round(float(f1[i]), 4), "support": int(support[i])}
           for i, c in enumerate(classes) if present[i]}
    n = support[present].sum()
    for name, w in (("macro avg", present.double() / present.sum().clamp(min=1)),
                    ("weighted avg", support / n.clamp(min=1))):
        out[name] = {"precision": round(float((w * precision).sum()), 4),
                     "recall": round(float((w * recall).sum()), 4),
                     "f1": round(float((w * f1).sum()), 4), "support": int(n)}
    return out


def format_classification_report(report: dict[str, dict]) -> str:
    """The report as a text table: one row per class, then the two means (fractions printed
    with 4 digits, as scikit-learn's default)."""
    width = max([len(c) for c in report] + [12])
    lines = [f"{'':>{width}}  precision    recall  f1-score   support", ""]
    for c, r in report.items():
        if c == "macro avg":
            lines.append("")
        lines.append(f"{c:>{width}}  {r['precision']:9.4f} {r['recall']:9.4f} {r['f1']:9.4f} "
                     f"{r['support']:9d}")
    return "\n".join(lines)


def most_confused(confusion: torch.Tensor | list, classes: list[str], top: int = 5,
                  min_count: int = 1) -> list[tuple[str, str, int]]:
    """The off-diagonal cells of the confusion matrix with the most examples.

    Args:
        confusion: int ``(K, K)`` counts, rows the true class, columns the predicted class.
        classes: the K class names.
        top: at most this many pairs.
        min_count: leave out pairs with fewer examples.

    Returns:
        ``[(true class, predicted class, count), ...]``, the largest count first (ties in
        class order).
    """
    cm = torch.as_tensor(confusion).clone()
    cm.fill_diagonal_(0)
    flat = cm.flatten()
    order = sorted(range(flat.numel()), key=lambda i: -int(flat[i]))
    k = len(classes)
    return [(classes[i // k], classes[i % k], int(flat[i])) for i in order[:top] if flat[i] >= min_count]
